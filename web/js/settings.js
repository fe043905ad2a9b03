// Trickle settings, all under one "Trickle" category of ComfyUI's settings dialog.
import { app } from "../../../scripts/app.js";
import { sizeInputAttrs } from "./common/limits.js";
import { DEFAULTS, PREVIEW_FPS_LIMIT, SETTING, storeToken } from "./common/settings.js";

// One entry of ComfyUI's settings dialog, under Trickle > `section` > `label`, with our default.
function setting(id, [section, label], name, tooltip, type, attrs, onChange) {
  const entry = { id, category: ["Trickle", section, label], name, tooltip, type, attrs, defaultValue: DEFAULTS[id] };
  return onChange ? { ...entry, onChange } : entry;
}

app.registerExtension({
  name: "Trickle.Settings",
  settings: [
    setting(
      SETTING.previewMaxFps,
      ["Preview", "Max FPS"],
      "Preview frames per second",
      "Highest rate at which the sidebar and the Trickle Output node refresh their preview of a stream. " +
        "0 turns previews off. Previews never slow the stream down.",
      "slider",
      { min: 0, max: PREVIEW_FPS_LIMIT, step: 1 },
    ),
    setting(
      SETTING.previewMaxWidth,
      ["Preview", "Max width"],
      "Preview width limit (pixels)",
      "Frames wider than this are scaled down on the server before they are sent to the browser.",
      "number",
      { min: 64, max: 1920, step: 16 },
    ),
    setting(
      SETTING.subscribeUrl,
      ["Defaults", "Subscribe URL"],
      "Default subscribe URL",
      "Trickle channel the stream's input frames are read from (prefilled in the Go live form).",
      "text",
    ),
    setting(
      SETTING.publishUrl,
      ["Defaults", "Publish URL"],
      "Default publish URL",
      "Trickle channel the processed frames are published to (prefilled in the Go live form).",
      "text",
    ),
    setting(
      SETTING.width,
      ["Defaults", "Width"],
      "Default width",
      "Frame width the workflow receives (prefilled in the Go live form).",
      "number",
      sizeInputAttrs(),
    ),
    setting(
      SETTING.height,
      ["Defaults", "Height"],
      "Default height",
      "Frame height the workflow receives (prefilled in the Go live form).",
      "number",
      sizeInputAttrs(),
    ),
    setting(
      SETTING.bearerToken,
      ["Server", "Bearer token"],
      "API bearer token",
      "Sent as 'Authorization: Bearer <token>' on the UI's stream calls. Needed only when ComfyUI was " +
        "started with COMFY_TRICKLE_TOKEN set. Kept in this browser only: the field empties once stored.",
      "text",
      undefined,
      moveTokenToBrowser,
    ),
  ],
  // A token stored server-side by an older version moves to this browser and leaves the server.
  async setup() {
    moveTokenToBrowser(app.extensionManager?.setting?.get(SETTING.bearerToken));
  },
});

// The typed token goes to localStorage; the server-side setting is cleared at once.
function moveTokenToBrowser(value) {
  const token = String(value || "").trim();
  if (!token) return;
  storeToken(token);
  // onChange runs before the frontend stores the typed value: clear it once that store has been sent.
  setTimeout(() => {
    Promise.resolve(app.extensionManager?.setting?.set(SETTING.bearerToken, "")).catch(() => {});
  }, 0);
}
