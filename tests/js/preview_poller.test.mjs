// web/js/common/preview_poller.js: capped rate, one request in flight, shared by viewers, 304 handling.
import assert from "node:assert/strict";
import { test } from "node:test";

import { IDLE_RETRY_MS, PreviewPoller } from "../../web/js/common/preview_poller.js";

/** Manual clock and timers: `advance(ms)` runs due timers in order and lets their promises settle. */
function fakeTime() {
  let now = 0;
  let timers = [];
  let nextId = 1;
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  return {
    now: () => now,
    setTimer: (fn, ms) => { const id = nextId++; timers.push({ id, at: now + ms, fn }); return id; },
    clearTimer: (id) => { timers = timers.filter((t) => t.id !== id); },
    async advance(ms) {
      const end = now + ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const due = timers[0];
        if (!due || due.at > end) break;
        timers.shift();
        now = due.at;
        due.fn();
        await settle();
        await settle();
      }
      now = end;
    },
    pending: () => timers.length,
  };
}

test("frames arrive at the capped rate and every viewer of a stream shares one request", async () => {
  const time = fakeTime();
  const asked = [];
  let seq = 0;
  const released = [];
  const poller = new PreviewPoller({
    fetchFrame: async (id, etag) => { asked.push([id, etag]); seq += 1; return { kind: "frame", image: `img${seq}`, etag: `"${seq}"` }; },
    fps: () => 5,
    release: (image) => released.push(image),
    ...time,
  });
  const a = [];
  const b = [];
  const stopA = poller.subscribe("s1", (image) => a.push(image));
  const stopB = poller.subscribe("s1", (image) => b.push(image));
  await time.advance(1000); // t=0,200,...,1000 -> 6 requests
  assert.equal(asked.length, 6);
  assert.deepEqual(a, b);
  assert.deepEqual(released, a, "each frame is released once, after every viewer got it");
  assert.deepEqual(asked.slice(0, 2), [["s1", null], ["s1", '"1"']], "the last ETag is sent back");
  stopA();
  stopB();
  await time.advance(2000);
  assert.equal(asked.length, 6, "no viewer, no requests");
  assert.equal(time.pending(), 0);
});

test("a slow answer never stacks requests and the rate setting is read on every tick", async () => {
  const time = fakeTime();
  let inFlight = 0;
  let maxInFlight = 0;
  let fps = 10;
  let calls = 0;
  const poller = new PreviewPoller({
    fetchFrame: async () => {
      calls += 1;
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => time.setTimer(resolve, 250)); // slower than the 100 ms period
      inFlight -= 1;
      return { kind: "same" };
    },
    fps: () => fps,
    ...time,
  });
  poller.subscribe("s1", () => {});
  await time.advance(1000);
  assert.equal(maxInFlight, 1);
  assert.ok(calls >= 3 && calls <= 5, `calls=${calls}`);
  fps = 0; // previews switched off
  const before = calls;
  await time.advance(3000);
  assert.equal(calls, before, "no requests while the rate is 0");
});

test("missing frames back off instead of hammering the server", async () => {
  const time = fakeTime();
  let calls = 0;
  const poller = new PreviewPoller({ fetchFrame: async () => { calls += 1; return { kind: "none" }; },
    fps: () => 15, ...time });
  poller.subscribe("s1", () => {});
  await time.advance(IDLE_RETRY_MS * 3);
  assert.equal(calls, 4); // t=0, 1000, 2000, 3000
});

test("hidden pages pause polling", async () => {
  const time = fakeTime();
  let calls = 0;
  let hidden = true;
  const poller = new PreviewPoller({ fetchFrame: async () => { calls += 1; return { kind: "same" }; },
    fps: () => 5, paused: () => hidden, ...time });
  poller.subscribe("s1", () => {});
  await time.advance(5000);
  assert.equal(calls, 0);
  hidden = false;
  await time.advance(1000);
  assert.ok(calls >= 4, `calls=${calls}`);
});
