// {{name}}: wraps a JSON object: {"step": "{{name}}", "input": <the input>}.
// Anything but an object is invalid-input.
#include <stdlib.h>

#include "flowhost_step.h"

void exports_step_describe(step_metadata_t *ret) {
  fh_metadata(ret, "{{name}}", "0.1.0", "A flowhost step");
}

bool exports_step_run(step_context_t *ctx, step_string_t *input, step_string_t *ret,
                      step_step_error_t *err) {
  static const char head[] = "{\"step\":\"{{name}}\",\"input\":";
  const char *body;
  size_t len;
  bool ok = false;
  fh_trim(input, &body, &len);
  if (len < 2 || body[0] != '{' || body[len - 1] != '}') {
    ok = fh_fail(err, FLOWHOST_STEP_TYPES_STEP_ERROR_INVALID_INPUT, "expected a JSON object");
    goto done;
  }
  size_t n = sizeof head - 1 + len + 1;
  char *out = malloc(n);
  if (out == NULL) {
    ok = fh_fail(err, FLOWHOST_STEP_TYPES_STEP_ERROR_TRANSIENT, "out of memory");
    goto done;
  }
  memcpy(out, head, sizeof head - 1);
  memcpy(out + sizeof head - 1, body, len);
  out[n - 1] = '}';
  ret->ptr = (uint8_t *)out;  // the host frees it after the call
  ret->len = n;
  fh_info("wrapped the input");
  ok = true;
done:
  step_context_free(ctx);  // the arguments belong to the callee
  step_string_free(input);
  return ok;
}
