// c-stamp: takes a JSON object and adds "c": {"bytes": N} (N = the input's
// size), without parsing it further. Anything but an object is invalid-input.
#include <stdio.h>
#include <stdlib.h>

#include "flowhost_step.h"

void exports_step_describe(step_metadata_t *ret) {
  fh_metadata(ret, "c-stamp", "0.1.0", "Stamps a JSON object with its size (C example)");
}

bool exports_step_run(step_context_t *ctx, step_string_t *input, step_string_t *ret,
                      step_step_error_t *err) {
  const char *body;
  size_t len;
  bool ok = false;
  fh_trim(input, &body, &len);
  if (len < 2 || body[0] != '{' || body[len - 1] != '}') {
    ok = fh_fail(err, FLOWHOST_STEP_TYPES_STEP_ERROR_INVALID_INPUT, "expected a JSON object");
    goto done;
  }
  // Is the object empty? Then no comma goes before the new field.
  size_t i = 1;
  while (i < len - 1 && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r')) i++;
  bool empty = i == len - 1;

  char field[64];
  int n = snprintf(field, sizeof field, "%s\"c\":{\"bytes\":%zu}}", empty ? "" : ",", (size_t)input->len);
  char *out = malloc(len - 1 + (size_t)n);
  if (out == NULL) {
    ok = fh_fail(err, FLOWHOST_STEP_TYPES_STEP_ERROR_TRANSIENT, "out of memory");
    goto done;
  }
  memcpy(out, body, len - 1);  // everything but the closing brace
  memcpy(out + len - 1, field, (size_t)n);
  ret->ptr = (uint8_t *)out;  // the host frees it after the call
  ret->len = len - 1 + (size_t)n;

  char line[96];
  snprintf(line, sizeof line, "stamped %zu bytes (attempt %u)", (size_t)input->len, ctx->attempt);
  fh_info(line);
  ok = true;
done:
  step_context_free(ctx);  // the arguments belong to the callee
  step_string_free(input);
  return ok;
}
