// {{name}}: greets {"name": "..."} with {"greeting": "Hello, ...!"}.
// With config {"database": NAME} (and the flow granting it), it also runs one query.
import { handler, StepError, log, db } from './step.js';

export function describe() {
  return { name: '{{name}}', version: '0.1.0', description: 'A flowhost step' };
}

export const run = handler((input, ctx) => {
  if (!input || typeof input.name !== 'string' || input.name === '') {
    throw StepError.invalidInput('name is missing');
  }
  log.info(`greeting ${input.name} (attempt ${ctx.attempt})`);
  const out = { greeting: `Hello, ${input.name}!` };
  if (ctx.config.database) {
    // Parameters are bound (?1 on SQLite, $1 on PostgreSQL), never pasted into the SQL.
    out.rows = db(ctx.config.database).query('select ?1 as name, length(?1) as letters', [input.name]);
  }
  return out;
});
