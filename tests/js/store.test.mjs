// web/js/common/store.js: the page's stream list, fed by REST listings and pushed status events.
import assert from "node:assert/strict";
import { test } from "node:test";

import { StreamStore } from "../../web/js/common/store.js";

const status = (id, state, uptime = 0, startedAt = 0) =>
  ({ request_id: id, state, counters: { uptime_s: uptime }, started_at: startedAt });

test("events add and update streams and notify subscribers", () => {
  const store = new StreamStore();
  const seen = [];
  const unsubscribe = store.subscribe((s) => seen.push(s.list().map((x) => `${x.request_id}:${x.state}`)));
  store.apply(status("a", "starting"));
  store.apply(status("a", "running"));
  store.remove("a");
  unsubscribe();
  store.apply(status("b", "running"));
  assert.deepEqual(seen, [["a:starting"], ["a:running"], []]);
  assert.equal(store.apply({ state: "running" }), false, "a status without request_id is ignored");
});

test("streams are listed newest start first, and keep their place when they finish", () => {
  const store = new StreamStore();
  store.replaceAll({ old: status("old", "running", 100, 1000), done: status("done", "stopped", 5, 1050),
    fresh: status("fresh", "running", 3, 1100) });
  assert.deepEqual(store.list().map((s) => s.request_id), ["fresh", "done", "old"]);
  store.apply(status("fresh", "stopped", 4, 1100));
  store.apply(status("old", "running", 101, 1000));
  assert.deepEqual(store.list().map((s) => s.request_id), ["fresh", "done", "old"]);
});

test("a listing that raced with events keeps what the events said", () => {
  const store = new StreamStore();
  store.apply(status("a", "running"));
  const mark = store.mark();
  store.apply(status("a", "stopped")); // arrives while GET /streams is out
  store.apply(status("new", "starting"));
  store.remove("gone");
  store.replaceAll({ a: status("a", "running"), gone: status("gone", "running") }, mark);
  assert.equal(store.get("a").state, "stopped");
  assert.equal(store.get("new").state, "starting");
  assert.equal(store.get("gone"), null);
});

test("the node preview follows the focused stream while it is live, else the newest live one", () => {
  const store = new StreamStore();
  assert.equal(store.previewTarget(), null);
  store.apply(status("rest", "running", 50));
  store.apply(status("mine", "running", 2));
  store.apply(status("older", "running", 80));
  store.focus("older");
  assert.equal(store.previewTarget(), "older");
  store.apply(status("older", "stopped", 81));
  assert.equal(store.previewTarget(), "mine");
});
