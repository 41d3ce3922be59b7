"""py-data: runs the database and key-value calls its input lists and returns
each one's outcome, so tests drive sql and kv from Python:
  {"ops": [{"op": "query", "db": "orders", "sql": "select ?1 as n", "params": [7]},
           {"op": "increment", "ns": "counters", "key": "hits", "delta": 1}]}
  -> {"results": [{"ok": [{"n": 7}]}, {"error": {"kind": "denied", "message": "..."}}]}
Ops: query, execute, batch (statements: [[sql, params]...]), transaction
(statements, then: commit|rollback|none, query: [sql, params] inside it),
get, set (value, ttl_ms), delete, increment (delta), cas (expected, value).
A parameter {"blob": [bytes]} is bytes. With "uncaught": true an op's error is
not caught, so it fails the step as the helper maps it."""

import flowhost_step as fs


def _param(p):
    return bytes(p["blob"]) if isinstance(p, dict) and isinstance(p.get("blob"), list) else p


def _params(ps):
    return [_param(p) for p in ps or []]


def _statements(ss):
    return [(s[0], _params(s[1] if len(s) > 1 else None)) for s in ss or []]


def _apply(op):
    name = op.get("op")
    if name == "query":
        return fs.db(op["db"]).query(op["sql"], _params(op.get("params")))
    if name == "execute":
        return fs.db(op["db"]).execute(op["sql"], _params(op.get("params")))
    if name == "batch":
        return fs.db(op["db"]).batch(_statements(op.get("statements")))
    if name == "transaction":
        tx = fs.db(op["db"]).transaction()
        counts = [tx.execute(sql, ps) for sql, ps in _statements(op.get("statements"))]
        query = op.get("query")
        rows = tx.query(query[0], _params(query[1] if len(query) > 1 else None)) if query else None
        if op.get("then") == "commit":
            tx.commit()
        elif op.get("then") == "rollback":
            tx.rollback()
        return {"counts": counts, "rows": rows}
    if name == "get":
        return fs.kv(op["ns"]).get(op["key"])
    if name == "set":
        return fs.kv(op["ns"]).set(op["key"], op["value"], op.get("ttl_ms"))
    if name == "delete":
        return fs.kv(op["ns"]).delete(op["key"])
    if name == "increment":
        return fs.kv(op["ns"]).increment(op["key"], op.get("delta", 1))
    if name == "cas":
        return fs.kv(op["ns"]).compare_and_swap(op["key"], op.get("expected"), op["value"])
    raise fs.InvalidInput(f"unknown op {name!r}")


class WitWorld(fs.Step):
    name, version, description = "py-data", "0.1.0", "Runs the sql and kv calls its input lists (Python example)"

    def handle(self, data, ctx):
        if not isinstance(data, dict) or not isinstance(data.get("ops"), list):
            raise fs.InvalidInput('expected {"ops": [...]}')
        results = []
        for op in data["ops"]:
            if op.get("uncaught"):
                results.append({"ok": _apply(op)})
                continue
            try:
                results.append({"ok": _apply(op)})
            except (fs.SqlError, fs.KvError) as e:
                results.append({"error": {"kind": e.kind, "message": e.detail}})
        return {"results": results}
