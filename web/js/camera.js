// "Go live with your camera": the browser's camera runs through the current graph. The camera is encoded
// in the browser with WebCodecs (H.264, Annex B, realtime; the microphone, when one is picked, to Opus) and
// each access unit or Opus packet goes over a websocket to ComfyUI (dev/camera.py), which muxes it into the
// stream's input channel without re-encoding; the processed video comes back in a full-rate player
// (player.js) next to the camera's own picture.
// Why this transport: docs/ARCHITECTURE.md ("Browser camera and player").
import { api } from "../../../scripts/api.js";
import { el } from "./common/dom.js";
import { AUDIO_FLAG, JPEG_FLAG, KEYFRAME_FLAG, cameraMessage } from "./common/h264_units.js";
import { trickleFetch } from "./common/http.js";
import { FINAL_STATES } from "./common/format.js";
import { restartHolds } from "./common/restart_holds.js";
import { streamStore } from "./common/store.js";
import { startFromGraph } from "./golive.js";
import { createLivePlayer } from "./player.js";

export const RESOLUTIONS = [[320, 240], [640, 480], [1280, 720]];
const CAMERA_FPS = 30;
const KEYFRAME_EVERY_S = 1; // one trickle segment per second: a late joiner waits at most this long
const MAX_SOCKET_BACKLOG_BYTES = 512 * 1024; // beyond this frames are skipped, not queued (stay live)
const MAX_ENCODE_QUEUE = 2;
const JPEG_QUALITY = 0.8;
const CODEC_CANDIDATES = ["avc1.42e01f", "avc1.42001f", "avc1.4d401f", "avc1.640028"];
const OPUS_SAMPLE_RATE = 48000;
const OPUS_BITRATE = 64000;
export const NO_SOUND_MESSAGE = "This browser cannot encode sound (WebCodecs AudioEncoder with Opus, or MediaStreamTrackProcessor is missing), so the camera goes live without sound.";

/** A readable sentence for a getUserMedia failure. */
export function describeCameraError(error) {
  const name = error?.name || "";
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "Camera permission was denied. Allow camera access for this page (the camera icon in the address bar), then press Go live again.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No camera matches: pick another camera or a smaller resolution.";
  }
  if (name === "NotReadableError") return "The camera is in use by another application.";
  if (!navigator.mediaDevices?.getUserMedia) {
    return "This page cannot use a camera: open ComfyUI over https or on localhost.";
  }
  return `The camera could not start: ${error?.message || error}`;
}

/** The first H.264 configuration this browser can encode, or null (then the camera cannot stream). */
export async function findH264Encoder(width, height) {
  if (typeof VideoEncoder === "undefined") return null;
  for (const codec of CODEC_CANDIDATES) {
    const config = { codec, width, height, bitrate: Math.round(width * height * CAMERA_FPS * 0.1),
      framerate: CAMERA_FPS, latencyMode: "realtime", avc: { format: "annexb" } };
    try {
      if ((await VideoEncoder.isConfigSupported(config)).supported) return config;
    } catch {
      // an unknown codec string throws in some browsers: try the next
    }
  }
  return null;
}

/** The Opus AudioEncoder configuration for a microphone track, or null where this browser cannot encode it. */
export async function findOpusEncoder(track) {
  if (!track || typeof AudioEncoder === "undefined" || typeof MediaStreamTrackProcessor === "undefined") return null;
  const settings = track.getSettings();
  const config = { codec: "opus", sampleRate: settings.sampleRate || OPUS_SAMPLE_RATE,
    numberOfChannels: Math.min(2, settings.channelCount || 1), bitrate: OPUS_BITRATE };
  try {
    return (await AudioEncoder.isConfigSupported(config)).supported ? config : null;
  } catch {
    return null;
  }
}

/**
 * One clock for both tracks: Chromium stamps a camera's frames and a microphone's samples from different
 * origins, so each track is anchored to performance.now() at its first frame and sent on that clock.
 */
function createSharedClock() {
  const offsets = new Map();
  return {
    anchor(kind, timestampUs) {
      if (!offsets.has(kind)) offsets.set(kind, performance.now() * 1000 - timestampUs);
    },
    shared: (kind, timestampUs) => timestampUs + (offsets.get(kind) ?? 0),
  };
}

/** Encodes a microphone track to Opus and hands each packet to `send(data, timestampUs)`; `stop()` ends it. */
function startSound(track, config, clock, send, shouldSkip, onError) {
  const encoder = new AudioEncoder({
    output(chunk) {
      const data = new Uint8Array(chunk.byteLength);
      chunk.copyTo(data);
      send(data, clock.shared("audio", chunk.timestamp));
    },
    error: onError,
  });
  encoder.configure(config);
  const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
  let stopped = false;
  (async () => {
    while (!stopped) {
      const { value: data, done } = await reader.read();
      if (done || !data || stopped) {
        data?.close();
        break;
      }
      clock.anchor("audio", data.timestamp);
      // Same rule as the video: behind means skip, not queue (the encoder buffers little anyway).
      if (shouldSkip() || data.sampleRate !== config.sampleRate || data.numberOfChannels !== config.numberOfChannels) {
        data.close();
        continue;
      }
      encoder.encode(data);
      data.close();
    }
  })().catch(onError);
  return {
    stop() {
      stopped = true;
      reader.cancel().catch(() => {});
      if (encoder.state !== "closed") encoder.close();
    },
  };
}

function socketUrl(path) {
  const url = new URL(api.apiURL(path), window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/** Reads frames of a camera track: MediaStreamTrackProcessor where there is one, else a <video>. */
function frameSource(track, video) {
  if (typeof MediaStreamTrackProcessor !== "undefined") {
    const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    return { next: async () => (await reader.read()).value ?? null, stop: () => reader.cancel().catch(() => {}) };
  }
  let stopped = false;
  return {
    async next() {
      await new Promise((resolve) => (video.requestVideoFrameCallback
        ? video.requestVideoFrameCallback(() => resolve())
        : setTimeout(resolve, 1000 / CAMERA_FPS)));
      return stopped ? null : new VideoFrame(video, { timestamp: performance.now() * 1000 });
    },
    stop: () => { stopped = true; },
  };
}

/** One live camera: encoder, socket and counters; `stop()` ends all of it (and the stream). */
async function goLive({ stream, streamId, video, onEnded }) {
  const track = stream.getVideoTracks()[0];
  const settings = track.getSettings();
  const width = (settings.width || 640) & ~1;
  const height = (settings.height || 480) & ~1;
  // H.264 from the browser where WebCodecs can encode it; JPEG stills (encoded on the server) elsewhere.
  const config = await findH264Encoder(width, height);
  // Sound only with the H.264 path (the JPEG fallback goes out without it).
  const audioTrack = stream.getAudioTracks()[0];
  const soundConfig = config ? await findOpusEncoder(audioTrack) : null;
  const opened = await trickleFetch("/trickle/camera", { method: "POST",
    body: { name: streamId, width, height, audio_channels: soundConfig ? soundConfig.numberOfChannels : 0 } });
  if (!opened.ok) return { ok: false, message: opened.message };
  const socket = new WebSocket(socketUrl(opened.data.socket_path));
  socket.binaryType = "arraybuffer";
  const connected = await new Promise((resolve) => {
    socket.onopen = () => resolve(true);
    socket.onerror = () => resolve(false);
  });
  if (!connected) return { ok: false, message: "The camera socket did not open (see the server log)." };

  const counters = { encoded: 0, sent: 0, skipped: 0, audioSent: 0 };
  const clock = createSharedClock();
  let stopped = false;
  let forceKey = true;
  let lastKeyUs = -Infinity;
  const send = (data, timestampUs, flags) => {
    if (stopped || socket.readyState !== WebSocket.OPEN) return;
    socket.send(cameraMessage(data, timestampUs, flags));
    counters.sent += 1;
  };
  const encoder = config ? new VideoEncoder({
    output(chunk) {
      const data = new Uint8Array(chunk.byteLength);
      chunk.copyTo(data);
      send(data, clock.shared("video", chunk.timestamp), chunk.type === "key" ? KEYFRAME_FLAG : 0);
    },
    error(error) {
      console.warn("[Trickle] camera encoder failed", error);
      stop();
    },
  }) : null;
  encoder?.configure({ ...config, width, height });
  const canvas = config ? null : new OffscreenCanvas(width, height);
  const sound = soundConfig ? startSound(audioTrack, soundConfig, clock, (data, timestampUs) => {
    send(data, timestampUs, AUDIO_FLAG);
    counters.audioSent += 1;
  }, () => socket.bufferedAmount > MAX_SOCKET_BACKLOG_BYTES, (error) => {
    console.warn("[Trickle] microphone encoder failed", error);
    stop();
  }) : null;
  const frames = frameSource(track, video);

  async function sendJpeg(frame) {
    canvas.getContext("2d").drawImage(frame, 0, 0, width, height);
    const timestamp = clock.shared("video", frame.timestamp);
    frame.close();
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: JPEG_QUALITY });
    send(new Uint8Array(await blob.arrayBuffer()), timestamp, JPEG_FLAG);
  }

  async function pump() {
    while (!stopped) {
      const frame = await frames.next();
      if (!frame || stopped) {
        frame?.close();
        break;
      }
      clock.anchor("video", frame.timestamp);
      if (socket.bufferedAmount > MAX_SOCKET_BACKLOG_BYTES || (encoder?.encodeQueueSize ?? 0) > MAX_ENCODE_QUEUE) {
        frame.close(); // the network or the encoder is behind: skip this frame rather than add delay
        counters.skipped += 1;
        continue;
      }
      counters.encoded += 1;
      if (!encoder) {
        await sendJpeg(frame);
        continue;
      }
      const keyFrame = forceKey || frame.timestamp - lastKeyUs >= KEYFRAME_EVERY_S * 1e6;
      if (keyFrame) lastKeyUs = frame.timestamp;
      forceKey = false;
      encoder.encode(frame, { keyFrame });
      frame.close();
    }
  }

  function stop() {
    if (stopped) return;
    stopped = true;
    frames.stop();
    sound?.stop();
    if (encoder && encoder.state !== "closed") encoder.close();
    socket.close();
    for (const t of stream.getTracks()) t.stop();
    onEnded?.();
  }
  socket.onclose = () => stop();
  pump().catch((error) => {
    console.warn("[Trickle] camera pump stopped", error);
    stop();
  });
  return { ok: true, publishUrl: opened.data.publish_url, subscribeUrl: opened.data.subscribe_url,
    width, height, counters, stop, transport: encoder ? "h264" : "jpeg", sound: sound ? "opus" : "none",
    soundWanted: Boolean(audioTrack) };
}

function select(id, options) {
  return el("select", { id, name: id }, options.map(([value, label]) => el("option", { value }, label)));
}

async function fillDevices(cameraSelect, micSelect) {
  const devices = await navigator.mediaDevices?.enumerateDevices?.().catch(() => []) ?? [];
  const cameras = devices.filter((d) => d.kind === "videoinput");
  const previous = cameraSelect.value;
  cameraSelect.replaceChildren(...(cameras.length ? cameras : [{ deviceId: "", label: "" }]).map((d, i) =>
    el("option", { value: d.deviceId }, d.label || `Camera ${i + 1}`)));
  if (previous) cameraSelect.value = previous;
  const mics = devices.filter((d) => d.kind === "audioinput" && d.deviceId && d.deviceId !== "default");
  const previousMic = micSelect.value;
  micSelect.replaceChildren(el("option", { value: "" }, "No microphone"),
    el("option", { value: "default" }, "Default microphone"),
    ...mics.map((d, i) => el("option", { value: d.deviceId }, d.label || `Microphone ${i + 1}`)));
  if (previousMic) micSelect.value = previousMic;
}

/** The camera section of the sidebar: device and size pickers, Go live / Stop, camera and output side by side. */
export function createCameraPanel() {
  const cameraSelect = select("trickle-camera", [["", "Default camera"]]);
  // "No microphone" by default: the browser then asks for the camera only.
  const micSelect = select("trickle-microphone", [["", "No microphone"], ["default", "Default microphone"]]);
  const sizeSelect = select("trickle-camera-size", RESOLUTIONS.map(([w, h]) => [`${w}x${h}`, `${w} x ${h}`]));
  sizeSelect.value = "640x480";
  const start = el("button", { type: "button", class: "trickle-button trickle-button-primary", id: "trickle-camera-go-live" },
    "Go live with camera");
  const stopButton = el("button", { type: "button", class: "trickle-button trickle-button-danger", id: "trickle-camera-stop",
    hidden: true }, "Stop camera");
  const message = el("div", { class: "trickle-form-message", id: "trickle-camera-message", role: "alert" });
  const video = el("video", { id: "trickle-camera-video", muted: true, playsinline: true, autoplay: true });
  video.muted = true;
  const player = createLivePlayer({ emptyText: "processed video" });
  player.element.id = "trickle-camera-output";
  const views = el("div", { class: "trickle-camera-views", hidden: true }, [
    el("figure", {}, [video, el("figcaption", {}, "camera")]),
    el("figure", {}, [player.element, el("figcaption", {}, "processed")]),
  ]);
  const element = el("div", { class: "trickle-form trickle-camera", id: "trickle-camera-panel" }, [
    el("div", { class: "trickle-field" }, [el("label", { for: cameraSelect.id }, "Camera"), cameraSelect]),
    el("div", { class: "trickle-field" }, [el("label", { for: micSelect.id }, "Microphone"),
      micSelect]),
    el("div", { class: "trickle-field" }, [el("label", { for: sizeSelect.id }, "Resolution"), sizeSelect]),
    el("div", { class: "trickle-actions" }, [start, stopButton]),
    message,
    views,
  ]);
  ensureCameraStyles();
  fillDevices(cameraSelect, micSelect);
  navigator.mediaDevices?.addEventListener?.("devicechange", () => fillDevices(cameraSelect, micSelect));

  let live = null;
  let unsubscribe = null;

  function ended() {
    unsubscribe?.();
    unsubscribe = null;
    const streamId = live?.streamId;
    live = null;
    delete element.dataset.streamId;
    delete element.dataset.transport;
    delete element.dataset.sound;
    player.play(null);
    video.srcObject = null;
    views.hidden = true;
    start.hidden = false;
    stopButton.hidden = true;
    start.disabled = false;
    const status = streamId ? streamStore.get(streamId) : null;
    if (status) {
      const state = status.state;
      if (!FINAL_STATES.has(state)) trickleFetch(`/stream/${encodeURIComponent(streamId)}/stop`, { method: "POST" });
    }
  }

  start.addEventListener("click", async () => {
    start.disabled = true;
    message.textContent = "";
    const [width, height] = sizeSelect.value.split("x").map(Number);
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { deviceId: cameraSelect.value ? { exact: cameraSelect.value } : undefined,
          width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: CAMERA_FPS } },
        audio: micSelect.value ? { deviceId: micSelect.value === "default" ? undefined : { exact: micSelect.value },
          sampleRate: { ideal: OPUS_SAMPLE_RATE } } : false,
      });
    } catch (error) {
      message.textContent = describeCameraError(error);
      element.dataset.error = error?.name || "Error";
      start.disabled = false;
      return;
    }
    delete element.dataset.error;
    fillDevices(cameraSelect, micSelect); // labels appear once permission is granted
    video.srcObject = stream;
    await video.play().catch(() => {});
    const streamId = `cam-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
    const camera = await goLive({ stream, streamId, video, onEnded: () => ended() });
    if (!camera.ok) {
      for (const t of stream.getTracks()) t.stop();
      message.textContent = camera.message;
      start.disabled = false;
      return;
    }
    live = { streamId, camera };
    const outcome = await startFromGraph({ subscribeUrl: camera.subscribeUrl, publishUrl: camera.publishUrl,
      streamId, width: camera.width, height: camera.height });
    if (!outcome.ok) {
      message.textContent = outcome.message || "The stream did not start.";
      camera.stop();
      return;
    }
    element.dataset.streamId = streamId;
    element.dataset.transport = camera.transport;
    element.dataset.sound = camera.sound;
    const notes = [];
    if (camera.transport === "jpeg") {
      notes.push("This browser cannot encode H.264 (WebCodecs), so the camera goes out as JPEG frames without sound: it works, with more delay and server CPU.");
    } else if (camera.soundWanted && camera.sound === "none") {
      notes.push(NO_SOUND_MESSAGE);
    }
    message.textContent = notes.join(" ");
    views.hidden = false;
    start.hidden = true;
    stopButton.hidden = false;
    player.play(`${streamId}-out`);
    unsubscribe = streamStore.subscribe((store) => {
      // a restart's stop belongs to the old run: the camera goes on into the restarted stream
      if (FINAL_STATES.has(store.get(streamId)?.state) && !restartHolds.isHeld(streamId)) live?.camera.stop();
    });
  });
  stopButton.addEventListener("click", () => live?.camera.stop());

  return { element, destroy: () => { live?.camera.stop(); player.destroy(); } };
}

const STYLE_ID = "trickle-camera-styles";
function ensureCameraStyles() {
  if (document.getElementById(STYLE_ID)) return;
  document.head.append(el("style", { id: STYLE_ID }, `
.trickle-camera select { background: var(--comfy-input-bg, #222); color: inherit; border: 1px solid var(--border-color, #444);
  border-radius: 4px; padding: 4px 6px; font: inherit; }
.trickle-camera-views { display: grid; grid-template-columns: 1fr 1fr; gap: 6px; }
.trickle-camera-views figure { margin: 0; display: flex; flex-direction: column; gap: 2px; }
.trickle-camera-views figcaption { font-size: 11px; opacity: .7; }
.trickle-camera-views video { width: 100%; background: #000; border-radius: 4px; }
`));
}
