"""py-http: sends the requests its input lists all at once and returns each
one's outcome and the time the send took, so tests drive http from Python:
  {"requests": ["http://127.0.0.1:8080/a", {"url": "...", "method": "POST", "body": "x", "timeout_ms": 200}]}
  -> {"answers": [{"status": 200, "body": "ok"}, {"error": {"kind": "timeout", "message": "..."}}],
      "elapsed_ms": 104}
With "one": true it sends only the first request with fs.http.send and does
not catch its error, so a failure fails the step as the helper maps it."""

import time

import flowhost_step as fs


def _answer(a):
    if isinstance(a, fs.HttpError):
        return {"error": {"kind": a.kind, "message": a.detail}}
    return {"status": a.status, "body": a.text(), "type": a.header("content-type")}


def _request(r):
    # The input speaks JavaScript's timeoutMs too, so tests share requests.
    if isinstance(r, dict) and "timeoutMs" in r:
        r = {**r, "timeout_ms": r["timeoutMs"]}
        del r["timeoutMs"]
    return r


class WitWorld(fs.Step):
    name, version, description = "py-http", "0.1.0", "Sends the HTTP requests its input lists (Python example)"

    def handle(self, data, ctx):
        if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
            raise fs.InvalidInput('expected {"requests": [...]}')
        requests = [_request(r) for r in data["requests"]]
        started = time.monotonic()
        answers = [fs.http.send(requests[0])] if data.get("one") else fs.http.send_all(requests)
        elapsed = int((time.monotonic() - started) * 1000)
        return {"answers": [_answer(a) for a in answers], "elapsed_ms": elapsed}
