//! A dead worker's runs resume elsewhere; a stale one writes nothing.

use std::collections::BTreeMap;

use super::*;
use crate::support::fleet::{Fleet, worker_of};

/// A flow whose middle step takes `ms` and whose first and last steps
/// append `<run id> a` and `<run id> b` to the fleet's log.
fn three_steps(fleet: &Fleet, name: &str, ms: u64) -> String {
    format!(
        "flow: {name}\nsteps:\n{}{}{}",
        fleet.append("a", ""),
        nap("nap", ms),
        fleet.append("b", "")
    )
}

fn counts(lines: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(line.as_str()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_runs_finish_elsewhere_exactly_once_within_its_lease() {
    let mut fleet = Fleet::new(&["testing/append", "testing/sleep"]);
    fleet.flow("kill", &three_steps(&fleet, "kill", 1000));
    let mut servers = fleet.serve_n(3);
    let ids = submit_round_robin(&servers, "kill", 300).await;
    assert_eq!(ids.len(), 300);
    until("100 runs to finish", || {
        fleet.lines().iter().filter(|l| l.ends_with(" b")).count() >= 100
    })
    .await;
    servers[1].kill();
    // The dead process writes nothing more: this is what it left.
    let at_kill = fleet.lines();
    let at_kill = counts(&at_kill);
    let done_at_kill = at_kill.keys().filter(|l| l.ends_with(" b")).count();
    assert!(
        done_at_kill < 300,
        "every run finished before the kill: nothing was tested"
    );
    let dead = servers.remove(1);

    let within = LEASE + SETTLE;
    // Every run finished within the lease and a few seconds of the kill.
    let records = servers[0].wait_finished(&ids, within).await;
    let mut by_worker: BTreeMap<&str, usize> = BTreeMap::new();
    let fleet_ids = [&servers[0].id, &servers[1].id, &dead.id];
    for (id, record) in ids.iter().zip(&records) {
        assert_eq!(record["status"], "succeeded", "run {id}: {record}");
        let worker = worker_of(record);
        assert!(
            fleet_ids.iter().any(|w| *w == worker),
            "run {id} names a worker of no server of the fleet: {record}"
        );
        *by_worker.entry(worker).or_default() += 1;
        if worker == dead.id {
            assert!(
                at_kill.contains_key(format!("{id} b").as_str()),
                "run {id} is recorded as finished by the killed {}, but its last step had not run at the kill: {record}",
                dead.name
            );
        }
        // Every server answers the same record.
        if id == &ids[0] || id == &ids[299] {
            assert_eq!(&servers[1].record(id).await, record, "run {id}");
        }
    }
    assert!(
        by_worker.get(dead.id.as_str()).is_some_and(|&n| n > 0),
        "the killed {} finished no run before the kill: it held none ({by_worker:?})",
        dead.name
    );

    // Exactly once: a step ran twice only if it was in flight at the kill
    // (its first call before the kill, its result not journaled), and then
    // the run was finished by another worker.
    let calls = fleet.calls();
    for (id, record) in ids.iter().zip(&records) {
        for step in ["a", "b"] {
            let line = format!("{id} {step}");
            let n = calls.get(&line).copied().unwrap_or(0);
            let before = at_kill.get(line.as_str()).copied().unwrap_or(0);
            assert!(n >= 1, "step {step} of run {id} never ran: {record}");
            if n > 1 {
                assert!(
                    n == 2 && before == 1 && worker_of(record) != dead.id,
                    "step {step} of run {id} ran {n} times, {before} of them before the kill; \
                     only the step in flight at the kill may run again: {record}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_past_its_lease_writes_nothing_for_the_runs_taken_from_it() {
    let mut fleet = Fleet::new(&["testing/append", "testing/sleep"]);
    fleet.flow("stale", &three_steps(&fleet, "stale", 3000));
    let stale = fleet.serve();
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(stale.submit("stale", "{}").await);
    }
    // Alone in the fleet, it runs them all: wait until each is in its nap.
    until("every run's first step", || {
        let calls = fleet.calls();
        ids.iter().all(|id| calls.contains_key(&format!("{id} a")))
    })
    .await;
    stale.stop();
    let before_stop = fleet.lines();
    let other = fleet.serve();
    let records = other.wait_finished(&ids, LEASE + SETTLE + SETTLE).await;
    for (id, record) in ids.iter().zip(&records) {
        assert_eq!(record["status"], "succeeded", "run {id}: {record}");
        assert_eq!(
            worker_of(record),
            other.id,
            "run {id} was taken over by {} after {} stopped: {record}",
            other.name,
            stale.name
        );
    }
    let taken_over = fleet.lines();

    // Back: its naps end (their time passed), their results are refused and
    // it must not go on to the last step, nor record anything.
    stale.cont();
    tokio::time::sleep(LEASE + Duration::from_secs(2)).await;
    let after = fleet.lines();
    let late = &after[taken_over.len()..];
    assert!(
        late.is_empty(),
        "{} ran steps after it came back from its stop: {late:?}",
        stale.name
    );
    for (id, record) in ids.iter().zip(&records) {
        assert_eq!(
            &other.record(id).await,
            record,
            "run {id}'s record changed after {} came back",
            stale.name
        );
        assert_eq!(
            &stale.record(id).await,
            record,
            "{} answers another record for run {id}",
            stale.name
        );
    }
    let before_stop = counts(&before_stop);
    let calls = fleet.calls();
    for id in &ids {
        let b = calls.get(&format!("{id} b")).copied().unwrap_or(0);
        assert_eq!(b, 1, "the last step of run {id} ran {b} times");
        let a = calls.get(&format!("{id} a")).copied().unwrap_or(0);
        let a_before = before_stop.get(format!("{id} a").as_str()).copied();
        // Only a first step whose result was not yet journaled at the stop
        // runs again.
        assert!(
            a == 1 || (a == 2 && a_before == Some(1)),
            "the first step of run {id} ran {a} times ({a_before:?} before the stop)"
        );
    }
}
