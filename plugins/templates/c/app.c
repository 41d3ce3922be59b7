// {{name}}: wraps a JSON object: {"step": "{{name}}", "input": <the input>}.
// Anything but an object is invalid-input. With DATABASE set to a database
// the flow grants, it also adds the rows of one query: "rows": [...].
#include <stdlib.h>

#include "flowhost_step.h"

// A database the flow grants (allow: {sql: [orders]}), e.g. "orders"; NULL: no query.
static const char *const DATABASE = NULL;

void exports_step_describe(step_metadata_t *ret) {
  fh_metadata(ret, "{{name}}", "0.1.0", "A flowhost step");
}

bool exports_step_run(step_context_t *ctx, step_string_t *input, step_string_t *ret,
                      step_step_error_t *err) {
  const char *body;
  size_t len;
  bool ok = false;
  fh_buf_t out = {0};
  fh_trim(input, &body, &len);
  if (len < 2 || body[0] != '{' || body[len - 1] != '}') {
    ok = fh_fail(err, FLOWHOST_STEP_TYPES_STEP_ERROR_INVALID_INPUT, "expected a JSON object");
    goto done;
  }
  fh_buf_str(&out, "{\"step\":\"{{name}}\",\"input\":");
  fh_buf_raw(&out, body, len);
  if (DATABASE != NULL) {
    // Parameters are bound (?1 on SQLite, $1 on PostgreSQL), never pasted into the SQL.
    flowhost_step_sql_value_t params[] = {fh_sql_integer((int64_t)len)};
    step_string_t rows;
    flowhost_step_sql_error_t sql_err;
    if (!fh_sql_query(DATABASE, "select ?1 as input_bytes", params, 1, &rows, &sql_err)) {
      free(out.ptr);
      ok = fh_fail_sql(err, &sql_err);  // "sql denied: ...", permanent
      goto done;
    }
    fh_buf_str(&out, ",\"rows\":");
    fh_buf_string(&out, &rows);
    step_string_free(&rows);
  }
  fh_buf_str(&out, "}");
  ok = fh_buf_into(&out, ret) || fh_fail(err, FLOWHOST_STEP_TYPES_STEP_ERROR_TRANSIENT, "out of memory");
  fh_info("wrapped the input");
done:
  step_context_free(ctx);  // the arguments belong to the callee
  step_string_free(input);
  return ok;
}
