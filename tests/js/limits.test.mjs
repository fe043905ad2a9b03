// web/js/common/limits.js: the Go live form refuses exactly the sizes the server refuses.
import assert from "node:assert/strict";
import { test } from "node:test";

import { FALLBACK_LIMITS, sizeInputAttrs, sizeLimitsOf, sizeProblem } from "../../web/js/common/limits.js";

test("the fallback is the server's 64..2048 in steps of 8, not the old 16..4096", () => {
  assert.deepEqual(sizeInputAttrs(), { min: 64, max: 2048, step: 8 });
  for (const value of [16, 32, 56, 2056, 4096, 100, 0, -8]) {
    assert.notEqual(sizeProblem("width", value), "", String(value));
  }
  for (const value of [64, 72, 512, 2048, "512"]) assert.equal(sizeProblem("height", value), "", String(value));
});

test("problems are worded like the server's 400", () => {
  assert.equal(sizeProblem("width", 4096), "Field params.width must be a multiple of 8 between 64 and 2048, got 4096");
  assert.equal(sizeProblem("height", "abc"), 'Field params.height must be an integer, got "abc"');
  assert.equal(sizeProblem("height", ""), 'Field params.height must be an integer, got ""');
  assert.equal(sizeProblem("width", 512.5), "Field params.width must be an integer, got 512.5");
});

test("the server's published limits replace the fallback", () => {
  const served = sizeLimitsOf({ min_dimension: 128, max_dimension: 1024, dimension_multiple: 16, max_streams: 2 });
  assert.deepEqual(served, { min_dimension: 128, max_dimension: 1024, dimension_multiple: 16 });
  assert.deepEqual(sizeInputAttrs(served), { min: 128, max: 1024, step: 16 });
  assert.notEqual(sizeProblem("width", 64, served), "");
  assert.notEqual(sizeProblem("width", 520, served), "");
  assert.equal(sizeProblem("width", 528, served), "");
});

test("an unusable answer (401, old server, garbage) keeps the fallback", () => {
  for (const answer of [null, undefined, { error: "Missing bearer token" }, { min_dimension: "64" }, "x"]) {
    assert.equal(sizeLimitsOf(answer), FALLBACK_LIMITS);
  }
  assert.ok(Object.isFrozen(FALLBACK_LIMITS));
});
