// c-data: looks up {"id": N} in the database `orders` with one parameterised
// query, and counts its lookups in the key-value namespace `counters`:
//   {"sql": {"ok": [rows]} | {"error": {"kind", "message"}},
//    "kv":  {"ok": lookups} | {"error": {"kind", "message"}}}
// Each outcome is reported, not raised, so a test sees both. Without an
// integer "id" the input is invalid-input.
#include <stdlib.h>

#include "flowhost_step.h"

void exports_step_describe(step_metadata_t *ret) {
  fh_metadata(ret, "c-data", "0.1.0", "Looks up an order with one query and counts lookups (C example)");
}

// The integer after the first "id": in the JSON text (enough for this example).
static bool find_id(const char *s, size_t n, int64_t *id) {
  static const char key[] = "\"id\"";
  for (size_t i = 0; i + sizeof key - 1 <= n; i++) {
    if (memcmp(s + i, key, sizeof key - 1) != 0) continue;
    size_t j = i + sizeof key - 1;
    while (j < n && (s[j] == ' ' || s[j] == ':' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r')) j++;
    char digits[24];
    size_t k = 0;
    if (j < n && s[j] == '-') digits[k++] = s[j++];
    while (j < n && k < sizeof digits - 1 && s[j] >= '0' && s[j] <= '9') digits[k++] = s[j++];
    digits[k] = '\0';
    if (k == 0 || (k == 1 && digits[0] == '-')) return false;
    *id = strtoll(digits, NULL, 10);
    return true;
  }
  return false;
}

bool exports_step_run(step_context_t *ctx, step_string_t *input, step_string_t *ret,
                      step_step_error_t *err) {
  int64_t id;
  bool ok = false;
  if (!find_id((const char *)input->ptr, input->len, &id)) {
    ok = fh_fail(err, FLOWHOST_STEP_TYPES_STEP_ERROR_INVALID_INPUT, "expected {\"id\": <integer>}");
    goto done;
  }
  fh_buf_t out = {0};

  // The id is bound as ?1, never pasted into the SQL.
  flowhost_step_sql_value_t params[] = {fh_sql_integer(id)};
  step_string_t rows;
  flowhost_step_sql_error_t sql_err;
  fh_buf_str(&out, "{\"sql\":");
  if (fh_sql_query("orders", "select * from orders where id = ?1", params, 1, &rows, &sql_err)) {
    fh_buf_str(&out, "{\"ok\":");
    fh_buf_string(&out, &rows);  // already JSON
    fh_buf_str(&out, "}");
    step_string_free(&rows);
  } else {
    fh_buf_str(&out, "{\"error\":");
    fh_buf_error(&out, fh_sql_error_kind(&sql_err), &sql_err.val.denied);
    fh_buf_str(&out, "}");
    flowhost_step_sql_error_free(&sql_err);
  }

  step_string_t ns, key;
  step_string_set(&ns, "counters");
  step_string_set(&key, "c-data-lookups");
  int64_t lookups;
  flowhost_step_kv_error_t kv_err;
  fh_buf_str(&out, ",\"kv\":");
  if (flowhost_step_kv_increment(&ns, &key, 1, &lookups, &kv_err)) {
    fh_buf_str(&out, "{\"ok\":");
    fh_buf_i64(&out, lookups);
    fh_buf_str(&out, "}");
  } else {
    fh_buf_str(&out, "{\"error\":");
    fh_buf_error(&out, fh_kv_error_kind(&kv_err), &kv_err.val.denied);
    fh_buf_str(&out, "}");
    flowhost_step_kv_error_free(&kv_err);
  }
  fh_buf_str(&out, "}");
  ok = fh_buf_into(&out, ret) || fh_fail(err, FLOWHOST_STEP_TYPES_STEP_ERROR_TRANSIENT, "out of memory");
  fh_info("looked up an order");
done:
  step_context_free(ctx);  // the arguments belong to the callee
  step_string_free(input);
  return ok;
}
