//! The HTTP API: every endpoint's answers, and every refusal in one shape.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_with_its_status_and_body() {
    let s = Served::start(
        &["testing/echo", "testing/fail"],
        &[("greet", GREET), ("broken", BROKEN)],
        config(),
    )
    .await;

    // A run, waited for.
    let r = s.post("/flows/greet/runs", r#"{"name": "Ada"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    let id = body["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        body,
        json!({"run_id": id, "status": "succeeded", "output": {"name": "Ada"}})
    );
    assert_eq!(r.header("x-flowhost-run-id"), Some(id.as_str()));
    assert_eq!(r.header("content-type"), Some("application/json"));

    // Its record.
    let r = s.get(&format!("/runs/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-flowhost-run-id"), Some(id.as_str()));
    let record = r.json();
    assert_eq!(record["run_id"], id.as_str());
    assert_eq!(record["flow"], "greet");
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["output"], json!({"name": "Ada"}));
    assert_eq!(record["steps"][0]["path"], "hello");
    assert_eq!(record["steps"][0]["status"], "succeeded");
    assert!(
        record["started_at"].as_str().unwrap().ends_with('Z'),
        "{record}"
    );

    // Cancelling a finished run is a conflict.
    let r = s.post(&format!("/runs/{id}/cancel"), "").await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        error_body(
            "conflict",
            &format!("run `{id}` already finished (succeeded)"),
            None
        )
    );

    // A run not waited for: 202, then poll its record.
    let r = s
        .post("/flows/greet/runs?wait=false", r#"{"name": "Bo"}"#)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let body = r.json();
    let id2 = body["run_id"].as_str().unwrap().to_string();
    assert_eq!(body, json!({"run_id": id2, "status": "queued"}));
    assert_eq!(r.header("x-flowhost-run-id"), Some(id2.as_str()));
    let record = s.wait_finished(&id2).await;
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["output"], json!({"name": "Bo"}));

    // A run that fails is still a 200: the run happened, and its error is in the body.
    let r = s.post("/flows/broken/runs", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["error"]["kind"], "permanent");
    assert_eq!(body["error"]["step"], "boom");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no way"),
        "{body}"
    );
    assert!(body.get("output").is_none(), "{body}");

    // Errors.
    let r = s.post("/flows/nope/runs", "{}").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        error_body("not-found", "no flow named `nope`", None)
    );
    assert_eq!(r.header("x-flowhost-run-id"), None);
    // The flow is looked up before the body is read.
    let r = s.post("/flows/nope/runs", "{not json").await;
    assert_eq!(r.status, 404);

    let r = s.post("/flows/greet/runs", "{not json").await;
    assert_eq!(r.status, 400);
    let e = r.json();
    assert_eq!(e["error"]["kind"], "bad-json");
    assert_eq!(e["error"]["step"], Value::Null);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the request body is not valid JSON: "),
        "{e}"
    );

    let r = s.post("/flows/greet/runs", r#"{"name": 5}"#).await;
    assert_eq!(r.status, 422);
    let e = r.json();
    assert_eq!(e["error"]["kind"], "invalid-input");
    assert_eq!(e["error"]["step"], "input");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("the input does not match the flow's input_schema: input/name: "),
        "{msg}"
    );
    let r = s.post("/flows/greet/runs", "{}").await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"name\"")
    );

    let r = s.get("/runs/no-such-run").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        error_body(
            "not-found",
            if durable() {
                "no run `no-such-run` (runs are kept within the store's retention)"
            } else {
                "no run `no-such-run` (runs are kept in memory, and only the most recent)"
            },
            None
        )
    );
    let r = s.post("/runs/no-such-run/cancel", "").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        error_body("not-found", "no run `no-such-run`", None)
    );

    // Listings.
    let r = s.get("/flows").await;
    assert_eq!(r.status, 200);
    let flows = r.json()["flows"].as_array().unwrap().clone();
    let names: Vec<&str> = flows.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["broken", "greet"]);
    let greet = &flows[1];
    assert_eq!(greet["flow"], "greet");
    assert_eq!(greet["steps"], 1);
    assert_eq!(greet["triggers"], json!([]));
    assert_eq!(greet["concurrency"], Value::Null);
    assert_eq!(greet["error"], Value::Null);
    assert!(greet["file"].as_str().unwrap().ends_with("greet.yaml"));

    let r = s.get("/plugins").await;
    assert_eq!(r.status, 200);
    let plugins = r.json()["plugins"].as_array().unwrap().clone();
    let mut names: Vec<&str> = plugins
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["echo", "fail"]);
    assert!(plugins.iter().all(|p| p["error"].is_null()), "{plugins:?}");

    // An event no flow subscribes to is accepted and starts nothing.
    let r = s.post("/events/nobody.listens", r#"{"a": 1}"#).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json(), json!({"topic": "nobody.listens", "runs": []}));
    let r = s.post("/events/nobody.listens", "{oops").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["kind"], "bad-json");

    let r = s.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(sample(&r.body, &started("greet")), 2.0, "{}", r.body);
    assert_eq!(
        sample(&r.body, &finished("broken", "failed", "permanent", "guest")),
        1.0
    );
    assert!(r.body.trim_end().ends_with("# EOF"));

    let r = s.get("/healthz").await;
    assert_eq!(r.status, 200);
    let h = r.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["checks"]["runtime"]["status"], "ok");

    let r = s.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ready = r.json();
    assert_eq!(ready["status"], "ok", "{ready}");
    assert_eq!(ready["checks"]["probe"]["status"], "ok");
    assert_eq!(
        ready["checks"]["plugins"],
        json!({"status": "ok", "loaded": 2, "errors": 0})
    );
    assert_eq!(
        ready["checks"]["flows"],
        json!({"status": "ok", "loaded": 2, "errors": 0})
    );
    assert_eq!(
        ready["checks"]["queue"],
        json!({"status": "ok", "queued": 0, "capacity": 64})
    );

    let report = s.shutdown().await;
    assert_eq!(report.drained, 0);
    assert!(report.cancelled_running.is_empty() && report.cancelled_queued.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_answers_in_the_api_error_shape() {
    let s = Served::start(&["testing/echo"], &[("greet", GREET)], config()).await;

    // A body one byte over the 2 MiB limit: axum's own refusal, in JSON.
    let big = "x".repeat((2 << 20) + 1);
    for path in ["/flows/greet/runs", "/events/order.created"] {
        let r = s.post(path, &big).await;
        assert_eq!(r.status, 413, "{path}: {}", r.body);
        assert_eq!(
            r.json(),
            error_body(
                "too-large",
                "the request body is over the 2.0 MiB limit",
                None
            ),
            "{path}"
        );
    }
    // A query the route does not take.
    let r = s.post("/flows/greet/runs?wait=maybe", "{}").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let e = r.json();
    assert_eq!(e["error"]["kind"], "bad-request", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("wait"),
        "{e}"
    );
    // No such route, or not with this method.
    let r = s.get("/nowhere").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        error_body("not-found", "no endpoint GET /nowhere", None)
    );
    let r = s.get("/flows/greet/runs").await;
    assert_eq!(r.status, 405);
    assert_eq!(
        r.json(),
        error_body(
            "method-not-allowed",
            "/flows/greet/runs does not take GET",
            None
        )
    );
    // Invalid JSON names the request body, with serde's line and column.
    let r = s
        .post("/flows/greet/runs", "{\n  \"name\": \"Ada\",\n}")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        error_body(
            "bad-json",
            "the request body is not valid JSON: key must be a string at line 3 column 1",
            None
        )
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_expressions_cannot_read_runs_with_a_warning() {
    let plain = "flow: plain\nsteps:\n  - {id: a, plugin: echo}\n";
    let s = Served::start(&["testing/echo"], &[("plain", plain)], config()).await;
    let warning = "the request body: the JSON cannot be read: number out of range \
                   at line 1 column 12; steps get it as written, but expressions cannot read it";

    // Waited for: the output is the body as written, and the answer warns.
    let r = s.post("/flows/plain/runs", r#"{"big":1e400}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(r#""status":"succeeded""#), "{}", r.body);
    assert!(r.body.contains(r#""output":{"big":1e400}"#), "{}", r.body);
    assert!(
        r.body
            .contains(&format!(r#""warnings":[{}]"#, json!(warning))),
        "{}",
        r.body
    );

    // Not waited for, and as an event's payload: the same warning.
    let r = s
        .post("/flows/plain/runs?wait=false", r#"{"big":1e400}"#)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["warnings"], json!([warning]));
    let r = s.post("/events/nobody.listens", r#"{"big":1e400}"#).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["warnings"], json!([warning]));

    // A body expressions can read: no warnings.
    let r = s.post("/flows/plain/runs", r#"{"big":1e300}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json().get("warnings").is_none(), "{}", r.body);
    s.shutdown().await;
}
