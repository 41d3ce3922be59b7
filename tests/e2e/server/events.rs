//! Events: triggers, steps' emits, the loop guard, and admission.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_starts_every_subscribed_flow() {
    let subscribed = |name: &str| {
        format!(
            "flow: {name}\ntriggers: [{{event: \"order.*\"}}]\nsteps:\n  - id: take\n    plugin: echo\n"
        )
    };
    let s = Served::start(
        &["testing/echo"],
        &[
            ("ship", &subscribed("ship")),
            ("bill", &subscribed("bill")),
            (
                "audit",
                "flow: audit\ntriggers: [{event: \"invoice.*\"}]\nsteps:\n  - id: a\n    plugin: echo\n",
            ),
            (
                "strict",
                "flow: strict\ntriggers: [{event: \"order.*\"}]\ninput_schema: {required: [sku]}\nsteps:\n  - id: a\n    plugin: echo\n",
            ),
        ],
        config(),
    )
    .await;
    let r = s.post("/events/order.created", r#"{"order": 7}"#).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let body = r.json();
    assert_eq!(body["topic"], "order.created");
    let ids: Vec<String> = body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{body}");
    let mut flows = Vec::new();
    for id in &ids {
        let record = s.wait_finished(id).await;
        let flow = record["flow"].as_str().unwrap().to_string();
        if flow == "strict" {
            // The payload fails this flow's schema: its run fails at once.
            assert_eq!(record["status"], "failed", "{record}");
            assert_eq!(record["error"]["kind"], "invalid-input", "{record}");
            assert_eq!(record["error"]["step"], "input", "{record}");
            assert_eq!(record["steps"], json!([]), "{record}");
        } else {
            assert_eq!(record["status"], "succeeded", "{record}");
            assert_eq!(record["output"], json!({"order": 7}));
        }
        flows.push(flow);
    }
    flows.sort();
    assert_eq!(flows, ["bill", "ship", "strict"]);
    let m = s.metrics().await;
    assert_eq!(sample(&m, &started("audit")), 0.0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_emitted_event_starts_the_subscribed_flow() {
    let s = Served::start(
        &["testing/echo", "testing/emit"],
        &[
            (
                "a",
                "flow: a\nsteps:\n  - id: tell\n    plugin: emit\n    config: {topic: b.go}\n",
            ),
            (
                "b",
                "flow: b\ntriggers: [{event: b.go}]\nsteps:\n  - id: hear\n    plugin: echo\n",
            ),
        ],
        config(),
    )
    .await;
    let r = s.post("/flows/a/runs", r#"{"from": "a"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(body["output"], json!({"emitted": true}));
    let m = s
        .metrics_until("flow b to finish", |m| {
            sample(m, &finished("b", "succeeded", "", "")) >= 1.0
        })
        .await;
    assert_eq!(sample(&m, &started("b")), 1.0);
    assert_eq!(sample(&m, &finished("b", "succeeded", "", "")), 1.0);
    let flows = s.get("/flows").await.json();
    assert_eq!(flows["flows"][1]["triggers"], json!(["b.go"]));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_guard_stops_an_event_cycle() {
    let s = Served::start(
        &["testing/emit"],
        &[(
            "again",
            "flow: again\ntriggers: [{event: again.go}]\nsteps:\n  - id: echo_back\n    plugin: emit\n    config: {topic: again.go}\n",
        )],
        ServerConfig {
            max_event_hops: 3,
            ..config()
        },
    )
    .await;
    let r = s.post("/events/again.go", r#"{"n": 1}"#).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let first = r.json()["runs"][0].as_str().unwrap().to_string();
    // Hops 0, 1 and 2 emit; hop 3's emit is refused, so its step fails.
    let done = |m: &str| {
        sample(m, &finished("again", "succeeded", "", ""))
            + sample(m, &finished("again", "failed", "permanent", "guest"))
    };
    s.metrics_until("four runs of `again`", |m| done(m) >= 4.0)
        .await;
    // Give a runaway chain the time to show itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = s.metrics().await;
    assert_eq!(sample(&m, &started("again")), 4.0, "{m}");
    assert_eq!(
        sample(&m, &finished("again", "succeeded", "", "")),
        3.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, &finished("again", "failed", "permanent", "guest")),
        1.0,
        "{m}"
    );
    assert_eq!(s.run(&first).await["status"], "succeeded");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_for_more_flows_than_the_queue_holds_is_accepted_on_an_empty_queue() {
    let subscribed = |name: &str| {
        format!(
            "flow: {name}\ntriggers: [{{event: fan.out}}]\nsteps:\n  - id: take\n    plugin: echo\n"
        )
    };
    let s = Served::start(
        &["testing/echo"],
        &[
            ("one", &subscribed("one")),
            ("two", &subscribed("two")),
            ("three", &subscribed("three")),
        ],
        ServerConfig {
            workers: 1,
            queue_capacity: 2,
            ..config()
        },
    )
    .await;
    // Three runs, a queue of two: accepted whole, as the queue is empty.
    let r = s.post("/events/fan.out", r#"{"n": 1}"#).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let runs = r.json()["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 3, "{runs:?}");
    for id in &runs {
        let record = s.wait_finished(id.as_str().unwrap()).await;
        assert_eq!(record["status"], "succeeded", "{record}");
    }
    s.shutdown().await;
}
