// web/js/common/test_sources.js: when the Go live form stops the local test source it started.
import assert from "node:assert/strict";
import { test } from "node:test";

import { StreamStore } from "../../web/js/common/store.js";
import { TestSourceTracker } from "../../web/js/common/test_sources.js";

const status = (id, state) => ({ request_id: id, state, counters: {} });

test("a reused stream id: the previous stream's final state does not stop the new source", () => {
  const store = new StreamStore();
  const tracker = new TestSourceTracker();
  store.apply(status("reuse", "stopped")); // the stream that had this id before
  tracker.add("reuse", "reuse"); // the new source, started before the new stream
  store.apply(status("other", "running")); // any store change meanwhile
  assert.deepEqual(tracker.ended(store), []);
  store.apply(status("reuse", "waiting"));
  assert.deepEqual(tracker.ended(store), []);
  store.apply(status("reuse", "running"));
  assert.deepEqual(tracker.ended(store), []);
  store.apply(status("reuse", "stopped")); // the new stream ends: now its source stops
  assert.deepEqual(tracker.ended(store), ["reuse"]);
  assert.equal(tracker.take("reuse"), "reuse");
  assert.equal(tracker.take("reuse"), null);
});

test("a stream that ends in error stops its source; unknown streams stop nothing", () => {
  const store = new StreamStore();
  const tracker = new TestSourceTracker();
  tracker.add("s", "src-s");
  assert.deepEqual(tracker.ended(store), []);
  store.apply(status("s", "starting"));
  tracker.ended(store);
  store.apply(status("s", "error"));
  assert.deepEqual(tracker.ended(store), ["s"]);
});
