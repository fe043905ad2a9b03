// Tiny DOM helpers and the extension's stylesheet (injected once). Colours come from ComfyUI's own
// CSS variables so the panels follow the user's theme.

/** el("div", {class: "x", onclick: fn}, ["text", child]) */
export function el(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of [].concat(children)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const STYLE_ID = "trickle-styles";

const CSS = `
.trickle-panel [hidden], .trickle-node-preview [hidden] { display: none !important; }
.trickle-panel { display: flex; flex-direction: column; gap: 12px; padding: 10px 12px; font-size: 13px;
  color: var(--fg-color, #ddd); height: 100%; overflow-y: auto; box-sizing: border-box; }
.trickle-panel h3 { margin: 0 0 6px; font-size: 12px; text-transform: uppercase; letter-spacing: .06em;
  opacity: .7; font-weight: 600; }
.trickle-panel-head { display: flex; align-items: center; justify-content: space-between; }
.trickle-panel-head h2 { margin: 0; font-size: 15px; }
.trickle-form { display: flex; flex-direction: column; gap: 6px; }
.trickle-field { display: flex; flex-direction: column; gap: 2px; }
.trickle-form label { opacity: .8; font-size: 12px; }
.trickle-form input { min-width: 0; width: 100%; box-sizing: border-box; background: var(--comfy-input-bg, #222); color: inherit;
  border: 1px solid var(--border-color, #444); border-radius: 4px; padding: 4px 6px; font: inherit; }
.trickle-form .trickle-size { display: flex; gap: 6px; align-items: center; }
.trickle-form .trickle-size input { width: 80px; }
.trickle-actions { display: flex; gap: 8px; flex-wrap: wrap; }
.trickle-button { background: var(--comfy-input-bg, #333); color: inherit; border: 1px solid var(--border-color, #555);
  border-radius: 4px; padding: 4px 10px; cursor: pointer; font: inherit; }
.trickle-button:hover { filter: brightness(1.25); }
.trickle-button:disabled { opacity: .5; cursor: default; }
.trickle-button-primary { background: #2b6cb0; border-color: #2b6cb0; color: #fff; }
.trickle-button-danger { background: transparent; border-color: #c53030; color: #fc8181; }
.trickle-form-message { color: #fc8181; white-space: pre-wrap; }
.trickle-form-message:empty { display: none; }
.trickle-node-errors { margin: 0; padding-left: 16px; color: #fc8181; }
.trickle-node-errors:empty { display: none; }
.trickle-node-errors li { cursor: pointer; }
.trickle-node-errors li:hover { text-decoration: underline; }
.trickle-streams { display: flex; flex-direction: column; gap: 10px; }
.trickle-empty { opacity: .6; font-style: italic; }
.trickle-stream { border: 1px solid var(--border-color, #444); border-radius: 6px; padding: 8px;
  background: var(--comfy-menu-bg, #1c1c1c); display: flex; flex-direction: column; gap: 6px; }
.trickle-stream-head { display: flex; align-items: center; gap: 8px; }
.trickle-stream-id { font-family: monospace; font-weight: 600; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; flex: 1; }
.trickle-state { border-radius: 10px; padding: 1px 8px; font-size: 11px; background: #4a5568; color: #fff; }
.trickle-state-running { background: #2f855a; }
.trickle-state-starting, .trickle-state-waiting, .trickle-state-stopping { background: #b7791f; }
.trickle-state-error { background: #c53030; }
.trickle-metrics { display: grid; grid-template-columns: auto 1fr auto 1fr; gap: 2px 8px; margin: 0; }
.trickle-metrics dt { opacity: .65; }
.trickle-metrics dd { margin: 0; font-variant-numeric: tabular-nums; }
.trickle-stream-error { color: #fc8181; white-space: pre-wrap; word-break: break-word; }
.trickle-stream-links { display: flex; flex-direction: column; gap: 2px; font-size: 11px; }
.trickle-stream-links span { opacity: .65; }
.trickle-stream-links code { word-break: break-all; user-select: all; }
.trickle-stream-links .trickle-button { padding: 0 6px; margin-left: 4px; font-size: 11px; }
.trickle-stream-error:empty { display: none; }
.trickle-preview { position: relative; background: #000; border-radius: 4px; overflow: hidden;
  min-height: 60px; display: flex; align-items: center; justify-content: center; }
.trickle-preview-canvas { display: none; width: 100%; height: auto; }
.trickle-preview-has-frame .trickle-preview-canvas { display: block; }
.trickle-stream .trickle-preview-canvas { max-height: 200px; object-fit: contain; }
.trickle-preview-caption { position: absolute; left: 6px; bottom: 4px; font-size: 11px; color: #fff;
  text-shadow: 0 0 3px #000; opacity: .85; pointer-events: none; }
.trickle-node-preview { width: 100%; height: 100%; display: flex; }
.trickle-node-preview .trickle-preview { flex: 1; }
.trickle-node-preview .trickle-preview-canvas { object-fit: contain; height: 100%; }
.trickle-indicator { position: fixed; z-index: 1000; left: 50%; bottom: 10px; transform: translateX(-50%); display: flex; align-items: center;
  gap: 6px; padding: 3px 10px; border-radius: 12px; font-size: 12px; cursor: pointer; user-select: none;
  background: var(--comfy-menu-bg, #222); color: var(--fg-color, #ddd); border: 1px solid var(--border-color, #444);
  box-shadow: 0 1px 4px rgba(0,0,0,.4); }
.trickle-indicator-dot { width: 8px; height: 8px; border-radius: 50%; background: #718096; }
.trickle-indicator[data-tone="live"] .trickle-indicator-dot { background: #48bb78; }
.trickle-indicator[data-tone="error"] .trickle-indicator-dot { background: #f56565; }
.trickle-indicator[data-tone="error"] { border-color: #c53030; }
`;

/** Adds the stylesheet once per page. */
export function ensureStyles() {
  if (document.getElementById(STYLE_ID)) return;
  document.head.append(el("style", { id: STYLE_ID }, CSS));
}
