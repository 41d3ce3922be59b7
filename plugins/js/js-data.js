// js-data: runs the database and key-value calls its input lists and returns
// each one's outcome, so tests drive sql and kv from JavaScript:
//   {"ops": [{"op": "query", "db": "orders", "sql": "select ?1 as n", "params": [7]},
//            {"op": "increment", "ns": "counters", "key": "hits", "delta": 1}]}
//   -> {"results": [{"ok": [{"n": 7}]}, {"error": {"kind": "denied", "message": "..."}}]}
// Ops: query, execute, batch (statements: [[sql, params]...]), transaction
// (statements, then: commit|rollback|none, query: [sql, params] inside it),
// get, set (value, ttl_ms), delete, increment (delta), cas (expected, value).
// A parameter {"blob": [bytes]} is a Uint8Array. With "uncaught": true an op's
// error is not caught, so it fails the step as the helper maps it.
import { handler, StepError, db, kv, SqlError, KvError } from '../templates/js/step.js';

export function describe() {
  return { name: 'js-data', version: '0.1.0', description: 'Runs the sql and kv calls its input lists (JavaScript example)' };
}

const param = (p) => (p && typeof p === 'object' && Array.isArray(p.blob) ? new Uint8Array(p.blob) : p);
const params = (ps) => (ps || []).map(param);
const statements = (ss) => (ss || []).map(([sql, ps]) => [sql, params(ps)]);

function apply(op) {
  switch (op.op) {
    case 'query': return db(op.db).query(op.sql, params(op.params));
    case 'execute': return db(op.db).execute(op.sql, params(op.params));
    case 'batch': return db(op.db).batch(statements(op.statements));
    case 'transaction': {
      const tx = db(op.db).transaction();
      const counts = statements(op.statements).map(([sql, ps]) => tx.execute(sql, ps));
      const rows = op.query ? tx.query(op.query[0], params(op.query[1])) : null;
      if (op.then === 'commit') tx.commit();
      else if (op.then === 'rollback') tx.rollback();
      return { counts, rows };
    }
    case 'get': return kv(op.ns).get(op.key);
    case 'set': return kv(op.ns).set(op.key, op.value, { ttlMs: op.ttl_ms }) ?? null;
    case 'delete': return kv(op.ns).delete(op.key);
    case 'increment': return kv(op.ns).increment(op.key, op.delta ?? 1);
    case 'cas': return kv(op.ns).compareAndSwap(op.key, op.expected ?? null, op.value);
    default: throw StepError.invalidInput(`unknown op ${JSON.stringify(op.op)}`);
  }
}

export const run = handler((input) => {
  if (!input || !Array.isArray(input.ops)) throw StepError.invalidInput('expected {"ops": [...]}');
  const results = input.ops.map((op) => {
    if (op.uncaught) return { ok: apply(op) };
    try {
      return { ok: apply(op) };
    } catch (e) {
      if (e instanceof SqlError || e instanceof KvError) return { error: { kind: e.kind, message: e.detail } };
      throw e;
    }
  });
  return { results };
});
