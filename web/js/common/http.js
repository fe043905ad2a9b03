// Every HTTP call of the extension goes through here: api.fetchApi (so ComfyUI's base path, user
// header and /api mirror apply) plus the bearer token from the Trickle settings when one is set.
import { api } from "../../../../scripts/api.js";
import { app } from "../../../../scripts/app.js";
import { errorMessageOf } from "./format.js";
import { readSetting, storedToken } from "./settings.js";

export function getSetting(id) {
  return readSetting((key) => app.extensionManager?.setting?.get(key), id);
}

function authHeaders(headers = {}) {
  const token = storedToken();
  return token ? { ...headers, Authorization: `Bearer ${token}` } : { ...headers };
}

/** Raw fetch (for binary answers such as preview JPEGs); network failures propagate. */
export function trickleFetchRaw(path, init = {}) {
  return api.fetchApi(path, { ...init, headers: authHeaders(init.headers) });
}

/**
 * JSON request; never throws. Returns {ok, status, data, message}: `data` is the parsed body (or null),
 * `message` a readable error for failures (the server's `error` field when it sent one).
 */
export async function trickleFetch(path, { method = "GET", body } = {}) {
  const headers = body === undefined ? {} : { "Content-Type": "application/json" };
  let response;
  try {
    response = await trickleFetchRaw(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    return { ok: false, status: 0, data: null, message: `Cannot reach ComfyUI: ${error?.message || error}` };
  }
  const text = await response.text().catch(() => "");
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  const message = response.ok ? "" : errorMessageOf(data, response.status);
  return { ok: response.ok, status: response.status, data, message };
}

/** A toast through ComfyUI's own toast service. */
export function toast(severity, summary, detail, life = severity === "error" ? 8000 : 3000) {
  app.extensionManager?.toast?.add({ severity, summary, detail, life });
}

/** Toast for a failed call; 401 says where the token is configured. */
export function toastFailure(summary, result) {
  const hint = result.status === 401 ? " Set the token in Settings > Trickle > Server." : "";
  toast("error", summary, `${result.message}${hint}`);
}
