// flowhost step helpers for C, over the bindings wit-bindgen generated in gen/.
//
// A step defines exports_step_describe and exports_step_run (see gen/step.h).
// The host frees what they return (post-return), so returned strings must be
// heap copies: use step_string_dup / step_string_dup_n, or the helpers here.
#ifndef FLOWHOST_STEP_H
#define FLOWHOST_STEP_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "step.h"

// Logs a NUL-terminated line through the host's `log` import.
static inline void fh_log(flowhost_step_host_level_t level, const char *message) {
  step_string_t s;
  step_string_set(&s, message);  // borrowed: the import copies it
  flowhost_step_host_log(level, &s);
}
#define fh_info(msg) fh_log(FLOWHOST_STEP_HOST_LEVEL_INFO, (msg))
#define fh_warn(msg) fh_log(FLOWHOST_STEP_HOST_LEVEL_WARN, (msg))

// Sets `ret` to this execution's key, `<run id>/<step path>`: the same on every
// attempt and after a host restart (a step in flight then runs again), for
// idempotent side effects. Free it with step_string_free.
static inline void fh_execution_key(step_string_t *ret) {
  flowhost_step_host_execution_key(ret);
}

// Fails the call: sets `err` to the step-error `kind` with `message`, returns false.
// kind: FLOWHOST_STEP_TYPES_STEP_ERROR_TRANSIENT, _PERMANENT or _INVALID_INPUT.
static inline bool fh_fail(step_step_error_t *err, uint8_t kind, const char *message) {
  err->tag = kind;
  step_string_dup(&err->val.permanent, message);  // all three cases hold a string
  return false;
}

// Fills the metadata returned by `describe`.
static inline void fh_metadata(step_metadata_t *ret, const char *name, const char *version,
                               const char *description) {
  step_string_dup(&ret->name, name);
  step_string_dup(&ret->version, version);
  step_string_dup(&ret->description, description);
}

// The input without leading and trailing JSON whitespace: [*start, *start + *len).
static inline void fh_trim(const step_string_t *s, const char **start, size_t *len) {
  const char *p = (const char *)s->ptr;
  size_t n = s->len;
  while (n > 0 && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) { p++; n--; }
  while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
  *start = p;
  *len = n;
}

#endif
