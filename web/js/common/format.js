// Pure helpers that turn stream status objects (docs/ARCHITECTURE.md) into what the UI shows.
// No imports from ComfyUI here, so tests/js can run them under `node --test`.

/** States in which a stream still uses resources; "live" for the status indicator. */
export const LIVE_STATES = new Set(["starting", "waiting", "running", "stopping"]);
/** States after which nothing more happens to a stream. */
export const FINAL_STATES = new Set(["stopped", "completed", "error"]);

export function isLive(status) {
  return LIVE_STATES.has(status?.state);
}

function finite(value) {
  return typeof value === "number" && Number.isFinite(value);
}

export function formatFps(value) {
  return finite(value) ? value.toFixed(1) : "-";
}

export function formatCount(value) {
  return finite(value) ? String(Math.round(value)) : "-";
}

/** 3725.4 -> "1h 02m 05s"; 65 -> "1m 05s"; 4.2 -> "4s". */
export function formatUptime(seconds) {
  if (!finite(seconds) || seconds < 0) return "-";
  const total = Math.floor(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (h > 0) return `${h}h ${pad(m)}m ${pad(s)}s`;
  if (m > 0) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

/** {p50: 41.7, p95: 80.2} -> "42 / 80 ms" (p50 / p95). */
export function formatLatency(latency) {
  if (!latency || !finite(latency.p50)) return "-";
  const p95 = finite(latency.p95) ? Math.round(latency.p95) : "-";
  return `${Math.round(latency.p50)} / ${p95} ms`;
}

/** The stream's last error as one line, or "" when it has none. */
export function formatStreamError(error) {
  if (!error) return "";
  if (typeof error === "string") return error;
  const where = [error.node_type, error.node_id !== undefined && error.node_id !== null ? `#${error.node_id}` : ""]
    .filter(Boolean)
    .join(" ");
  const message = error.message || "unknown error";
  return where ? `${where}: ${message}` : message;
}

/** How many streams are live and how many are in error, for the status indicator. */
export function summarizeStreams(statuses) {
  let live = 0;
  let errored = 0;
  for (const status of statuses) {
    if (isLive(status)) live += 1;
    if (status?.state === "error") errored += 1;
  }
  return { live, errored, total: statuses.length };
}

/** Indicator text and tone, e.g. {text: "2 live, 1 error", tone: "error"}. */
export function describeSummary({ live, errored }) {
  const parts = [`${live} live`];
  if (errored > 0) parts.push(`${errored} error${errored === 1 ? "" : "s"}`);
  const tone = errored > 0 ? "error" : live > 0 ? "live" : "idle";
  return { text: parts.join(", "), tone };
}

/**
 * ComfyUI's node_errors ({id: {class_type, errors: [{message, details, extra_info: {input_name}}]}})
 * as a flat list, one entry per error, in node id order.
 */
export function listNodeErrors(nodeErrors) {
  const entries = [];
  if (!nodeErrors || typeof nodeErrors !== "object") return entries;
  const ids = Object.keys(nodeErrors).sort((a, b) => String(a).localeCompare(String(b), undefined, { numeric: true }));
  for (const nodeId of ids) {
    const nodeError = nodeErrors[nodeId] || {};
    const errors = Array.isArray(nodeError.errors) && nodeError.errors.length ? nodeError.errors : [{}];
    for (const error of errors) {
      entries.push({
        nodeId: String(nodeId),
        classType: nodeError.class_type || "",
        message: error.message || "invalid",
        details: error.details || "",
        inputName: error.extra_info?.input_name || "",
      });
    }
  }
  return entries;
}

/** One readable line per node error, e.g. "TrickleOutput #4, input images: Required input is missing". */
export function describeNodeError(entry, nodeTitle) {
  const name = nodeTitle || entry.classType || "node";
  const input = entry.inputName ? `, input ${entry.inputName}` : "";
  const details = entry.details && entry.details !== entry.inputName ? ` (${entry.details})` : "";
  return `${name} #${entry.nodeId}${input}: ${entry.message}${details}`;
}

/** The message of an error body ({error: "..."} or {message: "..."}), or a fallback naming the status. */
export function errorMessageOf(body, httpStatus) {
  if (body && typeof body === "object") {
    if (typeof body.error === "string" && body.error) return body.error;
    if (body.error && typeof body.error.message === "string") return body.error.message;
    if (typeof body.message === "string" && body.message) return body.message;
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 300);
  return httpStatus ? `HTTP ${httpStatus}` : "request failed";
}
