// flowhost step helper for JavaScript: JSON in and out, typed errors, logging.
//
//   import { handler, StepError, log } from './step.js';
//   export function describe() { return { name: 'greet', version: '0.1.0', description: '...' }; }
//   export const run = handler((input, ctx) => {
//     if (!input.name) throw StepError.invalidInput('name is missing');
//     log.info(`greeting ${input.name}`);
//     return { greeting: `Hello, ${input.name}!` };
//   });
//
// `run` receives the parsed input and a context { flow, runId, stepId, attempt,
// config, executionKey } (config parsed, {} when none) and returns any JSON
// value. `executionKey` is `<run id>/<step path>`, the same on every attempt
// and after a host restart (a step in flight then runs again): use it to make
// side effects idempotent.
// Throwing a StepError (or any Error whose `kind` is "transient", "permanent"
// or "invalid-input") fails the call with that step-error. Any other exception
// is a bug: its message and stack go to the host log and the call traps.

import { log as hostLog, executionKey as hostExecutionKey } from 'flowhost:step/host@0.1.1';

const KINDS = { transient: 'transient', permanent: 'permanent', 'invalid-input': 'invalid-input', invalidInput: 'invalid-input' };

export class StepError extends Error {
  constructor(kind, message) {
    super(message);
    if (!(kind in KINDS)) throw new TypeError(`unknown step-error kind: ${kind}`);
    this.name = 'StepError';
    this.kind = KINDS[kind];
  }
  /** Retrying may help. */
  static transient(message) { return new StepError('transient', message); }
  /** Retrying will not help. */
  static permanent(message) { return new StepError('permanent', message); }
  /** The input was not acceptable. */
  static invalidInput(message) { return new StepError('invalid-input', message); }
}

/** The host log, tagged with the step. Volume per call is capped by the host. */
export const log = {
  trace: (message) => hostLog('trace', String(message)),
  debug: (message) => hostLog('debug', String(message)),
  info: (message) => hostLog('info', String(message)),
  warn: (message) => hostLog('warn', String(message)),
  error: (message) => hostLog('error', String(message)),
};

// componentize-qjs maps a value thrown from an export returning
// result<string, step-error> to the err case: the step-error variant is
// { tag, val }.
function fail(kind, message) {
  throw { tag: kind, val: String(message) };
}

function parse(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return fail('invalid-input', `${what} is not valid JSON: ${e.message}`);
  }
}

/** Wraps `fn(input, ctx)` into the `run` export of the step world. */
export function handler(fn) {
  return function run(ctx, input) {
    const value = parse(input, 'input');
    const context = {
      flow: ctx.flow,
      runId: ctx.runId,
      stepId: ctx.stepId,
      attempt: ctx.attempt,
      config: parse(ctx.config || '{}', 'config') ?? {}, // a missing config is {}
      get executionKey() { return hostExecutionKey(); }, // asked of the host when read
    };
    let out;
    try {
      out = fn(value, context);
    } catch (e) {
      if (e instanceof Error && typeof e.kind === 'string' && e.kind in KINDS) {
        fail(KINDS[e.kind], e.message);
      }
      if (e && typeof e === 'object' && !(e instanceof Error) && Object.values(KINDS).includes(e.tag)) {
        throw e; // already a step-error variant
      }
      log.error(`uncaught exception: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack || ''}` : String(e)}`);
      throw e;
    }
    return JSON.stringify(out === undefined ? null : out);
  };
}
