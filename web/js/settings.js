// Trickle settings, all under one "Trickle" category of ComfyUI's settings dialog.
import { app } from "../../../scripts/app.js";
import { sizeInputAttrs } from "./common/limits.js";
import { DEFAULTS, PREVIEW_FPS_LIMIT, SETTING } from "./common/settings.js";

app.registerExtension({
  name: "Trickle.Settings",
  settings: [
    {
      id: SETTING.previewMaxFps,
      category: ["Trickle", "Preview", "Max FPS"],
      name: "Preview frames per second",
      tooltip:
        "Highest rate at which the sidebar and the Trickle Output node refresh their preview of a stream. " +
        "0 turns previews off. Previews never slow the stream down.",
      type: "slider",
      attrs: { min: 0, max: PREVIEW_FPS_LIMIT, step: 1 },
      defaultValue: DEFAULTS[SETTING.previewMaxFps],
    },
    {
      id: SETTING.previewMaxWidth,
      category: ["Trickle", "Preview", "Max width"],
      name: "Preview width limit (pixels)",
      tooltip: "Frames wider than this are scaled down on the server before they are sent to the browser.",
      type: "number",
      attrs: { min: 64, max: 1920, step: 16 },
      defaultValue: DEFAULTS[SETTING.previewMaxWidth],
    },
    {
      id: SETTING.subscribeUrl,
      category: ["Trickle", "Defaults", "Subscribe URL"],
      name: "Default subscribe URL",
      tooltip: "Trickle channel the stream's input frames are read from (prefilled in the Go live form).",
      type: "text",
      defaultValue: DEFAULTS[SETTING.subscribeUrl],
    },
    {
      id: SETTING.publishUrl,
      category: ["Trickle", "Defaults", "Publish URL"],
      name: "Default publish URL",
      tooltip: "Trickle channel the processed frames are published to (prefilled in the Go live form).",
      type: "text",
      defaultValue: DEFAULTS[SETTING.publishUrl],
    },
    {
      id: SETTING.width,
      category: ["Trickle", "Defaults", "Width"],
      name: "Default width",
      tooltip: "Frame width the workflow receives (prefilled in the Go live form).",
      type: "number",
      attrs: sizeInputAttrs(),
      defaultValue: DEFAULTS[SETTING.width],
    },
    {
      id: SETTING.height,
      category: ["Trickle", "Defaults", "Height"],
      name: "Default height",
      tooltip: "Frame height the workflow receives (prefilled in the Go live form).",
      type: "number",
      attrs: sizeInputAttrs(),
      defaultValue: DEFAULTS[SETTING.height],
    },
    {
      id: SETTING.bearerToken,
      category: ["Trickle", "Server", "Bearer token"],
      name: "API bearer token",
      tooltip:
        "Sent as 'Authorization: Bearer <token>' on the UI's stream calls. Needed only when ComfyUI was " +
        "started with COMFY_TRICKLE_TOKEN set.",
      type: "text",
      defaultValue: DEFAULTS[SETTING.bearerToken],
    },
  ],
});
