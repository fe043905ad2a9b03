// Pure helpers for the browser's H.264 paths (no DOM): the player route's length-prefixed message stream
// (dev/player.py documents the layout), the camera socket's message layout (dev/camera.py), and the
// WebCodecs codec string read from an access unit's SPS.

export const KIND_UNIT = 1;
export const KIND_EVENT = 2;
export const KEYFRAME_FLAG = 0x01;
export const JPEG_FLAG = 0x02;
export const AUDIO_FLAG = 0x04;
const CAMERA_HEADER_BYTES = 9;

/**
 * Splits the player route's byte stream into messages: `push(bytes)` with each chunk as it arrives calls
 * onUnit({data, keyframe, timestampUs, demuxedAtMs}) and onEvent(object) for every complete message.
 */
export function createUnitReader({ onUnit, onEvent }) {
  let pending = new Uint8Array(0);
  function push(chunk) {
    const joined = new Uint8Array(pending.length + chunk.length);
    joined.set(pending);
    joined.set(chunk, pending.length);
    let offset = 0;
    while (joined.length - offset >= 5) {
      const view = new DataView(joined.buffer, joined.byteOffset + offset);
      const length = view.getUint32(0);
      if (joined.length - offset - 4 < length) break;
      const kind = view.getUint8(4);
      if (kind === KIND_UNIT) {
        onUnit({
          keyframe: (view.getUint8(5) & KEYFRAME_FLAG) !== 0,
          timestampUs: Number(view.getBigInt64(6)),
          demuxedAtMs: view.getFloat64(14),
          data: joined.slice(offset + 22, offset + 4 + length),
        });
      } else if (kind === KIND_EVENT) {
        onEvent(JSON.parse(new TextDecoder().decode(joined.subarray(offset + 5, offset + 4 + length))));
      }
      offset += 4 + length;
    }
    pending = joined.slice(offset);
  }
  return { push };
}

/**
 * One camera socket message: flags (KEYFRAME_FLAG for an H.264 keyframe, JPEG_FLAG for a JPEG still,
 * AUDIO_FLAG for an Opus packet), big-endian microsecond timestamp, then the Annex B access unit, the JPEG
 * bytes or the Opus packet.
 */
export function cameraMessage(data, timestampUs, flags) {
  const message = new Uint8Array(CAMERA_HEADER_BYTES + data.byteLength);
  const view = new DataView(message.buffer);
  view.setUint8(0, flags);
  view.setBigUint64(1, BigInt(Math.max(0, Math.round(timestampUs))));
  message.set(new Uint8Array(data.buffer ?? data, data.byteOffset ?? 0, data.byteLength), CAMERA_HEADER_BYTES);
  return message;
}

/** "avc1.PPCCLL" from the first SPS (NAL type 7) of an Annex B access unit, or null when it has none. */
export function avcCodecString(annexb) {
  for (let i = 0; i + 6 < annexb.length; i += 1) {
    if (annexb[i] === 0 && annexb[i + 1] === 0 && annexb[i + 2] === 1 && (annexb[i + 3] & 0x1f) === 7) {
      const hex = (value) => value.toString(16).padStart(2, "0");
      return `avc1.${hex(annexb[i + 4])}${hex(annexb[i + 5])}${hex(annexb[i + 6])}`;
    }
  }
  return null;
}
