// A stream card's actions beyond Stop and Restart (restart.js): the watch URL and a player command for it,
// and Dismiss (forget a finished stream: DELETE /stream/{id}).
import { api } from "../../../../scripts/api.js";
import { getSetting, toast, toastFailure, trickleFetch } from "./http.js";
import { SETTING } from "./settings.js";
import { streamStore } from "./store.js";

/** Absolute URL of GET /stream/{id}/watch: the stream's output as one MPEG-TS response for any player. */
export function watchUrl(requestId) {
  return new URL(api.apiURL(`/stream/${encodeURIComponent(requestId)}/watch`), window.location.href).href;
}

/** `ffplay '<watch URL>'`, with the token header (named, never shown) when the server needs one. */
export function watchCommand(requestId) {
  const token = String(getSetting(SETTING.bearerToken) || "").trim();
  const header = token ? `-headers "Authorization: Bearer $COMFY_TRICKLE_TOKEN" ` : "";
  return `ffplay ${header}'${watchUrl(requestId)}'`;
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("info", "Trickle: copied", text);
    return true;
  } catch {
    // no clipboard permission (plain http on another host): the text stays selectable on the card
    toast("warn", "Trickle: copy it by hand", text);
    return false;
  }
}

export async function dismissStream(requestId) {
  const result = await trickleFetch(`/stream/${encodeURIComponent(requestId)}`, { method: "DELETE" });
  if (!result.ok && result.status !== 404) {
    toastFailure(`Trickle: cannot dismiss ${requestId}`, result);
    return false;
  }
  streamStore.remove(requestId); // the trickle.removed event says the same; do not wait for it
  return true;
}
