//! Durable runs: a run journals its plugin steps' results in a store, and a
//! run resumed with what an earlier life journaled does not call those steps
//! again. The `append` plugin writes a line per call to a granted file, so
//! the file shows which steps really ran.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use flowhost::executor::{RunJournal, StepStatus};
use flowhost::store::memory::MemoryStore;
use flowhost::store::{
    Accepted, ListQuery, NewRun, Retention, RunPage, StepEntry, Store, StoreError, StoredRun,
    Unfinished,
};
use flowhost::{ErrorKind, PluginSet, RunOptions, RunRecord, RunStatus};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::output;
use crate::support::{executor, parse, plugin_set, poll_until, step};

/// An `append` step `id` writing to `log.txt` in `dir`, indented by
/// `indent` spaces, with `extra` lines (`input: ...`) under it.
fn append_step(indent: usize, id: &str, dir: &Path, extra: &[&str]) -> String {
    let pad = " ".repeat(indent);
    let mut yaml = format!(
        "{pad}- id: {id}\n{pad}  plugin: append\n{pad}  config: {{file: /out/log.txt}}\n\
         {pad}  allow: {{dirs: [{{host: \"{}\", guest: /out, mode: rw}}]}}\n",
        dir.display()
    );
    for line in extra {
        yaml.push_str(&format!("{pad}  {line}\n"));
    }
    yaml
}

/// The lines of `log.txt` in `dir` (none when it does not exist).
fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A memory store that accepted run `run_id` of `flow` and marked it started
/// at `started_at`, as a server does before running it.
async fn store_with(run_id: &str, flow: &str, started_at: SystemTime) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new(Default::default()));
    let accepted_ms = started_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let run: NewRun = serde_json::from_value(json!({
        "run_id": run_id, "flow": flow, "flow_version": "", "plugins": {},
        "input": {}, "accepted_at": accepted_ms, "idempotency_key": null, "derived_from": null,
    }))
    .unwrap();
    let answers = store.accept(vec![run]).await.unwrap();
    assert_eq!(answers, [Accepted::New]);
    store.started(run_id, started_at).await.unwrap();
    store
}

/// The one unfinished run of `store`.
async fn unfinished(store: &MemoryStore) -> Unfinished {
    let mut runs = store.unfinished().await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.pop().unwrap()
}

/// Options that journal run `run_id` in `store`, resuming from `entries`.
fn journaled(
    store: Arc<dyn Store>,
    run_id: &str,
    entries: Vec<StepEntry>,
    started_at: Option<SystemTime>,
) -> RunOptions {
    RunOptions {
        run_id: Some(run_id.to_string()),
        journal: Some(Arc::new(RunJournal::new(store, run_id, entries))),
        started_at,
        ..RunOptions::default()
    }
}

/// Runs `flow` with `options`, cancelling it once `crashed` holds: the
/// process "crashes" mid-run.
async fn run_until<F, Fut>(
    flow: &flowhost::flow::Flow,
    plugins: &PluginSet,
    mut options: RunOptions,
    what: &str,
    crashed: F,
) -> RunRecord
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let cancel = CancellationToken::new();
    options.cancel = Some(cancel.clone());
    let what = what.to_string();
    let trigger = tokio::spawn(async move {
        poll_until(Duration::from_secs(20), &what, crashed).await;
        cancel.cancel();
    });
    let record = executor().run(flow, plugins, json!({}), options).await;
    trigger.await.unwrap();
    record
}

#[tokio::test]
async fn a_resumed_run_does_not_call_the_steps_it_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "flow: durable\nsteps:\n{}{}  - id: nap\n    plugin: sleep\n    config: {{ms: 1000}}\n{}",
        append_step(2, "one", dir.path(), &[]),
        append_step(2, "two", dir.path(), &[]),
        append_step(2, "three", dir.path(), &[]),
    );
    let flow = parse(&yaml);
    let plugins = plugin_set(&flow).await;
    let started_at = SystemTime::now();
    let store = store_with("r-a", "durable", started_at).await;

    // First life: stopped while `nap` runs, after `one` and `two` finished.
    let options = journaled(store.clone(), "r-a", Vec::new(), Some(started_at));
    let watched = store.clone();
    let first = run_until(&flow, &plugins, options, "two journal entries", move || {
        let store = watched.clone();
        async move { store.unfinished().await.unwrap()[0].steps.len() == 2 }
    })
    .await;
    assert_eq!(first.status, RunStatus::Cancelled, "{:?}", first.error);

    // Second life, from what the store kept.
    let left = unfinished(&store).await;
    let paths: Vec<&str> = left.steps.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["one", "two"]);
    let options = journaled(store.clone(), "r-a", left.steps, left.started_at);
    let record = executor().run(&flow, &plugins, json!({}), options).await;

    output(&record);
    assert_eq!(lines(dir.path()), ["r-a one", "r-a two", "r-a three"]);
    let steps: Vec<(&str, StepStatus)> = record
        .steps
        .iter()
        .map(|s| (s.path.as_str(), s.status))
        .collect();
    let ok = StepStatus::Succeeded;
    assert_eq!(
        steps,
        [("one", ok), ("two", ok), ("nap", ok), ("three", ok)]
    );
    // The replayed steps keep the record of the life that ran them.
    assert_eq!(step(&record, "one").start_ms, step(&first, "one").start_ms);
    assert_eq!(step(&record, "two").attempts.len(), 1);
    assert_eq!(
        record.started_at,
        humantime::format_rfc3339_millis(started_at).to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_for_each_runs_only_the_items_not_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "flow: items\nsteps:\n  - id: each\n    for_each: ${{input.items}}\n    \
         max_concurrency: 4\n    steps:\n{}",
        append_step(6, "add", dir.path(), &["input: {line: \"${item}\"}"]),
    );
    let flow = parse(&yaml);
    let plugins = plugin_set(&flow).await;
    let input = json!({"items": (0..20).collect::<Vec<u32>>()});
    let store = store_with("r-b", "items", SystemTime::now()).await;

    // A first life that ran every item; the second gets half of its journal.
    let options = journaled(store.clone(), "r-b", Vec::new(), None);
    let first = executor()
        .run(&flow, &plugins, input.clone(), options)
        .await;
    output(&first);
    let entries = store.unfinished().await.unwrap().pop().unwrap().steps;
    assert_eq!(entries.len(), 20);
    let kept: Vec<StepEntry> = entries
        .into_iter()
        .filter(|e| {
            let i: usize = e.path["each[".len()..e.path.find(']').unwrap()]
                .parse()
                .unwrap();
            i < 10
        })
        .collect();
    assert_eq!(kept.len(), 10);

    let options = journaled(store.clone(), "r-b", kept, None);
    let record = executor().run(&flow, &plugins, input, options).await;

    let out = output(&record);
    let expected: Vec<_> = (0..20)
        .map(|i| json!({"appended": i.to_string()}))
        .collect();
    assert_eq!(out, json!(expected));
    let all = lines(dir.path());
    assert_eq!(all.len(), 30, "10 calls on resume: {all:?}");
    let mut resumed: Vec<u32> = all[20..].iter().map(|l| l.parse().unwrap()).collect();
    resumed.sort_unstable();
    assert_eq!(resumed, (10..20).collect::<Vec<_>>());
    let items = record.steps.iter().filter(|s| s.path.ends_with(".add"));
    assert_eq!(items.count(), 20);
}

#[tokio::test]
async fn a_retry_waiting_out_its_backoff_resumes_at_its_time() {
    let flow = parse(
        r#"
flow: backoff
steps:
  - id: flaky
    plugin: flaky
    config: {fail_until: 2}
    retry: {max_attempts: 3, initial_interval: 500ms, jitter: none}
"#,
    );
    let plugins = plugin_set(&flow).await;
    let started_at = SystemTime::now();
    let store = store_with("r-c", "backoff", started_at).await;

    // Stopped while it waits for attempt 2.
    let options = journaled(store.clone(), "r-c", Vec::new(), Some(started_at));
    let watched = store.clone();
    let first = run_until(&flow, &plugins, options, "a retry entry", move || {
        let store = watched.clone();
        async move {
            let runs = store.unfinished().await.unwrap();
            runs.iter()
                .flat_map(|r| &r.steps)
                .any(|e| e.retry_at.is_some())
        }
    })
    .await;
    assert_eq!(first.status, RunStatus::Cancelled, "{:?}", first.error);

    let left = unfinished(&store).await;
    let retry_at = left.steps[0].retry_at.unwrap();
    let resumed_at = SystemTime::now();
    let due = retry_at.duration_since(resumed_at).unwrap_or_default();
    let clock = Instant::now();
    let options = journaled(store.clone(), "r-c", left.steps, left.started_at);
    let record = executor().run(&flow, &plugins, json!({}), options).await;
    let took = clock.elapsed();

    assert_eq!(output(&record)["attempt"], 2);
    // Not at once, and not much later either.
    assert!(
        took + Duration::from_millis(5) >= due,
        "took {took:?}, due in {due:?}"
    );
    assert!(took < due + Duration::from_secs(5), "took {took:?}");
    let attempts = &step(&record, "flaky").attempts;
    let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2]);
    // Attempt 1 is the first life's, not a new one.
    let earlier = &step(&first, "flaky").attempts[0];
    assert_eq!(attempts[0].start_ms, earlier.start_ms);
    let first_error = attempts[0].error.as_ref().expect("attempt 1 failed");
    assert_eq!(first_error.kind, ErrorKind::Transient);
    // Times count from the run's first start: attempt 2 began at retry_at.
    let second = started_at + Duration::from_secs_f64(attempts[1].start_ms / 1e3);
    assert!(
        second + Duration::from_millis(2) >= retry_at,
        "attempt 2 at {second:?}, due at {retry_at:?}"
    );
}

#[tokio::test]
async fn a_run_resumed_past_its_deadline_fails_with_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "flow: late\ntimeout: 1s\nsteps:\n{}",
        append_step(2, "one", dir.path(), &[])
    );
    let flow = parse(&yaml);
    let plugins = plugin_set(&flow).await;
    let started_at = SystemTime::now() - Duration::from_secs(10);
    let store = store_with("r-d", "late", started_at).await;

    let options = journaled(store.clone(), "r-d", Vec::new(), Some(started_at));
    let record = executor().run(&flow, &plugins, json!({}), options).await;

    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::Deadline);
    assert_eq!(error.step, "one");
    assert!(
        error.message.contains("ran out while the run was stopped"),
        "{}",
        error.message
    );
    assert!(lines(dir.path()).is_empty(), "the step did not run");
    assert!(record.duration_ms >= 10_000.0, "{}", record.duration_ms);
}

/// A store whose journal fails; everything else is a memory store's.
struct BrokenJournal(MemoryStore);

#[async_trait::async_trait]
impl Store for BrokenJournal {
    fn describe(&self) -> String {
        "broken".into()
    }
    fn kv(&self) -> std::sync::Arc<dyn flowhost::kv::KvStore> {
        self.0.kv()
    }
    fn durable(&self) -> bool {
        true
    }
    fn accept(
        &self,
        runs: Vec<NewRun>,
    ) -> futures::future::BoxFuture<'static, Result<Vec<Accepted>, StoreError>> {
        self.0.accept(runs)
    }
    async fn started(&self, run_id: &str, at: SystemTime) -> Result<(), StoreError> {
        self.0.started(run_id, at).await
    }
    fn journal(
        &self,
        _run_id: &str,
        _entry: StepEntry,
    ) -> futures::future::BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(std::future::ready(Err(StoreError::Backend(
            "disk full".into(),
        ))))
    }
    async fn finish(&self, record: Arc<RunRecord>) -> Result<(), StoreError> {
        self.0.finish(record).await
    }
    async fn unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        self.0.unfinished().await
    }
    async fn run(&self, run_id: &str) -> Result<Option<StoredRun>, StoreError> {
        self.0.run(run_id).await
    }
    async fn replay_source(
        &self,
        run_id: &str,
    ) -> Result<Option<(NewRun, Vec<StepEntry>)>, StoreError> {
        self.0.replay_source(run_id).await
    }
    async fn list(&self, query: ListQuery) -> Result<RunPage, StoreError> {
        self.0.list(query).await
    }
    async fn prune(&self, retention: Retention) -> Result<usize, StoreError> {
        self.0.prune(retention).await
    }
    async fn put_blob(&self, hash: &str, bytes: Arc<[u8]>) -> Result<(), StoreError> {
        self.0.put_blob(hash, bytes).await
    }
    async fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.blob(hash).await
    }
    fn usage(&self) -> (usize, u64) {
        self.0.usage()
    }
}

#[tokio::test]
async fn a_journal_that_fails_is_reported_by_flush_naming_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "flow: broken\nsteps:\n{}{}",
        append_step(2, "one", dir.path(), &["retry: {max_attempts: 3}"]),
        append_step(2, "two", dir.path(), &[]),
    );
    let flow = parse(&yaml);
    let plugins = plugin_set(&flow).await;
    let store = Arc::new(BrokenJournal(MemoryStore::new(Default::default())));

    let options = journaled(store, "r-e", Vec::new(), None);
    let journal = options.journal.clone().unwrap();
    let record = executor().run(&flow, &plugins, json!({}), options).await;

    // Writes are pipelined: the run does not wait for them, and a store
    // failure is not retried. Whoever stores the record flushes the journal
    // and learns of it, with the step it could not record.
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(lines(dir.path()), ["r-e one", "r-e two"]);
    assert_eq!(step(&record, "one").attempts.len(), 1);
    let error = journal.flush().await.unwrap_err();
    assert_eq!((error.step.as_str(), error.kind), ("one", ErrorKind::Host));
    assert!(error.message.contains("disk full"), "{}", error.message);
}

#[tokio::test]
async fn continue_on_error_applies_to_a_replayed_failure() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "flow: goes-on\nsteps:\n  - id: bad\n    plugin: fail\n    \
         config: {{kind: permanent, message: nope}}\n    continue_on_error: true\n{}",
        append_step(2, "after", dir.path(), &[]),
    );
    let flow = parse(&yaml);
    let plugins = plugin_set(&flow).await;
    let store = store_with("r-f", "goes-on", SystemTime::now()).await;

    let options = journaled(store.clone(), "r-f", Vec::new(), None);
    let first = executor().run(&flow, &plugins, json!({}), options).await;
    output(&first);
    let entries = unfinished(&store).await.steps;
    let bad: Vec<StepEntry> = entries.into_iter().filter(|e| e.path == "bad").collect();
    assert_eq!(bad.len(), 1);

    let options = journaled(store.clone(), "r-f", bad, None);
    let record = executor().run(&flow, &plugins, json!({}), options).await;

    output(&record);
    let (then, now) = (step(&first, "bad"), step(&record, "bad"));
    assert_eq!(now.status, StepStatus::Continued);
    let error = now.error.as_ref().unwrap();
    assert_eq!(
        (error.kind, error.message.as_str()),
        (ErrorKind::Permanent, "nope")
    );
    // Not called again: its attempt is the first life's.
    assert_eq!(now.attempts.len(), 1);
    assert_eq!(now.attempts[0].start_ms, then.attempts[0].start_ms);
    assert_eq!(lines(dir.path()), ["r-f after", "r-f after"]);
}

#[tokio::test]
async fn a_rerun_from_a_step_with_a_new_input_runs_it_on_that_input() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "flow: rerun\nsteps:\n{}{}{}",
        append_step(2, "one", dir.path(), &[]),
        append_step(2, "two", dir.path(), &[]),
        append_step(2, "three", dir.path(), &[]),
    );
    let flow = parse(&yaml);
    let plugins = plugin_set(&flow).await;
    let store = store_with("r-g", "rerun", SystemTime::now()).await;
    let options = journaled(store.clone(), "r-g", Vec::new(), None);
    output(&executor().run(&flow, &plugins, json!({}), options).await);
    let entries = unfinished(&store).await.steps;

    // Rerun from `two`: `one` is reused, `two` gets a new input.
    let before: Vec<StepEntry> = entries.into_iter().filter(|e| e.path == "one").collect();
    let input = serde_json::value::RawValue::from_string(r#"{"line": "new"}"#.into()).unwrap();
    let journal = RunJournal::new(store.clone(), "r-g", before).with_input_at("two", input);
    let options = RunOptions {
        journal: Some(Arc::new(journal)),
        ..RunOptions::default()
    };
    let record = executor().run(&flow, &plugins, json!({}), options).await;

    assert_eq!(record.run_id, "r-g");
    assert_eq!(output(&record), json!({"appended": "r-g three"}));
    assert_eq!(
        lines(dir.path()),
        ["r-g one", "r-g two", "r-g three", "new", "r-g three"]
    );
}

/// An entry names its step's input when that is the run's input or the
/// output journaled last, so that a chain writes each document once; read
/// back, every entry has its input whole.
#[tokio::test]
async fn entries_name_the_inputs_they_would_repeat_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let store = Arc::new(
        flowhost::store::sqlite::SqliteStore::open(&db)
            .await
            .unwrap(),
    );
    let run: NewRun = serde_json::from_value(json!({
        "run_id": "r-n", "flow": "named", "flow_version": "", "plugins": {},
        "input": {"name": "ada"}, "accepted_at": 0, "idempotency_key": null, "derived_from": null,
    }))
    .unwrap();
    assert_eq!(store.accept(vec![run]).await.unwrap(), [Accepted::New]);
    let flow = parse(
        "flow: named\nsteps:\n  - {id: one, plugin: shout}\n  - {id: two, plugin: echo}\n  \
         - {id: three, plugin: echo, input: {n: 1}}\n",
    );
    let plugins = plugin_set(&flow).await;
    let journal = Arc::new(RunJournal::new(store.clone(), "r-n", Vec::new()));
    let options = RunOptions {
        journal: Some(journal.clone()),
        ..RunOptions::default()
    };
    let record = executor()
        .run(&flow, &plugins, json!({"name": "ada"}), options)
        .await;
    assert_eq!(output(&record), json!({"n": 1}));
    journal.flush().await.unwrap();

    // As written: `one` names the run's input, `two` the output of `one`;
    // `three`'s input is new, so it is copied.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT path, entry FROM steps WHERE run_id = 'r-n' ORDER BY id")
        .unwrap();
    let written: Vec<(String, serde_json::Value)> = stmt
        .query_map([], |r| {
            let entry: String = r.get(1)?;
            Ok((r.get(0)?, serde_json::from_str(&entry).unwrap()))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let kept: Vec<_> = written
        .iter()
        .map(|(path, e)| (path.as_str(), e.get("input_from"), e.get("input")))
        .collect();
    assert_eq!(
        kept,
        [
            ("one", Some(&json!("$input")), None),
            ("two", Some(&json!("one")), None),
            ("three", None, Some(&json!({"n": 1}))),
        ]
    );

    // As read: every input whole, and nothing left named.
    let (_, entries) = store.replay_source("r-n").await.unwrap().unwrap();
    let inputs: Vec<_> = entries
        .iter()
        .map(|e| {
            assert_eq!(e.input_from, None, "{}", e.path);
            serde_json::from_str::<serde_json::Value>(e.input.as_ref().unwrap().get()).unwrap()
        })
        .collect();
    assert_eq!(
        inputs,
        [
            json!({"name": "ada"}),
            json!({"name": "ADA"}),
            json!({"n": 1})
        ]
    );
}
