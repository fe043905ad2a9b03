// Pure formatting and error-shaping helpers of web/js/common/format.js.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  describeNodeError, describeSummary, errorMessageOf, formatFps, formatLatency, formatStreamError,
  formatUptime, listNodeErrors, summarizeStreams,
} from "../../web/js/common/format.js";

test("numbers are shown the way the sidebar prints them", () => {
  assert.equal(formatFps(24.96), "25.0");
  assert.equal(formatFps(undefined), "-");
  assert.equal(formatUptime(4.9), "4s");
  assert.equal(formatUptime(65), "1m 05s");
  assert.equal(formatUptime(3725.4), "1h 02m 05s");
  assert.equal(formatUptime(-1), "-");
  assert.equal(formatLatency({ p50: 41.6, p95: 80.2 }), "42 / 80 ms");
  assert.equal(formatLatency(null), "-");
});

test("a stream error names the node when the server says which one failed", () => {
  assert.equal(formatStreamError(null), "");
  assert.equal(formatStreamError({ node_id: "7", node_type: "Boom", message: "kaput" }), "Boom #7: kaput");
  assert.equal(formatStreamError({ node_id: null, node_type: null, message: "input failed: 404" }),
    "input failed: 404");
});

test("the indicator counts live streams and errors", () => {
  const statuses = [{ state: "running" }, { state: "starting" }, { state: "error" }, { state: "stopped" }];
  const summary = summarizeStreams(statuses);
  assert.deepEqual(summary, { live: 2, errored: 1, total: 4 });
  assert.deepEqual(describeSummary(summary), { text: "2 live, 1 error", tone: "error" });
  assert.deepEqual(describeSummary({ live: 1, errored: 0 }), { text: "1 live", tone: "live" });
  assert.deepEqual(describeSummary({ live: 0, errored: 0 }), { text: "0 live", tone: "idle" });
});

test("node_errors become one readable line per error, never a JSON dump", () => {
  const nodeErrors = {
    10: { class_type: "TrickleOutput", errors: [{ type: "required_input_missing",
      message: "Required input is missing", details: "images", extra_info: { input_name: "images" } }] },
    2: { class_type: "ImageInvert", errors: [{ message: "Bad value", details: "", extra_info: {} }] },
  };
  const entries = listNodeErrors(nodeErrors);
  assert.deepEqual(entries.map((e) => e.nodeId), ["2", "10"]);
  assert.equal(describeNodeError(entries[1], "Trickle Output (Live)"),
    "Trickle Output (Live) #10, input images: Required input is missing");
  assert.equal(describeNodeError(entries[0]), "ImageInvert #2: Bad value");
  assert.ok(!describeNodeError(entries[1]).includes("{"));
  assert.deepEqual(listNodeErrors(null), []);
});

test("error bodies give their message, with a fallback naming the HTTP status", () => {
  assert.equal(errorMessageOf({ error: "Stream x not found" }, 404), "Stream x not found");
  assert.equal(errorMessageOf({ message: "nope" }, 400), "nope");
  assert.equal(errorMessageOf(null, 502), "HTTP 502");
  assert.equal(errorMessageOf("<html>bad gateway</html>", 502), "<html>bad gateway</html>");
});
