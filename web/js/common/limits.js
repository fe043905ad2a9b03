// The bounds a stream start request must keep, as the server checks them (GET /stream/limits answers
// streams/limits.py's StreamLimits). Pure: no ComfyUI imports, so tests/js runs it under `node --test`.

/**
 * The server's default bounds, for the settings dialog (registered before any request can be made) and
 * until GET /stream/limits has answered. Same field names as the route's answer; a Python test keeps
 * these numbers equal to StreamLimits' defaults.
 */
export const FALLBACK_LIMITS = Object.freeze({
  min_dimension: 64,
  max_dimension: 2048,
  dimension_multiple: 8,
});

const SIZE_FIELDS = ["min_dimension", "max_dimension", "dimension_multiple"];

/** The size bounds of a GET /stream/limits answer, or the fallback when the answer lacks them. */
export function sizeLimitsOf(answer) {
  const usable = SIZE_FIELDS.every((name) => Number.isInteger(answer?.[name]) && answer[name] > 0);
  if (!usable) return FALLBACK_LIMITS;
  return Object.freeze(Object.fromEntries(SIZE_FIELDS.map((name) => [name, answer[name]])));
}

/** `min`/`max`/`step` attributes for a width or height input. */
export function sizeInputAttrs(limits = FALLBACK_LIMITS) {
  return { min: limits.min_dimension, max: limits.max_dimension, step: limits.dimension_multiple };
}

/**
 * Why a width or height would be refused, in the server's words, or "" when it is fine.
 * `name` is "width" or "height"; `value` what the input holds (a number or a string).
 */
export function sizeProblem(name, value, limits = FALLBACK_LIMITS) {
  const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof number !== "number" || !Number.isInteger(number)) {
    return `Field params.${name} must be an integer, got ${JSON.stringify(value)}`;
  }
  const { min_dimension: min, max_dimension: max, dimension_multiple: step } = limits;
  if (number < min || number > max || number % step !== 0) {
    return `Field params.${name} must be a multiple of ${step} between ${min} and ${max}, got ${number}`;
  }
  return "";
}
