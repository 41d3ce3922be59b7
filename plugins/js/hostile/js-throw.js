// js-throw: throws. {"typed": true} throws a StepError (a permanent step-error);
// otherwise a plain TypeError, which is a bug: the call traps.
import { handler, StepError } from '../../templates/js/step.js';

export function describe() {
  return { name: 'js-throw', version: '0.1.0', description: 'Throws (hostile, JavaScript)' };
}

export const run = handler((input) => {
  if (input && input.typed) throw StepError.permanent('hostile typed throw');
  throw new TypeError('hostile throw: undefined is not a function');
});
