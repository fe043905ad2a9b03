// web/js/common/restart_holds.js: what a restart's hold keeps alive, and when it lets go.
import assert from "node:assert/strict";
import { test } from "node:test";

import { RestartHolds } from "../../web/js/common/restart_holds.js";
import { StreamStore } from "../../web/js/common/store.js";

const status = (id, state, startedAt) => ({ request_id: id, state, started_at: startedAt, counters: {} });

test("the old run's stop, even when its event comes after the answer, does not end the hold", () => {
  const store = new StreamStore();
  const holds = new RestartHolds();
  store.apply(status("cam", "running", 100));
  holds.hold("cam", store.get("cam"));
  holds.accepted("cam"); // the answer came before the old run's events
  for (const state of ["running", "stopping", "stopped"]) {
    store.apply(status("cam", state, 100));
    holds.update(store);
    assert.equal(holds.isHeld("cam"), true, state);
  }
  store.apply(status("cam", "starting", 107)); // the new run
  holds.update(store);
  assert.equal(holds.isHeld("cam"), false);
});

test("a new run seen before the answer ends the hold only once the restart was accepted", () => {
  const store = new StreamStore();
  const holds = new RestartHolds();
  store.apply(status("s", "running", 1));
  holds.hold("s", store.get("s"));
  store.apply(status("s", "running", 2));
  holds.update(store);
  assert.equal(holds.isHeld("s"), true);
  holds.accepted("s");
  holds.update(store);
  assert.equal(holds.isHeld("s"), false);
});

test("a failed restart releases at once; other streams are never held", () => {
  const holds = new RestartHolds();
  holds.hold("s", undefined);
  assert.equal(holds.isHeld("s"), true);
  assert.equal(holds.isHeld("other"), false);
  holds.release("s");
  assert.equal(holds.isHeld("s"), false);
});
