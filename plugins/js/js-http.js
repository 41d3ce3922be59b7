// js-http: sends the requests its input lists all at once and returns each
// one's outcome and the time the send took, so tests drive http from JavaScript:
//   {"requests": ["http://127.0.0.1:8080/a", {"url": "...", "method": "POST", "body": "x", "timeoutMs": 200}]}
//   -> {"answers": [{"status": 200, "body": "ok"}, {"error": {"kind": "timeout", "message": "..."}}],
//       "elapsed_ms": 104}
// With "one": true it sends only the first request with http.fetch and does
// not catch its error, so a failure fails the step as the helper maps it.
import { handler, StepError, http, HttpError } from '../templates/js/step.js';

export function describe() {
  return { name: 'js-http', version: '0.1.0', description: 'Sends the HTTP requests its input lists (JavaScript example)' };
}

const answer = (a) => (a instanceof HttpError
  ? { error: { kind: a.kind, message: a.detail } }
  : { status: a.status, body: a.text(), type: a.header('content-type') });

export const run = handler((input) => {
  if (!input || !Array.isArray(input.requests)) throw StepError.invalidInput('expected {"requests": [...]}');
  const started = Date.now();
  const answers = input.one ? [http.fetch(input.requests[0])] : http.fetchAll(input.requests);
  const elapsed = Date.now() - started;
  return { answers: answers.map(answer), elapsed_ms: elapsed };
});
