//! What bounds a server: the queue and its 429, per-flow concurrency,
//! metrics that count exactly, and a readiness probe that notices.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_recovers() {
    let s = Served::start(
        &["testing/sleep"],
        &[(
            "slow",
            &sleep_flow("slow", 500, "triggers: [{event: slow.go}]\n"),
        )],
        ServerConfig {
            workers: 1,
            queue_capacity: 2,
            retry_after_secs: 3,
            ..config()
        },
    )
    .await;
    let first = s.start_run("slow", "{}").await;
    s.wait_status(&first, "running", Duration::from_secs(5))
        .await;
    let second = s.start_run("slow", "{}").await;
    let third = s.start_run("slow", "{}").await;
    assert_eq!(s.run(&second).await["status"], "queued");
    assert_eq!(s.run(&third).await["status"], "queued");

    let full = error_body(
        "queue-full",
        "the run queue is full (2 runs waiting); try again later",
        None,
    );
    let r = s.post("/flows/slow/runs?wait=false", "{}").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.json(), full);
    // Waiting callers are refused alike, and so are events.
    let r = s.post("/flows/slow/runs", "{}").await;
    assert_eq!(r.status, 429);
    let r = s.post("/events/slow.go", "{}").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.json(), full);
    let r = s.get("/readyz").await;
    assert_eq!(r.json()["checks"]["queue"]["status"], "degraded");
    assert_eq!(sample(&s.metrics().await, "flowhost_queue_depth"), 2.0);

    // Cancelling a queued run frees its place at once.
    let r = s.post(&format!("/runs/{third}/cancel"), "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"run_id": third, "status": "queued", "cancelling": true})
    );
    let record = s
        .wait_status(&third, "cancelled", Duration::from_secs(2))
        .await;
    assert_eq!(record["error"]["kind"], "cancelled");
    assert_eq!(
        record["error"]["message"],
        "the run was cancelled before it started"
    );
    assert_eq!(record["steps"], json!([]));
    let fourth = s.start_run("slow", "{}").await;
    assert_eq!(
        s.post("/flows/slow/runs?wait=false", "{}").await.status,
        429
    );

    for id in [&first, &second, &fourth] {
        assert_eq!(s.wait_finished(id).await["status"], "succeeded");
    }
    let r = s.post("/flows/slow/runs", "{}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "succeeded");
    let m = s.metrics().await;
    // The cancelled run never started.
    assert_eq!(sample(&m, &started("slow")), 4.0);
    assert_eq!(sample(&m, "flowhost_queue_depth"), 0.0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_flow_concurrency_limit_caps_overlap() {
    let s = Served::start(
        &["testing/sleep"],
        &[(
            "capped",
            &sleep_flow("capped", 300, "concurrency: {limit: 2}\n"),
        )],
        ServerConfig {
            workers: 8,
            ..config()
        },
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(s.start_run("capped", "{}").await);
    }
    let mut intervals = Vec::new();
    for id in &ids {
        let record = s.wait_finished(id).await;
        assert_eq!(record["status"], "succeeded", "{record}");
        let start = epoch_ms(record["started_at"].as_str().unwrap());
        let duration = record["duration_ms"].as_f64().unwrap();
        assert!(duration >= 300.0, "{record}");
        // `started_at` has millisecond precision and comes from the wall
        // clock: trim each end by 5 ms so back-to-back runs do not count.
        intervals.push((start + 5.0, start + duration - 5.0));
    }
    assert_eq!(max_overlap(&intervals), 2, "{intervals:?}");
    let flows = s.get("/flows").await.json();
    assert_eq!(flows["flows"][0]["concurrency"], 2);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_runs_exactly() {
    let s = Served::start(
        &["testing/echo", "testing/fail"],
        &[(
            "x",
            "flow: x\nsteps:\n  - id: check\n    plugin: fail\n    if: \"${input.fail}\"\n    config: {kind: permanent, message: told to}\n  - id: done\n    plugin: echo\n",
        )],
        config(),
    )
    .await;
    // Every label order, exactly as printed.
    let r = s.post("/flows/x/runs", r#"{"fail": false}"#).await;
    assert_eq!(r.json()["status"], "succeeded");
    let before = s.metrics().await;
    assert!(
        before.contains("flowhost_runs_started_total{flow=\"x\"} 1\n"),
        "{before}"
    );
    assert!(
        before.contains(
            "flowhost_runs_finished_total{flow=\"x\",status=\"succeeded\",kind=\"\",class=\"\"} 1\n"
        ),
        "{before}"
    );
    for _ in 0..3 {
        let r = s.post("/flows/x/runs", r#"{"fail": false}"#).await;
        assert_eq!(r.json()["status"], "succeeded", "{}", r.body);
    }
    let r = s.post("/flows/x/runs", r#"{"fail": true}"#).await;
    assert_eq!(r.json()["status"], "failed", "{}", r.body);
    let after = s.metrics().await;
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(delta(&started("x")), 4.0);
    assert_eq!(delta(&finished("x", "succeeded", "", "")), 3.0);
    assert_eq!(delta(&finished("x", "failed", "permanent", "guest")), 1.0);
    assert_eq!(
        delta(
            "flowhost_step_failures_total{flow=\"x\",step=\"check\",kind=\"permanent\",class=\"guest\"}"
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta("flowhost_run_duration_seconds_count{flow=\"x\"}"),
        4.0
    );
    assert_eq!(sample(&after, "flowhost_runs_in_flight"), 0.0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_unhealthy_while_its_probe_cannot_run() {
    // One guest instance at most: while a run holds it, the probe cannot
    // instantiate its step. (A tiny `probe_timeout` does not do it: the
    // probe's echo finishes well within even 1 ms.)
    let host =
        Host::new(Config::default().cache(Some(cache_dir())).max_instances(1)).expect("host");
    let s = Served::start_on(host, &["hostile/busy-loop"], &[("spin", SPIN)], config()).await;
    let r = s.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ok");

    let id = s.start_run("spin", "{}").await;
    s.wait_status(&id, "running", Duration::from_secs(5)).await;
    s.instances_become(1, Duration::from_secs(5)).await;
    // The one instance seen may still be the first probe's, dropped just
    // after its answer: ask until the spinning run holds it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let r = loop {
        let r = s.get("/readyz").await;
        if r.status == 503 || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(r.status, 503, "{}", r.body);
    let body = r.json();
    assert_eq!(body["status"], "unhealthy", "{body}");
    let probe = &body["checks"]["probe"];
    assert_eq!(probe["status"], "unhealthy", "{body}");
    assert!(
        probe["error"]
            .as_str()
            .unwrap()
            .starts_with("step probe failed: "),
        "{body}"
    );
    assert_eq!(body["checks"]["plugins"]["status"], "ok", "{body}");
    // Alive all the same.
    assert_eq!(s.get("/healthz").await.status, 200);

    assert_eq!(s.post(&format!("/runs/{id}/cancel"), "").await.status, 202);
    s.wait_status(&id, "cancelled", Duration::from_secs(2))
        .await;
    s.instances_become(0, Duration::from_secs(2)).await;
    let r = s.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["checks"]["probe"]["status"], "ok");
    s.shutdown().await;
}
