// Browser side of the live preview: one PreviewPoller for the page, and a small canvas view that
// shows one stream's newest output frame (used in the sidebar and in the TrickleOutput node).
import { getSetting, trickleFetchRaw } from "./http.js";
import { el } from "./dom.js";
import { PreviewPoller } from "./preview_poller.js";
import { SETTING, previewFps } from "./settings.js";

async function fetchFrame(streamId, etag) {
  const maxWidth = Math.max(64, Number(getSetting(SETTING.previewMaxWidth)) || 512);
  const response = await trickleFetchRaw(
    `/trickle/preview/${encodeURIComponent(streamId)}.jpg?max_width=${maxWidth}`,
    // no-store: the server answers 304 to our own If-None-Match; a browser cache would only get in the way.
    { cache: "no-store", headers: etag ? { "If-None-Match": etag } : {} },
  );
  if (response.status === 304) return { kind: "same" };
  if (response.status === 404) return { kind: "gone" };
  if (response.status !== 200) return { kind: "none" };
  const image = await createImageBitmap(await response.blob());
  return { kind: "frame", image, etag: response.headers.get("ETag") };
}

export const previewPoller = new PreviewPoller({
  fetchFrame,
  fps: () => previewFps((id) => getSetting(id)),
  paused: () => document.hidden,
  release: (image) => image?.close?.(),
});

/**
 * A canvas that follows one stream: `view.show(streamId | null)`; `view.destroy()` stops its polling.
 * The element carries data-stream-id and data-frames (frames drawn) for tests and styling.
 */
export function createPreviewView({ emptyText = "No live stream" } = {}) {
  const canvas = el("canvas", { class: "trickle-preview-canvas", width: 16, height: 9 });
  const caption = el("div", { class: "trickle-preview-caption" }, emptyText);
  const element = el("div", { class: "trickle-preview", "data-frames": "0" }, [canvas, caption]);
  let streamId = null;
  let unsubscribe = null;
  let frames = 0;

  function draw(image) {
    if (canvas.width !== image.width || canvas.height !== image.height) {
      canvas.width = image.width;
      canvas.height = image.height;
    }
    canvas.getContext("2d").drawImage(image, 0, 0);
    frames += 1;
    element.dataset.frames = String(frames);
    element.classList.add("trickle-preview-has-frame");
  }

  function show(nextId) {
    const id = nextId ? String(nextId) : null;
    if (id === streamId) return;
    unsubscribe?.();
    unsubscribe = null;
    streamId = id;
    frames = 0;
    element.dataset.frames = "0";
    element.classList.remove("trickle-preview-has-frame");
    if (id) {
      element.dataset.streamId = id;
      caption.textContent = id;
      unsubscribe = previewPoller.subscribe(id, draw);
    } else {
      delete element.dataset.streamId;
      caption.textContent = emptyText;
    }
  }

  return { element, show, destroy: () => show(null), get streamId() { return streamId; } };
}
