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

test("a node preview shows only streams started from its own graph, the last started first", () => {
  const store = new StreamStore({ storage: null });
  assert.equal(store.previewTarget("graph:a"), null);
  store.apply(status("rest", "running", 50, 1000)); // started elsewhere (REST, another page)
  store.apply(status("mine", "running", 2, 1010));
  store.focus("mine", "graph:a");
  store.apply(status("older", "running", 80, 1005));
  store.focus("older", "graph:a");
  store.apply(status("other", "running", 1, 1020));
  store.focus("other", "graph:b");
  assert.equal(store.previewTarget("graph:a"), "older", "graph a's last start, not graph b's 'other'");
  assert.equal(store.previewTarget("graph:b"), "other");
  assert.equal(store.previewTarget("graph:c"), null, "never another graph's stream");
  store.apply(status("older", "stopped", 81, 1005));
  assert.equal(store.previewTarget("graph:a"), "mine");
  store.apply(status("mine", "stopped", 3, 1010));
  assert.equal(store.previewTarget("graph:a"), null, "not the REST stream nor graph b's");
});

test("graph bindings survive a reload through the storage", () => {
  const saved = new Map();
  const storage = { getItem: (k) => saved.get(k) ?? null, setItem: (k, v) => saved.set(k, v) };
  const first = new StreamStore({ storage });
  first.focus("s1", "graph:a");
  const reloaded = new StreamStore({ storage });
  reloaded.apply(status("s1", "running", 1, 1));
  assert.equal(reloaded.previewTarget("graph:a"), "s1");
});
