// flowhost step helpers for C, over the bindings wit-bindgen generated in gen/.
//
// A step defines exports_step_describe and exports_step_run (see gen/step.h).
// The host frees what they return (post-return), so returned strings must be
// heap copies: use step_string_dup / step_string_dup_n, or the helpers here.
#ifndef FLOWHOST_STEP_H
#define FLOWHOST_STEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
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

// --- JSON text: a growing buffer, returned to the host ----------------------

// A growing text buffer; zero-initialise it: fh_buf_t out = {0};
// After an allocation failure it stops growing and `oom` is set.
typedef struct {
  char *ptr;
  size_t len, cap;
  bool oom;
} fh_buf_t;

static inline void fh_buf_raw(fh_buf_t *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->ptr, cap);
    if (p == NULL) { b->oom = true; return; }
    b->ptr = p;
    b->cap = cap;
  }
  memcpy(b->ptr + b->len, s, n);
  b->len += n;
}

// Appends a NUL-terminated string as is (JSON you wrote).
static inline void fh_buf_str(fh_buf_t *b, const char *s) { fh_buf_raw(b, s, strlen(s)); }

// Appends a host string as is (e.g. the JSON rows a query returned).
static inline void fh_buf_string(fh_buf_t *b, const step_string_t *s) {
  fh_buf_raw(b, (const char *)s->ptr, s->len);
}

// Appends an integer.
static inline void fh_buf_i64(fh_buf_t *b, int64_t v) {
  char digits[24];
  size_t i = sizeof digits;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do { digits[--i] = (char)('0' + u % 10); u /= 10; } while (u > 0);
  if (v < 0) digits[--i] = '-';
  fh_buf_raw(b, digits + i, sizeof digits - i);
}

// Appends text as a JSON string, quoted and escaped.
static inline void fh_buf_quoted(fh_buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  fh_buf_raw(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      fh_buf_raw(b, esc, 2);
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      fh_buf_raw(b, esc, 6);
    } else {
      fh_buf_raw(b, (const char *)&c, 1);
    }
  }
  fh_buf_raw(b, "\"", 1);
}

// Hands the buffer to the host as the call's output (it frees it); false when
// an allocation failed (the buffer is freed then).
static inline bool fh_buf_into(fh_buf_t *b, step_string_t *ret) {
  if (b->oom) {
    free(b->ptr);
    *b = (fh_buf_t){0};
    return false;
  }
  ret->ptr = (uint8_t *)b->ptr;
  ret->len = b->len;
  *b = (fh_buf_t){0};
  return true;
}

// --- SQL and key-value state (contract 0.1.2) ---------------------------------
//
// The imports are in gen/step.h: flowhost_step_sql_query, _execute, _batch,
// _begin (and flowhost_step_sql_method_transaction_*), flowhost_step_kv_get,
// _set, _delete, _increment, _compare_and_swap. Each returns true on success,
// or false with the error case in `err`. Arguments are borrowed (the import
// copies them); what an import returns (`ret`, `err`) is yours to free
// (step_string_free, flowhost_step_sql_error_free, flowhost_step_kv_error_free).

// Parameters, bound to ?1, ?2... (SQLite) or $1, $2... (PostgreSQL). The text
// is borrowed: keep it alive until the call returns, and do not free the value.
static inline flowhost_step_sql_value_t fh_sql_null(void) {
  flowhost_step_sql_value_t v = {.tag = FLOWHOST_STEP_SQL_VALUE_NULL};
  return v;
}
static inline flowhost_step_sql_value_t fh_sql_integer(int64_t i) {
  flowhost_step_sql_value_t v = {.tag = FLOWHOST_STEP_SQL_VALUE_INTEGER, .val.integer = i};
  return v;
}
static inline flowhost_step_sql_value_t fh_sql_real(double r) {
  flowhost_step_sql_value_t v = {.tag = FLOWHOST_STEP_SQL_VALUE_REAL, .val.real = r};
  return v;
}
static inline flowhost_step_sql_value_t fh_sql_text(const char *s) {
  flowhost_step_sql_value_t v = {.tag = FLOWHOST_STEP_SQL_VALUE_TEXT};
  step_string_set(&v.val.text, s);
  return v;
}

// Runs `sql` with `n` parameters on `database`: true with the rows (a JSON
// array of objects) in *rows, or false with the error in *err. Free either.
static inline bool fh_sql_query(const char *database, const char *sql,
                                flowhost_step_sql_value_t *params, size_t n, step_string_t *rows,
                                flowhost_step_sql_error_t *err) {
  step_string_t db, text;
  step_string_set(&db, database);
  step_string_set(&text, sql);
  flowhost_step_sql_list_value_t list = {params, n};
  return flowhost_step_sql_query(&db, &text, &list, rows, err);
}

// The error case's name: denied, invalid, rejected, too-large, unavailable.
static inline const char *fh_sql_error_kind(const flowhost_step_sql_error_t *e) {
  static const char *const kinds[] = {"denied", "invalid", "rejected", "too-large", "unavailable"};
  return e->tag < 5 ? kinds[e->tag] : "unknown";
}

// The error case's name: denied, invalid, unavailable.
static inline const char *fh_kv_error_kind(const flowhost_step_kv_error_t *e) {
  static const char *const kinds[] = {"denied", "invalid", "unavailable"};
  return e->tag < 3 ? kinds[e->tag] : "unknown";
}

// Appends {"kind": KIND, "message": MESSAGE} (every error case holds a string).
static inline void fh_buf_error(fh_buf_t *b, const char *kind, const step_string_t *message) {
  fh_buf_str(b, "{\"kind\":");
  fh_buf_quoted(b, kind, strlen(kind));
  fh_buf_str(b, ",\"message\":");
  fh_buf_quoted(b, (const char *)message->ptr, message->len);
  fh_buf_str(b, "}");
}

// Fails the call with a database error as the other languages do: "sql KIND:
// MESSAGE", transient for unavailable and rejected, else permanent. Frees `e`.
static inline bool fh_fail_sql(step_step_error_t *err, flowhost_step_sql_error_t *e) {
  fh_buf_t text = {0};
  fh_buf_str(&text, "sql ");
  fh_buf_str(&text, e->tag == FLOWHOST_STEP_SQL_ERROR_TOO_LARGE ? "too large" : fh_sql_error_kind(e));
  fh_buf_str(&text, ": ");
  fh_buf_string(&text, &e->val.denied);
  bool transient = e->tag == FLOWHOST_STEP_SQL_ERROR_UNAVAILABLE || e->tag == FLOWHOST_STEP_SQL_ERROR_REJECTED;
  flowhost_step_sql_error_free(e);
  err->tag = transient ? FLOWHOST_STEP_TYPES_STEP_ERROR_TRANSIENT : FLOWHOST_STEP_TYPES_STEP_ERROR_PERMANENT;
  if (!fh_buf_into(&text, &err->val.permanent)) step_string_dup(&err->val.permanent, "sql error (out of memory)");
  return false;
}

// Fails the call with a key-value error: "kv KIND: MESSAGE", transient for
// unavailable, else permanent. Frees `e`.
static inline bool fh_fail_kv(step_step_error_t *err, flowhost_step_kv_error_t *e) {
  fh_buf_t text = {0};
  fh_buf_str(&text, "kv ");
  fh_buf_str(&text, fh_kv_error_kind(e));
  fh_buf_str(&text, ": ");
  fh_buf_string(&text, &e->val.denied);
  bool transient = e->tag == FLOWHOST_STEP_KV_ERROR_UNAVAILABLE;
  flowhost_step_kv_error_free(e);
  err->tag = transient ? FLOWHOST_STEP_TYPES_STEP_ERROR_TRANSIENT : FLOWHOST_STEP_TYPES_STEP_ERROR_PERMANENT;
  if (!fh_buf_into(&text, &err->val.permanent)) step_string_dup(&err->val.permanent, "kv error (out of memory)");
  return false;
}

// --- outbound HTTP (contract 0.1.2) --------------------------------------------
//
// flowhost_step_http_send_all(&requests, &answers) sends every request at once
// over the host's pool (to the hosts the flow grants: allow: {http: [HOST]}) and
// waits for all; answers.ptr[i] is the ok response (status, headers, body) or,
// when is_err, the error case. Free the answers with
// flowhost_step_http_list_result_response_error_free.

// A request with `method` to `url`, no headers, no body, no timeout of its own.
// The strings are borrowed: keep them alive until the call returns. Set
// .body (is_some, val) and .timeout_ms (is_some, val) as needed.
static inline flowhost_step_http_request_t fh_http_request(const char *method, const char *url) {
  flowhost_step_http_request_t r = {0};
  step_string_set(&r.method, method);
  step_string_set(&r.url, url);
  return r;
}

// The error case's name: denied, invalid, too-large, timeout, failed.
static inline const char *fh_http_error_kind(const flowhost_step_http_error_t *e) {
  static const char *const kinds[] = {"denied", "invalid", "too-large", "timeout", "failed"};
  return e->tag < 5 ? kinds[e->tag] : "unknown";
}

// Fails the call with an HTTP error as the other languages do: "http KIND:
// MESSAGE", transient for timeout and failed, else permanent. Does not free `e`
// (it belongs to the list of answers).
static inline bool fh_fail_http(step_step_error_t *err, const flowhost_step_http_error_t *e) {
  fh_buf_t text = {0};
  fh_buf_str(&text, "http ");
  fh_buf_str(&text, e->tag == FLOWHOST_STEP_HTTP_ERROR_TOO_LARGE ? "too large" : fh_http_error_kind(e));
  fh_buf_str(&text, ": ");
  fh_buf_string(&text, &e->val.denied);
  bool transient = e->tag == FLOWHOST_STEP_HTTP_ERROR_TIMEOUT || e->tag == FLOWHOST_STEP_HTTP_ERROR_FAILED;
  err->tag = transient ? FLOWHOST_STEP_TYPES_STEP_ERROR_TRANSIENT : FLOWHOST_STEP_TYPES_STEP_ERROR_PERMANENT;
  if (!fh_buf_into(&text, &err->val.permanent)) step_string_dup(&err->val.permanent, "http error (out of memory)");
  return false;
}

#endif
