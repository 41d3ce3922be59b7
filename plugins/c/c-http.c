// c-http: GETs every URL in its input at once (each "http..." string of the
// JSON text, without escapes: enough for this example) and reports each answer:
//   {"requests": ["http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b"]}
//   -> {"answers": [{"status": 200, "body": "ok"}, {"error": {"kind": "denied", "message": "..."}}]}
#include "flowhost_step.h"

#define MAX_URLS 64

void exports_step_describe(step_metadata_t *ret) {
  fh_metadata(ret, "c-http", "0.1.0", "GETs the URLs its input lists, all at once (C example)");
}

bool exports_step_run(step_context_t *ctx, step_string_t *input, step_string_t *ret,
                      step_step_error_t *err) {
  step_context_free(ctx);
  // Each URL is copied NUL-terminated, since fh_http_request borrows C strings.
  char *urls[MAX_URLS];
  flowhost_step_http_request_t requests[MAX_URLS];
  size_t n = 0;
  const char *s = (const char *)input->ptr;
  for (size_t i = 0; i + 5 < input->len && n < MAX_URLS; i++) {
    if (s[i] != '"' || memcmp(s + i + 1, "http", 4) != 0) continue;
    size_t end = i + 1;
    while (end < input->len && s[end] != '"') end++;
    urls[n] = strndup(s + i + 1, end - i - 1);
    requests[n] = fh_http_request("GET", urls[n]);
    n++;
    i = end;
  }

  flowhost_step_http_list_request_t list = {requests, n};
  flowhost_step_http_list_result_response_error_t answers;
  flowhost_step_http_send_all(&list, &answers);

  fh_buf_t out = {0};
  fh_buf_str(&out, "{\"answers\":[");
  for (size_t i = 0; i < answers.len; i++) {
    flowhost_step_http_result_response_error_t *a = &answers.ptr[i];
    if (i > 0) fh_buf_str(&out, ",");
    if (a->is_err) {
      fh_buf_str(&out, "{\"error\":");
      fh_buf_error(&out, fh_http_error_kind(&a->val.err), &a->val.err.val.denied);
      fh_buf_str(&out, "}");
    } else {
      fh_buf_str(&out, "{\"status\":");
      fh_buf_i64(&out, a->val.ok.status);
      fh_buf_str(&out, ",\"body\":");
      fh_buf_quoted(&out, (const char *)a->val.ok.body.ptr, a->val.ok.body.len);
      fh_buf_str(&out, "}");
    }
  }
  fh_buf_str(&out, "]}");
  flowhost_step_http_list_result_response_error_free(&answers);
  for (size_t i = 0; i < n; i++) free(urls[i]);
  step_string_free(input);
  if (!fh_buf_into(&out, ret)) {
    return fh_fail(err, FLOWHOST_STEP_TYPES_STEP_ERROR_TRANSIENT, "out of memory");
  }
  return true;
}
