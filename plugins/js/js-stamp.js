// js-stamp: takes a JSON object, appends "js" to its `path` array and adds
// `js: {keys, attempt}`. Anything but an object is invalid-input; config
// {"fail": "transient"|"permanent"} fails on purpose (for retry tests).
import { handler, StepError, log } from '../templates/js/step.js';

export function describe() {
  return { name: 'js-stamp', version: '0.1.0', description: 'Stamps a JSON object with "js" (JavaScript example)' };
}

export const run = handler((input, ctx) => {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw StepError.invalidInput(`expected a JSON object, got ${Array.isArray(input) ? 'an array' : typeof input}`);
  }
  if (ctx.config.fail) {
    throw new StepError(ctx.config.fail, `failing on purpose (attempt ${ctx.attempt})`);
  }
  const keys = Object.keys(input).length;
  log.info(`stamping an object of ${keys} keys`);
  const path = Array.isArray(input.path) ? input.path : [];
  return { ...input, path: [...path, 'js'], js: { keys } };
});
