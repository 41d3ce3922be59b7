// js-echo: returns its input unchanged (after checking it is JSON).
import { handler } from '../templates/js/step.js';

export function describe() {
  return { name: 'js-echo', version: '0.1.0', description: 'Returns its input (JavaScript)' };
}

export const run = handler((input) => input);
