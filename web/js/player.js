// Full-rate output view: follows a dev relay channel through GET /trickle/player/{channel} (a streaming
// fetch, so the bearer token rides in the header), decodes its H.264 access units with WebCodecs and
// draws every frame as it is decoded: the stream's frame rate, not polled JPEGs. The element carries
// data-state, data-frames (frames drawn), data-fps (over the last 2 s) and data-latency-ms (median of the
// last 60 frames: drawn time minus the time the server demuxed the frame from the channel).
import { el } from "./common/dom.js";
import { errorMessageOf } from "./common/format.js";
import { trickleFetchRaw } from "./common/http.js";
import { avcCodecString, createUnitReader } from "./common/h264_units.js";

const FALLBACK_CODEC = "avc1.42e01f";
// Beyond this many undecoded units (about two seconds) the viewer skips to the next keyframe to stay live;
// smaller backlogs happen on a busy machine (the decoder catches up) and skipping them would drop frames.
const MAX_DECODE_QUEUE = 60;
const FPS_WINDOW_MS = 2000;
const LATENCY_SAMPLES = 60;
const STYLE_ID = "trickle-player-styles";
const CSS = `
.trickle-player { position: relative; background: #000; border-radius: 4px; overflow: hidden; min-height: 60px;
  display: flex; align-items: center; justify-content: center; }
.trickle-player canvas { width: 100%; height: auto; max-height: 240px; object-fit: contain; display: block; }
.trickle-player-caption { position: absolute; left: 6px; bottom: 4px; font-size: 11px; color: #fff;
  text-shadow: 0 0 3px #000; pointer-events: none; }
.trickle-player-enlarge { position: absolute; right: 4px; top: 4px; font-size: 11px; padding: 1px 6px; opacity: .85; }
.trickle-player-enlarged { position: fixed; inset: 4vh 4vw; z-index: 3000; box-shadow: 0 0 0 100vmax rgba(0,0,0,.75); }
.trickle-player-enlarged canvas { max-height: none; height: 100%; }
`;

function ensurePlayerStyles() {
  if (document.getElementById(STYLE_ID)) return;
  document.head.append(el("style", { id: STYLE_ID }, CSS));
}

export const canDecodeVideo = () => typeof VideoDecoder !== "undefined" && typeof EncodedVideoChunk !== "undefined";

/** A canvas that plays one channel: `player.play(channel | null)`; `player.destroy()` stops it. */
export function createLivePlayer({ emptyText = "No video" } = {}) {
  ensurePlayerStyles();
  const canvas = el("canvas", { width: 16, height: 9 });
  const caption = el("div", { class: "trickle-player-caption" }, emptyText);
  const enlarge = el("button", { type: "button", class: "trickle-button trickle-player-enlarge",
    title: "Enlarge (Esc to shrink)" }, "Enlarge");
  const element = el("div", { class: "trickle-player", "data-state": "idle", "data-frames": "0",
    title: "Full-rate output: frames per second drawn here · ms from the server's channel to this canvas" },
    [canvas, caption, enlarge]);
  let session = null;

  const toggleEnlarged = (on) => {
    const enlarged = element.classList.toggle("trickle-player-enlarged", on);
    enlarge.textContent = enlarged ? "Close" : "Enlarge";
  };
  enlarge.addEventListener("click", () => toggleEnlarged());
  element.addEventListener("keydown", (event) => event.key === "Escape" && toggleEnlarged(false));
  element.tabIndex = 0;

  function setState(state, text) {
    element.dataset.state = state;
    if (text !== undefined) caption.textContent = text;
  }

  function play(channel) {
    session?.stop();
    session = null;
    element.dataset.frames = "0";
    delete element.dataset.fps;
    delete element.dataset.latencyMs;
    if (!channel) {
      delete element.dataset.channel;
      setState("idle", emptyText);
      return;
    }
    element.dataset.channel = channel;
    if (!canDecodeVideo()) {
      setState("unsupported", "This browser cannot decode video with WebCodecs (VideoDecoder)");
      return;
    }
    session = startSession(channel, { canvas, element, setState });
  }

  return { element, play, destroy: () => play(null), get channel() { return element.dataset.channel ?? null; } };
}

function startSession(channel, { canvas, element, setState }) {
  const abort = new AbortController();
  const drawnAt = [];
  const latencies = [];
  const demuxedAt = new Map();
  let frames = 0;
  let skipped = 0;
  let configured = false;
  let waitForKey = true;
  let stopped = false;

  const decoder = new VideoDecoder({
    output(frame) {
      if (stopped) return frame.close();
      if (canvas.width !== frame.displayWidth || canvas.height !== frame.displayHeight) {
        canvas.width = frame.displayWidth;
        canvas.height = frame.displayHeight;
      }
      canvas.getContext("2d").drawImage(frame, 0, 0);
      const now = performance.now();
      const sent = demuxedAt.get(frame.timestamp);
      demuxedAt.delete(frame.timestamp);
      frame.close();
      frames += 1;
      drawnAt.push(now);
      while (drawnAt.length && now - drawnAt[0] > FPS_WINDOW_MS) drawnAt.shift();
      if (sent !== undefined) {
        latencies.push(Date.now() - sent);
        if (latencies.length > LATENCY_SAMPLES) latencies.shift();
      }
      const fps = frames > 1 && drawnAt.length > 1 ? (drawnAt.length - 1) * 1000 / (now - drawnAt[0]) : 0;
      const latency = latencies.length ? [...latencies].sort((a, b) => a - b)[latencies.length >> 1] : null;
      element.dataset.frames = String(frames);
      element.dataset.fps = fps.toFixed(1);
      if (latency !== null) element.dataset.latencyMs = String(Math.round(latency));
      setState("playing", `${fps.toFixed(1)} fps${latency !== null ? ` · ${Math.round(latency)} ms` : ""}`);
    },
    error(error) {
      if (stopped) return;
      element.dataset.decodeErrors = String(Number(element.dataset.decodeErrors || 0) + 1);
      console.warn("[Trickle] player decoder error, waiting for the next keyframe", error);
      configured = false;
      waitForKey = true;
    },
  });

  function onUnit(unit) {
    if (stopped) return;
    if (decoder.state === "closed") return;
    if ((waitForKey || decoder.decodeQueueSize > MAX_DECODE_QUEUE) && !unit.keyframe) {
      waitForKey = true; // behind (or not started): drop up to the next keyframe rather than fall behind
      skipped += 1;
      element.dataset.skipped = String(skipped);
      return;
    }
    if (!configured) {
      decoder.configure({ codec: avcCodecString(unit.data) || FALLBACK_CODEC, optimizeForLatency: true });
      configured = true;
    }
    waitForKey = false;
    demuxedAt.set(unit.timestampUs, unit.demuxedAtMs);
    if (demuxedAt.size > 256) demuxedAt.delete(demuxedAt.keys().next().value);
    decoder.decode(new EncodedVideoChunk({ type: unit.keyframe ? "key" : "delta", timestamp: unit.timestampUs,
      data: unit.data }));
  }

  async function run() {
    setState("connecting", `${channel} · connecting`);
    const response = await trickleFetchRaw(`/trickle/player/${encodeURIComponent(channel)}`,
      { signal: abort.signal, cache: "no-store" });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      setState("error", errorMessageOf(body, response.status));
      return;
    }
    let ended = false;
    const reader = createUnitReader({ onUnit, onEvent: (event) => { ended = event?.type === "end"; } });
    const body = response.body.getReader();
    for (;;) {
      const { value, done } = await body.read();
      if (done || stopped) break;
      reader.push(value);
    }
    if (!stopped) setState("ended", `${channel} · ${ended ? "ended" : "disconnected"}`);
  }

  run().catch((error) => {
    if (!stopped) setState("error", `${channel} · ${error?.message || error}`);
  });

  return {
    stop() {
      stopped = true;
      abort.abort();
      if (decoder.state !== "closed") decoder.close();
    },
  };
}

/** The dev relay channel a stream publishes to (`.../trickle/relay/{channel}`), or null for other hosts. */
export function relayChannelOf(url) {
  const match = /\/trickle\/relay\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/?$/.exec(String(url || ""));
  return match ? match[1] : null;
}

/**
 * A stream card's "Watch" button and the full-rate player it opens under the card's preview; shown only
 * for streams whose output channel is on this server's dev relay. `update(status)` follows the card.
 */
export function createWatchView() {
  const player = createLivePlayer({ emptyText: "output" });
  player.element.hidden = true;
  player.element.classList.add("trickle-watch-player");
  const button = el("button", { type: "button", class: "trickle-button trickle-watch",
    title: "Watch the output at full frame rate" }, "Watch");
  let channel = null;
  let live = false;
  const sync = () => player.play(!player.element.hidden && live ? channel : null);
  button.addEventListener("click", () => {
    player.element.hidden = !player.element.hidden;
    button.textContent = player.element.hidden ? "Watch" : "Hide";
    sync();
  });
  function update(status, isLive) {
    const next = relayChannelOf(status?.config?.publish_url);
    button.hidden = !next || !isLive;
    if (!isLive) player.element.hidden = true;
    if (next !== channel || isLive !== live) {
      channel = next;
      live = isLive;
      sync();
    }
  }
  return { button, element: player.element, update, destroy: () => player.destroy() };
}
