// c-echo: returns its input byte for byte.
#include "flowhost_step.h"

void exports_step_describe(step_metadata_t *ret) {
  fh_metadata(ret, "c-echo", "0.1.0", "Returns its input (C)");
}

bool exports_step_run(step_context_t *ctx, step_string_t *input, step_string_t *ret,
                      step_step_error_t *err) {
  (void)err;
  step_context_free(ctx);
  *ret = *input;  // hand the input's buffer back: the host frees it after the call
  return true;
}
