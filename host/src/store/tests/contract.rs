//! What every store does, checked against each backend.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::{Accepted, Cursor, ListQuery, RunPage};

#[tokio::test]
async fn every_write_reads_back_as_written() {
    for Backend { name, store, .. } in backends().await {
        let run = new_run("r1", "orders", 1_700_000_000_123);
        let rerun = derived("r2", "r1");
        let answers = store
            .accept(vec![run.clone(), rerun.clone()])
            .await
            .unwrap();
        assert_eq!(answers, [Accepted::New, Accepted::New], "{name}");
        store.started("r1", at(1_700_000_000_500)).await.unwrap();
        // A second start (a resume) keeps the first: the deadline counts from it.
        store.started("r1", at(1_700_000_009_000)).await.unwrap();

        let done = entry("fetch", Some(r#"{"price": 12.5, "items": [1, 2]}"#));
        let mut waiting = entry("lines[3].price", None);
        waiting.retry_at = Some(at(1_700_000_001_000));
        store.journal("r1", done.clone()).await.unwrap();
        store.journal("r1", waiting.clone()).await.unwrap();

        let queued = store.run("r2").await.unwrap().unwrap();
        assert_eq!(queued.status, RunStatus::Queued, "{name}");
        let running = store.run("r1").await.unwrap().unwrap();
        assert_eq!(
            (running.run_id.as_str(), running.flow.as_str()),
            ("r1", "orders"),
            "{name}"
        );
        assert_eq!(running.status, RunStatus::Running, "{name}");
        assert_eq!(running.accepted_at, run.accepted_at, "{name}");
        assert!(running.record.is_none(), "{name}");

        let unfinished = store.unfinished().await.unwrap();
        let ids: Vec<_> = unfinished.iter().map(|u| u.run.run_id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2"], "{name}: oldest first");
        let u = &unfinished[0];
        assert_eq!(json(&u.run), json(&run), "{name}");
        assert_eq!(u.started_at, Some(at(1_700_000_000_500)), "{name}");
        assert_eq!(
            json(&u.steps),
            json(&vec![done.clone(), waiting.clone()]),
            "{name}"
        );
        assert_eq!(json(&unfinished[1].run), json(&rerun), "{name}");
        assert_eq!(unfinished[1].started_at, None, "{name}");
        assert!(unfinished[1].steps.is_empty(), "{name}");

        let (source, steps) = store.replay_source("r1").await.unwrap().unwrap();
        assert_eq!(json(&source), json(&run), "{name}");
        assert_eq!(
            json(&steps),
            json(&vec![done.clone(), waiting.clone()]),
            "{name}"
        );

        let finished = Arc::new(record("r1", "orders", r#"{"total": 25, "s": "\u00e9"}"#));
        store.finish(finished.clone()).await.unwrap();
        let stored = store.run("r1").await.unwrap().unwrap();
        assert_eq!(stored.status, RunStatus::Succeeded, "{name}");
        let kept = stored.record.expect("a finished run has its record");
        assert_eq!(json(&*kept), json(&*finished), "{name}");
        assert_eq!(
            kept.output.as_ref().unwrap().get(),
            r#"{"total": 25, "s": "\u00e9"}"#,
            "{name}: the output's text as written"
        );
        let unfinished = store.unfinished().await.unwrap();
        let ids: Vec<_> = unfinished.iter().map(|u| u.run.run_id.as_str()).collect();
        assert_eq!(ids, ["r2"], "{name}");
        // The journal outlives the run, for a rerun from one of its steps.
        let (_, steps) = store.replay_source("r1").await.unwrap().unwrap();
        assert_eq!(json(&steps), json(&vec![done, waiting]), "{name}");
        assert_eq!(store.usage().0, 1, "{name}");
    }
}

#[tokio::test]
async fn blobs_are_kept_once_by_hash() {
    for Backend { name, store, .. } in backends().await {
        assert_eq!(store.blob("h1").await.unwrap(), None, "{name}");
        store
            .put_blob("h1", Arc::from(&b"\0first"[..]))
            .await
            .unwrap();
        store
            .put_blob("h1", Arc::from(&b"second"[..]))
            .await
            .unwrap();
        store
            .put_blob("h2", Arc::from(&[7u8; 3000][..]))
            .await
            .unwrap();
        assert_eq!(
            store.blob("h1").await.unwrap().unwrap(),
            b"\0first",
            "{name}"
        );
        assert_eq!(
            store.blob("h2").await.unwrap().unwrap(),
            [7u8; 3000],
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_journal_keeps_one_entry_per_path_in_first_written_order() {
    for Backend { name, store, .. } in backends().await {
        store.accept(vec![new_run("r", "f", 1)]).await.unwrap();
        store.journal("r", entry("a", None)).await.unwrap();
        store.journal("r", entry("b", Some("2"))).await.unwrap();
        let mut retried = entry("a", Some(r#""again""#));
        retried.record.attempts.truncate(1);
        store.journal("r", retried.clone()).await.unwrap();
        let (_, steps) = store.replay_source("r").await.unwrap().unwrap();
        let paths: Vec<_> = steps.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["a", "b"], "{name}");
        assert_eq!(json(&steps[0]), json(&retried), "{name}: the newer entry");
        // Another run's journal is its own.
        store.accept(vec![new_run("q", "f", 2)]).await.unwrap();
        store.journal("q", entry("a", Some("1"))).await.unwrap();
        let (_, steps) = store.replay_source("r").await.unwrap().unwrap();
        assert_eq!(steps.len(), 2, "{name}");
    }
}

#[tokio::test]
async fn writes_about_unknown_runs_change_nothing() {
    for Backend { name, store, .. } in backends().await {
        store.started("ghost", at(5)).await.unwrap();
        store.journal("ghost", entry("a", Some("1"))).await.unwrap();
        store
            .finish(Arc::new(record("ghost", "f", "1")))
            .await
            .unwrap();
        assert!(store.run("ghost").await.unwrap().is_none(), "{name}");
        assert!(
            store.replay_source("ghost").await.unwrap().is_none(),
            "{name}"
        );
        assert!(store.unfinished().await.unwrap().is_empty(), "{name}");
        let page = store.list(query(None, None, 10, None)).await.unwrap();
        assert!(page.runs.is_empty() && page.next.is_none(), "{name}");
        assert_eq!(store.usage().0, 0, "{name}");
    }
}

#[tokio::test]
async fn an_idempotency_key_gives_one_run_per_flow() {
    for Backend { name, store, .. } in backends().await {
        let first = store
            .accept(vec![keyed("a", "orders", "k1")])
            .await
            .unwrap();
        assert_eq!(first, [Accepted::New], "{name}");
        let again = store
            .accept(vec![keyed("b", "orders", "k1")])
            .await
            .unwrap();
        let existing = Accepted::Existing { run_id: "a".into() };
        assert_eq!(again, std::slice::from_ref(&existing), "{name}");
        assert!(store.run("b").await.unwrap().is_none(), "{name}: not added");
        // The same key names another run in another flow.
        let other = store
            .accept(vec![keyed("c", "refunds", "k1")])
            .await
            .unwrap();
        assert_eq!(other, [Accepted::New], "{name}");
        // Within one batch, the second use finds the first.
        let batch = store
            .accept(vec![
                keyed("d", "orders", "k2"),
                keyed("e", "orders", "k2"),
                keyed("f", "orders", "k1"),
                new_run("g", "orders", 7),
            ])
            .await
            .unwrap();
        let d = Accepted::Existing { run_id: "d".into() };
        assert_eq!(batch, [Accepted::New, d, existing, Accepted::New], "{name}");
        // A finished run still holds its key.
        store
            .finish(Arc::new(record("a", "orders", "1")))
            .await
            .unwrap();
        let after = store
            .accept(vec![keyed("h", "orders", "k1")])
            .await
            .unwrap();
        assert_eq!(after, [Accepted::Existing { run_id: "a".into() }], "{name}");
        let all = store.list(query(None, None, 100, None)).await.unwrap();
        let ids: BTreeSet<_> = all.runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, BTreeSet::from(["a", "c", "d", "g"]), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submissions_with_one_key_start_one_run() {
    for Backend { name, store, .. } in backends().await {
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let answer = store
                        .accept(vec![keyed(&format!("run{i}"), "orders", "same")])
                        .await
                        .unwrap();
                    (format!("run{i}"), answer.into_iter().next().unwrap())
                })
            })
            .collect();
        let mut new = Vec::new();
        let mut pointed = BTreeSet::new();
        for task in tasks {
            match task.await.unwrap() {
                (id, Accepted::New) => new.push(id),
                (_, Accepted::Existing { run_id }) => {
                    pointed.insert(run_id);
                }
            }
        }
        assert_eq!(new.len(), 1, "{name}: exactly one new run, got {new:?}");
        assert!(
            pointed.iter().all(|id| *id == new[0]),
            "{name}: {pointed:?}"
        );
        let all = store.list(query(None, None, 100, None)).await.unwrap();
        assert_eq!(all.runs.len(), 1, "{name}");
    }
}

fn query(
    flow: Option<&str>,
    status: Option<RunStatus>,
    limit: usize,
    cursor: Option<Cursor>,
) -> ListQuery {
    ListQuery {
        flow: flow.map(str::to_string),
        status,
        limit,
        cursor,
    }
}

/// Every page of `q`, `limit` runs a page: the run ids in order.
async fn all_pages(
    store: &Arc<dyn Store>,
    flow: Option<&str>,
    status: Option<RunStatus>,
    limit: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    for _ in 0..100 {
        let RunPage { runs, next } = store
            .list(query(flow, status, limit, cursor))
            .await
            .unwrap();
        assert!(runs.len() <= limit, "a page holds at most its limit");
        assert!(
            runs.iter().all(|r| r.record.is_none()),
            "listings carry no records"
        );
        assert!(
            next.is_none() || runs.len() == limit,
            "a short page is the last"
        );
        ids.extend(runs.iter().map(|r| r.run_id.clone()));
        match next {
            None => return ids,
            Some(next) => cursor = Some(next),
        }
    }
    panic!("the listing never ended: {ids:?}");
}

#[tokio::test]
async fn listings_go_newest_first_across_pages_with_filters() {
    for Backend { name, store, .. } in backends().await {
        // 30 runs; runs accepted in the same millisecond are ordered by id.
        let runs: Vec<_> = (0..30u64)
            .map(|i| {
                let flow = if i.is_multiple_of(3) {
                    "refunds"
                } else {
                    "orders"
                };
                new_run(&format!("r{i:02}"), flow, 1_000 + i / 2)
            })
            .collect();
        store.accept(runs.clone()).await.unwrap();
        for i in (0..30).step_by(4) {
            store.started(&format!("r{i:02}"), at(5_000)).await.unwrap();
        }
        for i in (0..30).step_by(5) {
            let mut r = record(&format!("r{i:02}"), &runs[i].flow, "1");
            if i.is_multiple_of(10) {
                r.status = RunStatus::Failed;
                r.output = None;
            }
            store.finish(Arc::new(r)).await.unwrap();
        }
        let status_of = |i: usize| match i {
            _ if i.is_multiple_of(10) => RunStatus::Failed,
            _ if i.is_multiple_of(5) => RunStatus::Succeeded,
            _ if i.is_multiple_of(4) => RunStatus::Running,
            _ => RunStatus::Queued,
        };
        let expect = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
            let mut ids: Vec<_> = (0..30).filter(|i| keep(*i)).collect();
            ids.sort_by_key(|i| std::cmp::Reverse((1_000 + i / 2, format!("r{i:02}"))));
            ids.into_iter().map(|i| format!("r{i:02}")).collect()
        };
        for limit in [1, 7, 10, 30, 1000] {
            assert_eq!(
                all_pages(&store, None, None, limit).await,
                expect(&|_| true),
                "{name} {limit}"
            );
        }
        let refunds = expect(&|i| i.is_multiple_of(3));
        assert_eq!(
            all_pages(&store, Some("refunds"), None, 4).await,
            refunds,
            "{name}"
        );
        for status in [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
        ] {
            let want = expect(&|i| status_of(i) == status);
            assert_eq!(
                all_pages(&store, None, Some(status), 3).await,
                want,
                "{name} {status}"
            );
        }
        let both = expect(&|i| i.is_multiple_of(3) && status_of(i) == RunStatus::Queued);
        assert!(!both.is_empty());
        let got = all_pages(&store, Some("refunds"), Some(RunStatus::Queued), 2).await;
        assert_eq!(got, both, "{name}");
        assert!(
            all_pages(&store, Some("nope"), None, 5).await.is_empty(),
            "{name}"
        );
        assert!(
            all_pages(&store, None, Some(RunStatus::Cancelled), 5)
                .await
                .is_empty(),
            "{name}"
        );
        // A listed run carries its status and time.
        let page = store.list(query(None, None, 1, None)).await.unwrap();
        let top = &page.runs[0];
        assert_eq!(
            (top.run_id.as_str(), top.flow.as_str()),
            ("r29", "orders"),
            "{name}"
        );
        assert_eq!(
            (top.status, top.accepted_at),
            (RunStatus::Queued, at(1_014)),
            "{name}"
        );
        // A limit of 0 is read as 1.
        assert_eq!(
            store
                .list(query(None, None, 0, None))
                .await
                .unwrap()
                .runs
                .len(),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_run_left_unfinished_is_found_with_its_journal() {
    for Backend { name, store, .. } in backends().await {
        let runs = (0..5)
            .map(|i| new_run(&format!("u{i}"), "f", 100 - i))
            .collect();
        store.accept(runs).await.unwrap();
        store.started("u1", at(200)).await.unwrap();
        store.journal("u1", entry("one", Some("1"))).await.unwrap();
        store.journal("u3", entry("one", Some("3"))).await.unwrap();
        store
            .finish(Arc::new(record("u3", "f", "3")))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let unfinished = store.unfinished().await.unwrap();
        let ids: Vec<_> = unfinished.iter().map(|u| u.run.run_id.as_str()).collect();
        assert_eq!(
            ids,
            ["u4", "u2", "u1", "u0"],
            "{name}: oldest accepted first"
        );
        let u1 = &unfinished[2];
        assert_eq!(u1.started_at, Some(at(200)), "{name}");
        assert_eq!(
            json(&u1.steps),
            json(&vec![entry("one", Some("1"))]),
            "{name}"
        );
        assert!(unfinished[0].steps.is_empty(), "{name}");
    }
}
