"""flowhost step helper for Python (componentize-py): JSON in and out, typed
errors, logging, SQL databases, key-value state and outbound HTTP.

    import flowhost_step as fs

    class WitWorld(fs.Step):
        name, version, description = "greet", "0.1.0", "Greets a person"

        def handle(self, data, ctx):
            if "name" not in data:
                raise fs.InvalidInput("name is missing")
            fs.log.info(f"greeting {data['name']}")
            return {"greeting": f"Hello, {data['name']}!"}

`handle` receives the parsed input and a Context (flow, run_id, step_id,
attempt, config: the parsed config, {} when none; ctx.execution_key(): the
`<run id>/<step path>` key, the same on every attempt and after a host
restart, for idempotent side effects) and returns any JSON value.
Raising Transient, Permanent or InvalidInput (all StepError) fails the call
with that step-error; so does raising componentize-py's
`Err(StepError_Permanent("..."))` directly. Any other exception is a bug: its
traceback goes to the host log (stderr) and the call traps.

Databases and key-value state, granted by the flow
(`allow: {sql: [orders], kv: [counters]}`):

    orders = fs.db("orders")
    rows = orders.query("select id, total from orders where id = ?1", [7])  # [{"id": .., "total": ..}]
    orders.execute("update orders set total = ?1 where id = ?2", [12.5, 7])  # rows changed
    orders.batch([("insert ...", [1]), ("insert ...", [2])])               # all or nothing
    with orders.transaction() as tx:  # committed at the end of the block, rolled back on an exception
        tx.execute("...", [...])
    seen = fs.kv("counters").increment("orders")

Parameters are bound, never pasted into the SQL: None, bool, int, float, str,
bytes. A failed call raises SqlError or KvError (both StepError) with `kind`
(the WIT error case: denied, invalid, rejected, too-large, unavailable);
uncaught, it fails the step: unavailable and rejected as Transient, the rest
as Permanent.

Outbound HTTP, granted by the flow (`allow: {http: [api.example.com]}`), over
the host's keep-alive pool; send_all sends every request at once and waits
for all:

    answers = fs.http.send_all([f"https://api.example.com/stock/{i}" for i in ids])
    for a in answers:  # an fs.Response or an fs.HttpError, in order
        ...
    r = fs.http.send("https://api.example.com/orders", method="POST", json={"id": 7}, timeout_ms=2000)
    r.status, r.header("content-type"), r.body, r.text(), r.json()

A request is a URL or a dict {"url", "method" ("GET"), "headers" (a dict or
[(name, value)]), "body" (str or bytes) or "json" (any value, sent as JSON),
"timeout_ms"}. A failure is an HttpError (a StepError) with `kind` (denied,
invalid, too-large, timeout, failed): send_all puts it in the request's
place, send raises it; uncaught, timeout and failed fail the step as
Transient, the rest as Permanent. A 4xx or 5xx status is a response.
"""

import json
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import host
from wit_world.imports import http as _http
from wit_world.imports import kv as _kv
from wit_world.imports import sql as _sql
from wit_world.imports.types import (
    Metadata,
    StepError_InvalidInput,
    StepError_Permanent,
    StepError_Transient,
)


class StepError(Exception):
    """A failure in the step's own words; use a subclass."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = str(message)

    def to_wit(self):
        raise NotImplementedError


class Transient(StepError):
    """Retrying may help."""

    def to_wit(self):
        return StepError_Transient(self.message)


class Permanent(StepError):
    """Retrying will not help."""

    def to_wit(self):
        return StepError_Permanent(self.message)


class InvalidInput(StepError):
    """The input was not acceptable."""

    def to_wit(self):
        return StepError_InvalidInput(self.message)


class log:
    """The host log, tagged with the step. Volume per call is capped by the host."""

    @staticmethod
    def trace(message: str) -> None:
        host.log(host.Level.TRACE, str(message))

    @staticmethod
    def debug(message: str) -> None:
        host.log(host.Level.DEBUG, str(message))

    @staticmethod
    def info(message: str) -> None:
        host.log(host.Level.INFO, str(message))

    @staticmethod
    def warn(message: str) -> None:
        host.log(host.Level.WARN, str(message))

    @staticmethod
    def error(message: str) -> None:
        host.log(host.Level.ERROR, str(message))


@dataclass
class Context:
    flow: str
    run_id: str
    step_id: str
    attempt: int
    config: Any

    def execution_key(self) -> str:
        """`<run id>/<step path>`: the same on every attempt and after a host
        restart (a step in flight then runs again); for idempotent side effects."""
        return host.execution_key()


def _parse(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise Err(StepError_InvalidInput(f"{what} is not valid JSON: {e}"))


class Step(wit_world.WitWorld):
    """Base class of a step: set name, version, description; define handle."""

    name = "step"
    version = "0.1.0"
    description = ""

    def handle(self, data: Any, ctx: Context) -> Any:
        raise NotImplementedError

    def describe(self) -> Metadata:
        return Metadata(self.name, self.version, self.description)

    def run(self, ctx, input: str) -> str:
        data = _parse(input, "input")
        config = _parse(ctx.config or "{}", "config")
        config = {} if config is None else config  # a missing config is {}
        context = Context(ctx.flow, ctx.run_id, ctx.step_id, ctx.attempt, config)
        try:
            out = self.handle(data, context)
        except StepError as e:
            raise Err(e.to_wit())
        return json.dumps(out)


# --- SQL and key-value state ---------------------------------------------------

_SQL_KINDS = {
    _sql.Error_Denied: "denied",
    _sql.Error_Invalid: "invalid",
    _sql.Error_Rejected: "rejected",
    _sql.Error_TooLarge: "too-large",
    _sql.Error_Unavailable: "unavailable",
}
_KV_KINDS = {
    _kv.Error_Denied: "denied",
    _kv.Error_Invalid: "invalid",
    _kv.Error_Unavailable: "unavailable",
}


class _HostCallError(StepError):
    """A failed host call (database, key-value, HTTP): `kind` and `detail`,
    the host's message. Uncaught, the kinds in `TRANSIENT` fail the step as
    transient (a retry may help), the others as permanent."""

    WHAT = ""
    TRANSIENT: Tuple[str, ...] = ()

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{self.WHAT} {kind.replace('-', ' ')}: {detail}")
        self.kind = kind
        self.detail = str(detail)

    def to_wit(self):
        if self.kind in self.TRANSIENT:
            return StepError_Transient(self.message)
        return StepError_Permanent(self.message)


class SqlError(_HostCallError):
    """A failed database call; `kind` is denied, invalid, rejected, too-large
    or unavailable, `detail` the host's message (it names the database)."""

    WHAT = "sql"
    # An outage, or a conflict (a retry runs against new data).
    TRANSIENT = ("unavailable", "rejected")


class KvError(_HostCallError):
    """A failed key-value call; `kind` is denied, invalid or unavailable."""

    WHAT = "kv"
    TRANSIENT = ("unavailable",)


def _host_call(error, kinds, call, *args):
    try:
        return call(*args)
    except Err as e:
        raise error(kinds.get(type(e.value), "unavailable"), e.value.value) from None


_I64 = (-(2**63), 2**63 - 1)


def _sql_value(v: Any, i: int):
    if v is None:
        return _sql.Value_Null()
    if isinstance(v, bool):  # before int: bool is an int
        return _sql.Value_Boolean(v)
    if isinstance(v, int):
        if not _I64[0] <= v <= _I64[1]:
            raise SqlError("invalid", f"parameter {i + 1}: {v} does not fit 64 bits")
        return _sql.Value_Integer(v)
    if isinstance(v, float):
        return _sql.Value_Real(v)
    if isinstance(v, str):
        return _sql.Value_Text(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _sql.Value_Blob(bytes(v))
    if isinstance(v, (_sql.Value_Null, _sql.Value_Boolean, _sql.Value_Integer,
                      _sql.Value_Real, _sql.Value_Text, _sql.Value_Blob)):
        return v
    raise SqlError("invalid", f"parameter {i + 1} is a {type(v).__name__}: pass json.dumps(value) to store JSON")


def _sql_params(params: Optional[Sequence[Any]]) -> List[Any]:
    if params is None:
        return []
    if isinstance(params, (str, bytes, dict)):
        raise SqlError("invalid", "parameters must be a list")
    return [_sql_value(v, i) for i, v in enumerate(params)]


def _text(v: Any, what: str, error) -> str:
    if not isinstance(v, str):
        raise error("invalid", f"the {what} must be a str, not {type(v).__name__}")
    return v


class Database:
    """A database the flow grants, by name. Nothing is checked until the first call."""

    def __init__(self, name: str):
        self.name = str(name)

    def query(self, sql: str, params: Optional[Sequence[Any]] = None) -> List[Any]:
        """Runs a query; returns its rows, dicts keyed by column name."""
        return json.loads(self.query_json(sql, params))

    def query_json(self, sql: str, params: Optional[Sequence[Any]] = None) -> str:
        """Runs a query; returns its rows as JSON text."""
        args = (self.name, _text(sql, "SQL", SqlError), _sql_params(params))
        return _host_call(SqlError, _SQL_KINDS, _sql.query, *args)

    def execute(self, sql: str, params: Optional[Sequence[Any]] = None) -> int:
        """Runs a statement; returns the number of rows it changed."""
        args = (self.name, _text(sql, "SQL", SqlError), _sql_params(params))
        return _host_call(SqlError, _SQL_KINDS, _sql.execute, *args)

    def batch(self, statements: Iterable[Sequence[Any]]) -> List[int]:
        """Runs `[(sql, params), ...]` in one transaction, all or nothing;
        returns each one's changed-row count."""
        wit = [_sql.Statement(_text(s[0], "SQL", SqlError), _sql_params(s[1] if len(s) > 1 else None))
               for s in statements]
        return _host_call(SqlError, _SQL_KINDS, _sql.batch, self.name, wit)

    def transaction(self) -> "Transaction":
        """Opens a transaction; rolled back unless committed (also when the call ends)."""
        return Transaction(_host_call(SqlError, _SQL_KINDS, _sql.begin, self.name))


class Transaction:
    """An open transaction on one pooled connection. As a context manager it
    commits at the end of the block, or rolls back when the block raises."""

    def __init__(self, handle):
        self._handle = handle

    def _open(self):
        if self._handle is None:
            raise SqlError("unavailable", "the transaction is already finished")
        return self._handle

    def _finish(self, how: str) -> None:
        handle = self._open()
        self._handle = None
        try:
            _host_call(SqlError, _SQL_KINDS, getattr(handle, how))
        finally:
            handle.__exit__(None, None, None)  # drop the handle now

    def query(self, sql: str, params: Optional[Sequence[Any]] = None) -> List[Any]:
        return json.loads(self.query_json(sql, params))

    def query_json(self, sql: str, params: Optional[Sequence[Any]] = None) -> str:
        handle = self._open()
        args = (_text(sql, "SQL", SqlError), _sql_params(params))
        return _host_call(SqlError, _SQL_KINDS, handle.query, *args)

    def execute(self, sql: str, params: Optional[Sequence[Any]] = None) -> int:
        handle = self._open()
        args = (_text(sql, "SQL", SqlError), _sql_params(params))
        return _host_call(SqlError, _SQL_KINDS, handle.execute, *args)

    def commit(self) -> None:
        """Makes the changes visible; the transaction cannot be used after."""
        self._finish("commit")

    def rollback(self) -> None:
        """Discards the changes; the transaction cannot be used after."""
        self._finish("rollback")

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._handle is None:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()


class Namespace:
    """A key-value namespace the flow grants, by name. Values are str."""

    def __init__(self, name: str):
        self.name = str(name)

    def _key(self, key: Any) -> str:
        return _text(key, "key", KvError)

    def get(self, key: str) -> Optional[str]:
        """The value of `key`, or None."""
        return _host_call(KvError, _KV_KINDS, _kv.get, self.name, self._key(key))

    def get_json(self, key: str) -> Any:
        """The value of `key` parsed as JSON, or None when absent."""
        text = self.get(key)
        return None if text is None else json.loads(text)

    def set(self, key: str, value: str, ttl_ms: Optional[int] = None) -> None:
        """Sets `key`; with `ttl_ms` it expires that many milliseconds from now."""
        if ttl_ms is not None and (isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or not 0 <= ttl_ms < 2**64):
            raise KvError("invalid", f"ttl_ms must be a non-negative int, not {ttl_ms!r}")
        if not isinstance(value, str):
            raise KvError("invalid", f"the value must be a str, not {type(value).__name__} (set_json stores any JSON value)")
        args = (self.name, self._key(key), value, ttl_ms)
        _host_call(KvError, _KV_KINDS, _kv.set, *args)

    def set_json(self, key: str, value: Any, ttl_ms: Optional[int] = None) -> None:
        """Sets `key` to `json.dumps(value)`."""
        self.set(key, json.dumps(value), ttl_ms)

    def delete(self, key: str) -> bool:
        """Deletes `key`; True when it was there."""
        return _host_call(KvError, _KV_KINDS, _kv.delete, self.name, self._key(key))

    def increment(self, key: str, delta: int = 1) -> int:
        """Adds `delta` to the integer at `key` (absent counts as 0), atomically; returns the sum."""
        if isinstance(delta, bool) or not isinstance(delta, int) or not _I64[0] <= delta <= _I64[1]:
            raise KvError("invalid", f"delta must be a 64-bit int, not {delta!r}")
        return _host_call(KvError, _KV_KINDS, _kv.increment, self.name, self._key(key), delta)

    def compare_and_swap(self, key: str, expected: Optional[str], value: str) -> bool:
        """Sets `key` to `value` only if it holds `expected` (None: only if absent), atomically."""
        want = None if expected is None else _text(expected, "expected value", KvError)
        args = (self.name, self._key(key), want, _text(value, "value", KvError))
        return _host_call(KvError, _KV_KINDS, _kv.compare_and_swap, *args)


def db(name: str) -> Database:
    """The database `name` (`allow: {sql: [name]}`)."""
    return Database(name)


def kv(name: str) -> Namespace:
    """The key-value namespace `name` (`allow: {kv: [name]}`)."""
    return Namespace(name)


# --- outbound HTTP -------------------------------------------------------------

_HTTP_KINDS = {
    _http.Error_Denied: "denied",
    _http.Error_Invalid: "invalid",
    _http.Error_TooLarge: "too-large",
    _http.Error_Timeout: "timeout",
    _http.Error_Failed: "failed",
}


class HttpError(_HostCallError):
    """A request that got no response; `kind` is denied, invalid, too-large,
    timeout or failed, `detail` the host's message (it names the URL)."""

    WHAT = "http"
    TRANSIENT = ("timeout", "failed")


class Response:
    """A response, its body read whole."""

    def __init__(self, status: int, headers: List[Tuple[str, str]], body: bytes):
        self.status = status
        self.headers = list(headers)  # [(name (lower case), value)], in order
        self.body = bytes(body)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def header(self, name: str) -> Optional[str]:
        """The first value of header `name` (any case), or None."""
        want = name.lower()
        return next((v for n, v in self.headers if n == want), None)

    def text(self) -> str:
        """The body as text (UTF-8, bad bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response(status={self.status}, {len(self.body)} bytes)"


def _http_headers(url: str, headers: Any) -> List[Tuple[str, str]]:
    if headers is None:
        return []
    pairs = headers.items() if isinstance(headers, dict) else headers
    try:
        return [(str(n), str(v)) for n, v in pairs]
    except (TypeError, ValueError):
        raise HttpError("invalid", f"{url}: headers must be a dict or a list of (name, value)") from None


def _http_request(r: Union[str, dict]) -> "_http.Request":
    req = {"url": r} if isinstance(r, str) else r
    if not isinstance(req, dict) or not isinstance(req.get("url"), str):
        raise HttpError("invalid", "a request is a URL or a dict with a str `url`")
    url = req["url"]
    headers = _http_headers(url, req.get("headers"))
    body = req.get("body")
    if req.get("json") is not None:
        body = json.dumps(req["json"]).encode()
        if not any(n.lower() == "content-type" for n, _ in headers):
            headers.append(("content-type", "application/json"))
    elif isinstance(body, str):
        body = body.encode()
    elif isinstance(body, (bytes, bytearray, memoryview)):
        body = bytes(body)
    elif body is not None:
        raise HttpError("invalid", f"{url}: the body must be str or bytes (json= sends any value)")
    timeout = req.get("timeout_ms")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 <= timeout < 2**32):
        raise HttpError("invalid", f"{url}: timeout_ms must be a whole number of milliseconds, not {timeout!r}")
    method = req.get("method") or "GET"
    return _http.Request(str(method).upper(), url, headers, body, timeout)


class http:
    """Outbound HTTP to the hosts the flow grants (`allow: {http: [HOST]}`)."""

    @staticmethod
    def send_all(requests: Sequence[Union[str, dict]]) -> List[Union[Response, HttpError]]:
        """Sends every request at once and waits for all; returns, in order, a
        Response or an HttpError for each (a failure does not stop the others)."""
        answers: List[Any] = [None] * len(requests)
        places, records = [], []
        for i, r in enumerate(requests):
            try:
                records.append(_http_request(r))
                places.append(i)
            except HttpError as e:
                answers[i] = e
        results = _http.send_all(records) if records else []
        for i, result in zip(places, results):
            if isinstance(result, Ok):
                v = result.value
                answers[i] = Response(v.status, v.headers, v.body)
            else:
                e = result.value
                answers[i] = HttpError(_HTTP_KINDS.get(type(e), "failed"), e.value)
        return answers

    @staticmethod
    def send(request: Union[str, dict], **fields: Any) -> Response:
        """Sends one request (a URL or a dict; keyword arguments add to it:
        method, headers, body, json, timeout_ms); returns its Response or
        raises HttpError."""
        if fields:
            request = {**({"url": request} if isinstance(request, str) else request), **fields}
        answer = http.send_all([request])[0]
        if isinstance(answer, HttpError):
            raise answer
        return answer
