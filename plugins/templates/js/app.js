// {{name}}: greets {"name": "..."} with {"greeting": "Hello, ...!"}.
import { handler, StepError, log } from './step.js';

export function describe() {
  return { name: '{{name}}', version: '0.1.0', description: 'A flowhost step' };
}

export const run = handler((input, ctx) => {
  if (!input || typeof input.name !== 'string' || input.name === '') {
    throw StepError.invalidInput('name is missing');
  }
  log.info(`greeting ${input.name} (attempt ${ctx.attempt})`);
  return { greeting: `Hello, ${input.name}!` };
});
