// The browser's H.264 message helpers (web/js/common/h264_units.js) against the layouts of dev/player.py
// and dev/camera.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  JPEG_FLAG, KEYFRAME_FLAG, avcCodecString, cameraMessage, createUnitReader,
} from "../../web/js/common/h264_units.js";

function playerUnit(data, keyframe, timestampUs, demuxedAtMs) {
  const message = new Uint8Array(22 + data.length);
  const view = new DataView(message.buffer);
  view.setUint32(0, 18 + data.length);
  view.setUint8(4, 1);
  view.setUint8(5, keyframe ? 1 : 0);
  view.setBigInt64(6, BigInt(timestampUs));
  view.setFloat64(14, demuxedAtMs);
  message.set(data, 22);
  return message;
}

function playerEvent(object) {
  const payload = new TextEncoder().encode(JSON.stringify(object));
  const message = new Uint8Array(5 + payload.length);
  new DataView(message.buffer).setUint32(0, 1 + payload.length);
  message[4] = 2;
  message.set(payload, 5);
  return message;
}

test("units and events come out whole however the bytes are split", () => {
  const stream = new Uint8Array([
    ...playerUnit([0, 0, 0, 1, 0x65, 9], true, 33333, 1700000000123.5),
    ...playerUnit([0, 0, 1, 0x41], false, 66666, 1700000000160),
    ...playerEvent({ type: "end" }),
  ]);
  for (const step of [1, 3, 7, stream.length]) {
    const units = [];
    const events = [];
    const reader = createUnitReader({ onUnit: (unit) => units.push(unit), onEvent: (event) => events.push(event) });
    for (let offset = 0; offset < stream.length; offset += step) reader.push(stream.slice(offset, offset + step));
    assert.deepEqual(units.map((u) => [Array.from(u.data), u.keyframe, u.timestampUs, u.demuxedAtMs]), [
      [[0, 0, 0, 1, 0x65, 9], true, 33333, 1700000000123.5],
      [[0, 0, 1, 0x41], false, 66666, 1700000000160],
    ]);
    assert.deepEqual(events, [{ type: "end" }]);
  }
});

test("a camera message carries the flags, the timestamp and the unit", () => {
  const message = cameraMessage(new Uint8Array([0, 0, 0, 1, 0x65]), 1234567, KEYFRAME_FLAG);
  const view = new DataView(message.buffer);
  assert.equal(view.getUint8(0), 1);
  assert.equal(view.getBigUint64(1), 1234567n);
  assert.deepEqual(Array.from(message.slice(9)), [0, 0, 0, 1, 0x65]);
  assert.equal(new DataView(cameraMessage(new Uint8Array([1]), 5, 0).buffer).getUint8(0), 0);
  assert.equal(new DataView(cameraMessage(new Uint8Array([0xff, 0xd8]), 5, JPEG_FLAG).buffer).getUint8(0), 2);
});

test("the codec string comes from the SPS", () => {
  const unit = new Uint8Array([0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0, 0, 1, 0x65]);
  assert.equal(avcCodecString(unit), "avc1.42c01f");
  assert.equal(avcCodecString(new Uint8Array([0, 0, 1, 0x41, 1, 2, 3, 4])), null);
});
