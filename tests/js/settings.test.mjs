// web/js/common/settings.js: ids are namespaced and the preview rate is clamped.
import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULTS, PREVIEW_FPS_LIMIT, SETTING, previewFps, readSetting } from "../../web/js/common/settings.js";

test("every setting id is in the Trickle namespace and has a default", () => {
  for (const id of Object.values(SETTING)) {
    assert.match(id, /^Trickle\.[A-Z]\w*\.[A-Z]\w*$/);
    assert.ok(id in DEFAULTS, id);
  }
  assert.equal(DEFAULTS[SETTING.previewMaxFps], 5);
});

test("the preview rate defaults to 5, 0 turns it off and it never exceeds the cap", () => {
  assert.equal(previewFps(() => undefined), 5);
  assert.equal(previewFps(() => 0), 0);
  assert.equal(previewFps(() => "abc"), 0);
  assert.equal(previewFps(() => 1000), PREVIEW_FPS_LIMIT);
  assert.equal(readSetting(() => { throw new Error("not ready"); }, SETTING.width), 512);
});
