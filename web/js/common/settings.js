// Setting ids and defaults, shared by settings.js (which registers them) and the features that read
// them. Pure: no ComfyUI imports.

/** Id of the Trickle sidebar tab (the frontend derives its toggle command from it). */
export const SIDEBAR_TAB_ID = "trickle.streams";

export const SETTING = Object.freeze({
  previewMaxFps: "Trickle.Preview.MaxFps",
  previewMaxWidth: "Trickle.Preview.MaxWidth",
  subscribeUrl: "Trickle.Defaults.SubscribeUrl",
  publishUrl: "Trickle.Defaults.PublishUrl",
  width: "Trickle.Defaults.Width",
  height: "Trickle.Defaults.Height",
  bearerToken: "Trickle.Server.BearerToken",
});

export const DEFAULTS = Object.freeze({
  [SETTING.previewMaxFps]: 5,
  [SETTING.previewMaxWidth]: 512,
  [SETTING.subscribeUrl]: "",
  [SETTING.publishUrl]: "",
  [SETTING.width]: 512,
  [SETTING.height]: 512,
  [SETTING.bearerToken]: "",
});

/**
 * The bearer token lives in this browser's localStorage only, never in ComfyUI's server-side settings
 * (an unauthenticated GET /settings returns those). The settings-dialog entry only takes it in: the value
 * typed there is moved here and the server copy is cleared (also for tokens stored by older versions).
 */
export const TOKEN_STORAGE_KEY = "comfy-trickle.bearerToken";

export function storedToken() {
  try {
    return String(globalThis.localStorage?.getItem(TOKEN_STORAGE_KEY) || "").trim();
  } catch {
    return "";
  }
}

export function storeToken(value) {
  try {
    const token = String(value || "").trim();
    if (token) globalThis.localStorage?.setItem(TOKEN_STORAGE_KEY, token);
    else globalThis.localStorage?.removeItem(TOKEN_STORAGE_KEY);
  } catch {
    // storage disabled: the token is simply not remembered
  }
}

/** Highest preview rate the setting allows; previews are a glance, not a second video stream. */
export const PREVIEW_FPS_LIMIT = 15;

/** Reads a setting through `getter(id)` (app.extensionManager.setting.get), falling back to its default. */
export function readSetting(getter, id) {
  let value;
  try {
    value = getter?.(id);
  } catch {
    value = undefined;
  }
  return value === undefined || value === null ? DEFAULTS[id] : value;
}

/** Preview frames per second from the setting, clamped to [0, PREVIEW_FPS_LIMIT]; 0 turns previews off. */
export function previewFps(getter) {
  const fps = Number(readSetting(getter, SETTING.previewMaxFps));
  if (!Number.isFinite(fps) || fps <= 0) return 0;
  return Math.min(fps, PREVIEW_FPS_LIMIT);
}
