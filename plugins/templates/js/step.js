// flowhost step helper for JavaScript: JSON in and out, typed errors, logging,
// SQL databases, key-value state and outbound HTTP.
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
//
// Databases and key-value state (granted by the flow: allow: {sql: [orders], kv: [counters]}):
//
//   const orders = db('orders');
//   const rows = orders.query('select id, total from orders where id = ?1', [7]); // [{id, total}]
//   orders.execute('update orders set total = ?1 where id = ?2', [12.5, 7]);     // rows changed
//   orders.batch([['insert ...', [1]], ['insert ...', [2]]]);                    // all or nothing
//   const tx = orders.transaction();   // rolled back unless committed, also when the call ends
//   tx.execute('...', [...]); tx.commit();
//   const seen = kv('counters').increment('orders', 1);
//
// Parameters are bound, never pasted into the SQL: null/undefined, booleans,
// integers (safe integers), other numbers (real), strings, Uint8Array (blob);
// or a WIT value written out, e.g. { tag: 'real', val: 1 }. A failed call throws
// a SqlError or KvError with `.kind` (the WIT error case: denied, invalid,
// rejected, too-large, unavailable); uncaught, it fails the step: unavailable
// and rejected as transient, the rest as permanent.

import { log as hostLog, executionKey as hostExecutionKey } from 'flowhost:step/host@0.1.2';
import * as sqlHost from 'flowhost:step/sql@0.1.2';
import * as kvHost from 'flowhost:step/kv@0.1.2';
import * as httpHost from 'flowhost:step/http@0.1.2';

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
      if (e instanceof HostCallError) fail(e.stepKind, e.message);
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

// --- SQL and key-value state -------------------------------------------------

// The words of each error case in messages ("sql too large: ...", as the Rust SDK).
const WORDS = { 'too-large': 'too large' };

/** A failed host call (database, key-value, HTTP): its `kind` and the host's message. */
class HostCallError extends Error {
  constructor(what, kind, message, transient) {
    super(`${what} ${WORDS[kind] || kind}: ${message}`);
    this.kind = kind;
    this.detail = String(message); // the host's message, naming the database, namespace or URL
    this.transient = transient;
  }
  /** The step-error it becomes when uncaught: `transient` where a retry may help. */
  get stepKind() { return this.transient.includes(this.kind) ? 'transient' : 'permanent'; }
}

/** A failed database call; `kind` is denied, invalid, rejected, too-large or unavailable. */
export class SqlError extends HostCallError {
  constructor(kind, message) {
    super('sql', kind, message, ['unavailable', 'rejected']); // a conflict or an outage
    this.name = 'SqlError';
  }
}

/** A failed key-value call; `kind` is denied, invalid or unavailable. */
export class KvError extends HostCallError {
  constructor(kind, message) {
    super('kv', kind, message, ['unavailable']);
    this.name = 'KvError';
  }
}

// componentize-qjs throws an import's err case as an Error whose `payload` is
// the variant { tag, val }.
function hostCall(Err, call) {
  try {
    return call();
  } catch (e) {
    const p = e && e.payload;
    if (p && typeof p.tag === 'string') throw new Err(p.tag, p.val);
    throw e;
  }
}

/** One parameter as the WIT `value` variant. */
function sqlValue(v, i) {
  if (v === null || v === undefined) return { tag: 'null' };
  switch (typeof v) {
    case 'boolean': return { tag: 'boolean', val: v };
    case 'number': return Number.isSafeInteger(v) ? { tag: 'integer', val: v } : { tag: 'real', val: v };
    case 'bigint':
      if (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return { tag: 'integer', val: Number(v) };
      throw new SqlError('invalid', `parameter ${i + 1}: ${v} is past 2^53; pass it as a string`);
    case 'string': return { tag: 'text', val: v };
    default:
  }
  if (v instanceof Uint8Array) return { tag: 'blob', val: v };
  if (typeof v === 'object' && ['null', 'boolean', 'integer', 'real', 'text', 'blob'].includes(v.tag)) return v;
  const what = Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
  throw new SqlError('invalid', `parameter ${i + 1} is ${what}: pass JSON.stringify(value) to store JSON`);
}

function sqlParams(params) {
  if (params === undefined) return [];
  if (!Array.isArray(params)) throw new SqlError('invalid', 'parameters must be an array');
  return params.map(sqlValue);
}

function sqlText(sql) {
  if (typeof sql !== 'string') throw new SqlError('invalid', 'the SQL must be a string');
  return sql;
}

/** A database the flow grants: `db('orders')`. Nothing is checked until the first call. */
export function db(name) {
  return new Database(name);
}

class Database {
  constructor(name) { this.name = String(name); }

  /** Runs a query; returns its rows, objects keyed by column name. */
  query(sql, params) { return JSON.parse(this.queryJson(sql, params)); }

  /** Runs a query; returns its rows as JSON text (for integers past 2^53). */
  queryJson(sql, params) {
    const args = [this.name, sqlText(sql), sqlParams(params)];
    return hostCall(SqlError, () => sqlHost.query(...args));
  }

  /** Runs a statement; returns the number of rows it changed. */
  execute(sql, params) {
    const args = [this.name, sqlText(sql), sqlParams(params)];
    return hostCall(SqlError, () => sqlHost.execute(...args));
  }

  /** Runs `[[sql, params], ...]` in one transaction, all or nothing; returns each one's changed-row count. */
  batch(statements) {
    if (!Array.isArray(statements)) throw new SqlError('invalid', 'batch takes an array of [sql, params]');
    const list = statements.map((s) => {
      const [sql, params] = Array.isArray(s) ? s : [s && s.sql, s && s.params];
      return { sql: sqlText(sql), params: sqlParams(params) };
    });
    return hostCall(SqlError, () => sqlHost.batch(this.name, list));
  }

  /** Opens a transaction; it is rolled back unless `commit()` succeeds. */
  transaction() {
    return new Transaction(hostCall(SqlError, () => sqlHost.begin(this.name)));
  }
}

/** An open transaction on one pooled connection. */
class Transaction {
  constructor(handle) { this.handle = handle; }

  #open() {
    if (!this.handle) throw new SqlError('unavailable', 'the transaction is already finished');
    return this.handle;
  }

  #finish(how) {
    const handle = this.#open();
    this.handle = null;
    try {
      hostCall(SqlError, () => handle[how]());
    } finally {
      // Drop the handle now rather than at the end of the call.
      if (typeof Symbol.dispose === 'symbol' && typeof handle[Symbol.dispose] === 'function') handle[Symbol.dispose]();
    }
  }

  query(sql, params) { return JSON.parse(this.queryJson(sql, params)); }

  queryJson(sql, params) {
    const handle = this.#open();
    const args = [sqlText(sql), sqlParams(params)];
    return hostCall(SqlError, () => handle.query(...args));
  }

  execute(sql, params) {
    const handle = this.#open();
    const args = [sqlText(sql), sqlParams(params)];
    return hostCall(SqlError, () => handle.execute(...args));
  }

  /** Makes the changes visible; the transaction cannot be used after. */
  commit() { this.#finish('commit'); }

  /** Discards the changes; the transaction cannot be used after. */
  rollback() { this.#finish('rollback'); }
}

/** A key-value namespace the flow grants: `kv('counters')`. Values are strings. */
export function kv(name) {
  return new Namespace(name);
}

function kvText(v, what) {
  if (typeof v !== 'string') throw new KvError('invalid', `the ${what} must be a string (setJson stores any JSON value)`);
  return v;
}

function kvInteger(v, what) {
  if (!Number.isSafeInteger(v)) throw new KvError('invalid', `${what} must be an integer within 2^53, not ${v}`);
  return v;
}

class Namespace {
  constructor(name) { this.name = String(name); }

  /** The value of `key`, or null. */
  get(key) { return hostCall(KvError, () => kvHost.get(this.name, kvText(key, 'key'))); }

  /** The value of `key` parsed as JSON, or null when absent. */
  getJson(key) {
    const text = this.get(key);
    return text === null || text === undefined ? null : JSON.parse(text);
  }

  /** Sets `key` to the string `value`; with `{ ttlMs }` it expires that many milliseconds from now. */
  set(key, value, { ttlMs } = {}) {
    const ttl = ttlMs === undefined || ttlMs === null ? null : kvInteger(ttlMs, 'ttlMs');
    if (ttl !== null && ttl < 0) throw new KvError('invalid', `ttlMs must not be negative, not ${ttl}`);
    const args = [this.name, kvText(key, 'key'), kvText(value, 'value'), ttl];
    hostCall(KvError, () => kvHost.set(...args));
  }

  /** Sets `key` to `JSON.stringify(value)`. */
  setJson(key, value, options) { this.set(key, JSON.stringify(value), options); }

  /** Deletes `key`; true when it was there. */
  delete(key) { return hostCall(KvError, () => kvHost.delete(this.name, kvText(key, 'key'))); }

  /** Adds `delta` (default 1) to the integer at `key` (absent counts as 0), atomically; returns the sum. */
  increment(key, delta = 1) {
    const args = [this.name, kvText(key, 'key'), kvInteger(delta, 'delta')];
    return hostCall(KvError, () => kvHost.increment(...args));
  }

  /** Sets `key` to `value` only if it holds `expected` (null: only if absent), atomically; true when set. */
  compareAndSwap(key, expected, value) {
    const want = expected === null || expected === undefined ? null : kvText(expected, 'expected value');
    const args = [this.name, kvText(key, 'key'), want, kvText(value, 'value')];
    return hostCall(KvError, () => kvHost.compareAndSwap(...args));
  }
}

// --- outbound HTTP -----------------------------------------------------------

/** A request that got no response; `kind` is denied, invalid, too-large, timeout or failed. */
export class HttpError extends HostCallError {
  constructor(kind, message) {
    super('http', kind, message, ['timeout', 'failed']); // a timeout or a network failure
    this.name = 'HttpError';
  }
}

function utf8(text) {
  if (typeof TextEncoder === 'function') return new TextEncoder().encode(text);
  const bytes = unescape(encodeURIComponent(text));
  return Uint8Array.from(bytes, (c) => c.charCodeAt(0));
}

function fromUtf8(bytes) {
  if (typeof TextDecoder === 'function') return new TextDecoder().decode(bytes);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  try {
    return decodeURIComponent(escape(binary));
  } catch (e) {
    return binary; // not UTF-8: one character per byte
  }
}

/** A response, its body read whole. */
export class HttpResponse {
  constructor({ status, headers, body }) {
    this.status = status;
    this.headers = headers.map(([n, v]) => [n, v]); // [[name (lower case), value], ...] in order
    this.body = body instanceof Uint8Array ? body : Uint8Array.from(body);
  }
  /** True for a 2xx status. */
  get ok() { return this.status >= 200 && this.status < 300; }
  /** The first value of header `name` (any case), or null. */
  header(name) {
    const want = String(name).toLowerCase();
    const found = this.headers.find(([n]) => n === want);
    return found ? found[1] : null;
  }
  /** The body as text (UTF-8). */
  text() { return fromUtf8(this.body); }
  /** The body parsed as JSON. */
  json() { return JSON.parse(this.text()); }
}

function httpHeaders(headers) {
  if (headers === undefined || headers === null) return [];
  const pairs = Array.isArray(headers) ? headers : typeof headers === 'object' ? Object.entries(headers) : null;
  if (!pairs) throw new HttpError('invalid', 'headers must be an object or an array of [name, value]');
  return pairs.map((p) => {
    if (!Array.isArray(p) || p.length !== 2) throw new HttpError('invalid', 'a header must be [name, value]');
    return [String(p[0]), String(p[1])];
  });
}

/** One request as the WIT `request` record. */
function httpRequest(r) {
  const req = typeof r === 'string' ? { url: r } : r;
  if (!req || typeof req !== 'object' || typeof req.url !== 'string') {
    throw new HttpError('invalid', 'a request is a URL or an object with a string `url`');
  }
  const headers = httpHeaders(req.headers);
  let body = null;
  if (req.json !== undefined) {
    body = utf8(JSON.stringify(req.json));
    if (!headers.some(([n]) => n.toLowerCase() === 'content-type')) headers.push(['content-type', 'application/json']);
  } else if (typeof req.body === 'string') {
    body = utf8(req.body);
  } else if (req.body instanceof Uint8Array) {
    body = req.body;
  } else if (req.body !== undefined && req.body !== null) {
    throw new HttpError('invalid', `${req.url}: the body must be a string or a Uint8Array (json: sends any value)`);
  }
  const timeout = req.timeoutMs;
  if (timeout !== undefined && timeout !== null && !(Number.isInteger(timeout) && timeout >= 0 && timeout < 2 ** 32)) {
    throw new HttpError('invalid', `${req.url}: timeoutMs must be a whole number of milliseconds, not ${timeout}`);
  }
  return {
    method: String(req.method || 'GET').toUpperCase(),
    url: req.url,
    headers,
    body,
    timeoutMs: timeout ?? null,
  };
}

/** Outbound HTTP to the hosts the flow grants (`allow: {http: [HOST]}`). */
export const http = {
  /**
   * Sends every request at once and waits for all; returns, in order, an
   * HttpResponse or an HttpError for each (a failure does not stop the others).
   */
  fetchAll(requests) {
    if (!Array.isArray(requests)) throw new HttpError('invalid', 'fetchAll takes an array of requests');
    const answers = new Array(requests.length);
    const sent = []; // [place, record]
    requests.forEach((r, i) => {
      try {
        sent.push([i, httpRequest(r)]);
      } catch (e) {
        if (!(e instanceof HttpError)) throw e;
        answers[i] = e;
      }
    });
    const results = sent.length ? httpHost.sendAll(sent.map(([, record]) => record)) : [];
    results.forEach((result, j) => {
      answers[sent[j][0]] = result.tag === 'ok' ? new HttpResponse(result.val) : new HttpError(result.val.tag, result.val.val);
    });
    return answers;
  },

  /** Sends one request; returns its HttpResponse or throws an HttpError. */
  fetch(request) {
    const [answer] = http.fetchAll([request]);
    if (answer instanceof HttpError) throw answer;
    return answer;
  },
};
