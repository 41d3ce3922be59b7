//! Waiting, cancelling and events across servers.

use serde_json::json;

use super::*;
use crate::support::fleet::{Fleet, Settings, worker_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_submitted_to_a_busy_server_runs_on_another_and_its_client_gets_the_result() {
    let mut fleet = Fleet::new(&["testing/echo", "testing/sleep"]);
    fleet.flow(
        "block",
        &format!("flow: block\nsteps:\n{}", nap("nap", 30_000)),
    );
    fleet.flow(
        "greet",
        "flow: greet\nsteps:\n  - id: hello\n    plugin: echo\n",
    );
    let busy = fleet.serve_with(Settings {
        workers: 1,
        ..Settings::default()
    });
    let blocker = busy.submit("block", "{}").await;
    busy.wait_status(&blocker, "running", Duration::from_secs(20))
        .await;
    let other = fleet.serve();
    // Submitted to the busy server, waiting for the result there.
    let r = busy.post("/flows/greet/runs", r#"{"name": "ada"}"#).await;
    assert_eq!(r.status, 200, "{} answered: {}", busy.name, r.body);
    let answer = r.json();
    assert_eq!(answer["status"], "succeeded", "{answer}");
    assert_eq!(answer["output"], json!({"name": "ada"}), "{answer}");
    let id = answer["run_id"].as_str().unwrap();
    let record = busy.record(id).await;
    assert_eq!(
        worker_of(&record),
        other.id,
        "run {id} was submitted to the busy {}, whose one worker was held: {record}",
        busy.name
    );
    assert_eq!(
        busy.record(&blocker).await["status"],
        "running",
        "the blocking run is no longer running: the test did not hold {}",
        busy.name
    );
}

/// A flow whose one step spins until cancelled.
const SPIN: &str = "\
flow: spin
steps:
  - id: forever
    plugin: busy-loop
    timeout: 60s
    limits: {fuel: 1000000000000000}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_sent_to_another_server_stops_the_guest_within_a_second() {
    let mut fleet = Fleet::new(&["hostile/busy-loop"]);
    fleet.flow("spin", SPIN);
    let runner = fleet.serve();
    let id = runner.submit("spin", "{}").await;
    runner
        .wait_status(&id, "running", Duration::from_secs(20))
        .await;
    let other = fleet.serve();
    let asked = Instant::now();
    let r = other.post(&format!("/runs/{id}/cancel"), "").await;
    assert_eq!(r.status, 202, "{} answered: {}", other.name, r.body);
    assert_eq!(r.json()["cancelling"], true, "{}", r.body);
    // Within a second, with room for a loaded machine.
    let record = other
        .wait_status(&id, "cancelled", Duration::from_secs(3))
        .await;
    let took = asked.elapsed();
    assert_eq!(record["error"]["kind"], "cancelled", "{record}");
    assert_eq!(
        worker_of(&record),
        runner.id,
        "run {id} ran on {}, which must record its cancel: {record}",
        runner.name
    );
    // The guest stopped: the server that ran it is idle now.
    let before = cpu_time(runner.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_time(runner.pid()) - before;
    assert!(
        used < Duration::from_millis(400),
        "{} used {used:?} of CPU in the 2 s after run {id} was recorded cancelled \
         ({took:?} after the cancel): its guest still spins",
        runner.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_on_one_server_starts_its_flow_once() {
    let mut fleet = Fleet::new(&["testing/append"]);
    fleet.flow(
        "heard",
        &format!(
            "flow: heard\ntriggers: [{{event: \"order.*\"}}]\nsteps:\n{}",
            fleet.append("put", "")
        ),
    );
    let servers = fleet.serve_n(3);
    let mut ids = Vec::new();
    for i in 0..6 {
        let s = &servers[i % 3];
        let r = s
            .post("/events/order.created", &format!(r#"{{"n": {i}}}"#))
            .await;
        assert_eq!(r.status, 202, "{} answered: {}", s.name, r.body);
        let runs = r.json()["runs"].as_array().unwrap().clone();
        assert_eq!(runs.len(), 1, "event {i} on {}: {}", s.name, r.body);
        ids.push(runs[0].as_str().unwrap().to_string());
    }
    let records = servers[1]
        .wait_finished(&ids, Duration::from_secs(30))
        .await;
    for (id, record) in ids.iter().zip(&records) {
        assert_eq!(record["status"], "succeeded", "run {id}: {record}");
    }
    // No server starts the flow again for an event another one took.
    tokio::time::sleep(LEASE).await;
    let lines = fleet.lines();
    assert_eq!(
        lines.len(),
        6,
        "6 events, one subscribed flow, yet its step ran {} times: {lines:?}",
        lines.len()
    );
    for s in &servers {
        let r = s.get("/runs?flow=heard").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let listed = r.json()["runs"].as_array().unwrap().len();
        assert_eq!(
            listed, 6,
            "{} lists {listed} runs of `heard`: {}",
            s.name, r.body
        );
    }
}
