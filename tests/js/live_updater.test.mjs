// web/js/common/live_updater.js: debounced graph edits -> one update at a time -> applied/applying/rejected.
import assert from "node:assert/strict";
import { test } from "node:test";

import { EDIT_DEBOUNCE_MS, LIVE_STATES, LiveUpdater } from "../../web/js/common/live_updater.js";

/** Manual timers: `advance(ms)` runs due timers in order and lets their promises settle. */
function fakeTime() {
  let now = 0;
  let timers = [];
  let nextId = 1;
  const settle = async () => {
    for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
  };
  return {
    setTimer: (fn, ms) => { const id = nextId++; timers.push({ id, at: now + ms, fn }); return id; },
    clearTimer: (id) => { timers = timers.filter((t) => t.id !== id); },
    settle,
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
      }
      now = end;
      await settle();
    },
  };
}

/** A graph whose prompt the test edits, a server whose answers the test decides, and the updater. */
// The default server answers without a generation (as a server without live-control status keys would).
function harness({ answer = () => ({ ok: true, status: 200, data: { status: "success" } }) } = {}) {
  const time = fakeTime();
  const graph = { prompt: { gen: 1 } };
  const sent = [];
  const states = [];
  let hold = null; // when set, requests wait until the test releases them
  const updater = new LiveUpdater({
    readPrompt: async () => structuredClone(graph.prompt),
    send: async (prompt) => {
      sent.push(prompt);
      if (hold) await hold.promise;
      return answer(prompt);
    },
    onChange: (u) => states.push(u.state),
    initialPrompt: { gen: 1 },
    setTimer: time.setTimer,
    clearTimer: time.clearTimer,
  });
  const holdRequests = () => {
    let release;
    hold = { promise: new Promise((resolve) => { release = resolve; }) };
    return () => { hold = null; release(); };
  };
  return { time, graph, sent, states, updater, holdRequests };
}

test("a burst of edits sends one update, debounce after the last edit, within 200 ms", async () => {
  assert.ok(EDIT_DEBOUNCE_MS <= 200);
  const { time, graph, sent, states, updater } = harness();
  for (let gen = 2; gen <= 5; gen += 1) {
    graph.prompt = { gen };
    updater.edit();
    await time.advance(EDIT_DEBOUNCE_MS - 1); // still typing: nothing goes out
    assert.equal(sent.length, 0);
  }
  await time.advance(1);
  assert.deepEqual(sent, [{ gen: 5 }]);
  assert.deepEqual(states, ["applying", "applied"]);
  assert.equal(updater.state, LIVE_STATES.applied);
});

test("an edit that leaves the prompt as it is sends nothing (node moves, selection)", async () => {
  const { time, sent, states, updater } = harness();
  updater.edit();
  await time.advance(EDIT_DEBOUNCE_MS);
  assert.deepEqual(sent, []);
  assert.deepEqual(states, []);
  // The Run button forces it: the server answers the same prompt with a no-op.
  await updater.flush({ force: true });
  assert.deepEqual(sent, [{ gen: 1 }]);
  assert.equal(updater.state, LIVE_STATES.applied);
});

test("edits while an update is out coalesce into one more update with the newest prompt", async () => {
  const { time, graph, sent, updater, holdRequests } = harness();
  const release = holdRequests();
  graph.prompt = { gen: 2 };
  updater.edit();
  await time.advance(EDIT_DEBOUNCE_MS);
  assert.equal(updater.state, LIVE_STATES.applying);
  for (const gen of [3, 4, 5]) {
    graph.prompt = { gen };
    updater.edit();
    await time.advance(EDIT_DEBOUNCE_MS);
  }
  assert.deepEqual(sent, [{ gen: 2 }], "one request at a time");
  release();
  await time.settle();
  assert.deepEqual(sent, [{ gen: 2 }, { gen: 5 }]);
  assert.equal(updater.state, LIVE_STATES.applied);
  assert.deepEqual(updater.acceptedPrompt, { gen: 5 });
});

test("a 400 marks the edit rejected with its node errors; the next good edit applies", async () => {
  const nodeErrors = { 2: { class_type: "ImageInvert", errors: [{ message: "Required input is missing" }] } };
  const { time, graph, states, updater } = harness({
    answer: (prompt) => (prompt.broken
      ? { ok: false, status: 400, data: { error: "invalid prompt", node_errors: nodeErrors }, message: "invalid prompt" }
      : { ok: true, status: 200, data: { generation: 3, applied: true } }),
  });
  graph.prompt = { gen: 2, broken: true };
  updater.edit();
  await time.advance(EDIT_DEBOUNCE_MS);
  assert.equal(updater.state, LIVE_STATES.rejected);
  assert.deepEqual(updater.nodeErrors, nodeErrors);
  assert.equal(updater.message, "invalid prompt");
  assert.deepEqual(updater.acceptedPrompt, { gen: 1 }, "the stream keeps what it had");
  // The same rejected prompt is not sent again on every click; a changed one is.
  updater.edit();
  await time.advance(EDIT_DEBOUNCE_MS);
  assert.deepEqual(states, ["applying", "rejected"]);
  graph.prompt = { gen: 3 };
  updater.edit();
  await time.advance(EDIT_DEBOUNCE_MS);
  assert.equal(updater.state, LIVE_STATES.applying);
  assert.equal(updater.nodeErrors, null);
  updater.statusChanged({ state: "running", generation: 3, update_pending: false });
  assert.equal(updater.state, LIVE_STATES.applied);
});

test("an accepted update stays 'applying' until the stream's status reaches its generation", async () => {
  const { time, graph, updater } = harness({
    answer: () => ({ ok: true, status: 200, data: { generation: 7, applied: true } }),
  });
  updater.statusChanged({ state: "running", generation: 6, update_pending: false });
  graph.prompt = { gen: 2 };
  updater.edit();
  await time.advance(EDIT_DEBOUNCE_MS);
  assert.equal(updater.state, LIVE_STATES.applying);
  updater.statusChanged({ state: "running", generation: 7, update_pending: true });
  assert.equal(updater.state, LIVE_STATES.applying);
  updater.statusChanged({ state: "running", generation: 7, update_pending: false });
  assert.equal(updater.state, LIVE_STATES.applied);
});

test("a no-op update (the same params again) is applied at once: its generation is already running", async () => {
  const { time, graph, updater } = harness({
    answer: () => ({ ok: true, status: 200, data: { generation: 4, applied: false } }),
  });
  updater.statusChanged({ state: "running", generation: 4, update_pending: false });
  graph.prompt = { gen: 2 };
  updater.edit();
  await time.advance(EDIT_DEBOUNCE_MS);
  assert.equal(updater.state, LIVE_STATES.applied);
});

test("a stream that stopped ends the link: 409 or a final status, and no more requests", async () => {
  const { time, graph, sent, updater } = harness({
    answer: () => ({ ok: false, status: 409, data: { error: "not running" }, message: "not running" }),
  });
  graph.prompt = { gen: 2 };
  updater.edit();
  await time.advance(EDIT_DEBOUNCE_MS);
  assert.equal(updater.state, LIVE_STATES.ended);
  graph.prompt = { gen: 3 };
  updater.edit();
  await updater.flush({ force: true });
  await time.advance(EDIT_DEBOUNCE_MS);
  assert.equal(sent.length, 1);

  const other = harness();
  other.updater.statusChanged({ state: "stopped" });
  other.graph.prompt = { gen: 2 };
  other.updater.edit();
  await other.time.advance(EDIT_DEBOUNCE_MS);
  assert.equal(other.updater.state, LIVE_STATES.ended);
  assert.deepEqual(other.sent, []);
});
