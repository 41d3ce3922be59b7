//! Tests of the stores: one contract every backend keeps ([`contract`]),
//! what only the SQLite store does ([`sqlite`], [`bad_files`]), and what
//! only the shared PostgreSQL store does ([`postgres`]).

mod bad_files;
mod contract;
mod kv;
mod postgres;
mod postgres_tls;
mod sqlite;
// Shared with the e2e tests, which include it by path: not all of it is
// used here.
#[allow(dead_code)]
pub(crate) mod throwaway_pg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::memory::{Bounds, MemoryStore};
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{DerivedFrom, NewRun, OpenOptions, StepEntry, Store};
use crate::error::ErrorKind;
use crate::executor::{Attempt, ErrorRecord, RunRecord, RunStatus, StepRecord, StepStatus};
use throwaway_pg::ThrowawayPg;

/// A store under test, with the folder that holds its file or the server
/// that holds its database (dropped after the store).
pub(super) struct Backend {
    pub(super) name: &'static str,
    pub(super) store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<Arc<ThrowawayPg>>,
}

/// The throwaway PostgreSQL of the tests running now: started by the first
/// that needs it, stopped when the last lets it go. (A static holding it
/// would never be dropped, and would leave the server running.)
static SHARED_PG: Mutex<Weak<ThrowawayPg>> = Mutex::new(Weak::new());

/// The shared throwaway PostgreSQL and a fresh database on it (its URL).
pub(super) fn fresh_pg_db() -> (Arc<ThrowawayPg>, String) {
    static DATABASES: AtomicUsize = AtomicUsize::new(0);
    let pg = {
        let mut shared = SHARED_PG.lock().unwrap_or_else(|e| e.into_inner());
        match shared.upgrade() {
            Some(pg) => pg,
            None => {
                let pg = Arc::new(ThrowawayPg::start());
                *shared = Arc::downgrade(&pg);
                pg
            }
        }
    };
    let name = format!("t{}", DATABASES.fetch_add(1, Ordering::Relaxed));
    let url = pg.create_db(&name);
    (pg, url)
}

/// A PostgreSQL store on the database at `url`.
pub(super) async fn pg_store(url: &str, options: &OpenOptions) -> PostgresStore {
    PostgresStore::open(&url.parse().unwrap(), options)
        .await
        .unwrap()
}

/// Each backend, empty.
pub(super) async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("runs.db"))
        .await
        .unwrap();
    let (pg, url) = fresh_pg_db();
    let postgres = pg_store(&url, &OpenOptions::default()).await;
    vec![
        Backend {
            name: "memory",
            store: Arc::new(MemoryStore::new(Bounds::default())),
            _dir: None,
            _pg: None,
        },
        Backend {
            name: "sqlite",
            store: Arc::new(sqlite),
            _dir: Some(dir),
            _pg: None,
        },
        Backend {
            name: "postgres",
            store: Arc::new(postgres),
            _dir: None,
            _pg: Some(pg),
        },
    ]
}

pub(super) fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).unwrap()
}

/// A time `ms` milliseconds after the epoch.
pub(super) fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// A run of `flow` accepted at `ms`.
pub(super) fn new_run(run_id: &str, flow: &str, ms: u64) -> NewRun {
    NewRun {
        run_id: run_id.into(),
        flow: flow.into(),
        flow_version: format!("flow-{flow}-v1"),
        plugins: BTreeMap::from([
            ("fetch".to_string(), "hash-fetch-1".to_string()),
            ("price".to_string(), "hash-price-2".to_string()),
        ]),
        input: raw(&format!(r#"{{"run":"{run_id}","n":[1,2.5,"é"]}}"#)),
        accepted_at: at(ms),
        idempotency_key: None,
        derived_from: None,
        hop: 3,
    }
}

/// A run with an idempotency key.
pub(super) fn keyed(run_id: &str, flow: &str, key: &str) -> NewRun {
    NewRun {
        idempotency_key: Some(key.into()),
        ..new_run(run_id, flow, 1000)
    }
}

/// A rerun of `from`.
pub(super) fn derived(run_id: &str, from: &str) -> NewRun {
    NewRun {
        derived_from: Some(DerivedFrom {
            run_id: from.into(),
            step: Some("enrich.user".into()),
        }),
        ..new_run(run_id, "orders", 1_800_000_000_000)
    }
}

/// A plugin step's record with one failed and one good attempt.
pub(super) fn step_record(path: &str) -> StepRecord {
    let mut record = StepRecord::empty();
    record.path = path.into();
    record.plugin = Some("price".into());
    record.version = Some("hash-price-2".into());
    record.status = StepStatus::Succeeded;
    record.start_ms = 1.5;
    record.duration_ms = 20.25;
    record.attempts = vec![
        Attempt {
            attempt: 1,
            start_ms: 1.5,
            duration_ms: 3.0,
            fuel: Some(12345),
            error: Some(ErrorRecord {
                kind: ErrorKind::Transient,
                message: "upstream said 503".into(),
            }),
            ..Attempt::default()
        },
        Attempt {
            attempt: 2,
            start_ms: 10.0,
            duration_ms: 11.75,
            fuel: Some(999),
            error: None,
            ..Attempt::default()
        },
    ];
    record
}

/// A journal entry at `path` with `output` (JSON text).
pub(super) fn entry(path: &str, output: Option<&str>) -> StepEntry {
    StepEntry {
        path: path.into(),
        record: step_record(path),
        output: output.map(raw),
        input: None,
        input_from: None,
        retry_at: None,
        emitted: Vec::new(),
    }
}

/// A finished record of `run_id` with `output` (JSON text).
pub(super) fn record(run_id: &str, flow: &str, output: &str) -> RunRecord {
    RunRecord {
        run_id: run_id.into(),
        flow: flow.into(),
        status: RunStatus::Succeeded,
        started_at: "2026-11-30T06:00:00.000Z".into(),
        duration_ms: 42.5,
        output: Some(raw(output)),
        output_trimmed: None,
        error: None,
        steps: vec![step_record("fetch"), step_record("lines[3].price")],
        worker: None,
    }
}

/// A value as JSON, to compare types that have no `PartialEq`.
pub(super) fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

/// The SHA-256 of a file's bytes.
pub(super) fn hash_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A store file at `dir/runs.db` holding a few runs, closed.
pub(super) async fn store_file(dir: &Path) -> PathBuf {
    let path = dir.join("runs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let runs = (0..20)
        .map(|i| new_run(&format!("r{i}"), "orders", 1000 + i))
        .collect();
    store.accept(runs).await.unwrap();
    for i in 0..10 {
        let id = format!("r{i}");
        store
            .journal(&id, entry("fetch", Some("[1]")))
            .await
            .unwrap();
        store
            .finish(Arc::new(record(&id, "orders", r#"{"ok":true}"#)))
            .await
            .unwrap();
    }
    drop(store);
    path
}

#[test]
fn a_throwaway_postgres_starts_answers_and_stops() {
    let pg = throwaway_pg::ThrowawayPg::start();
    let url = pg.create_db("t1");
    assert!(url.ends_with("/t1"), "{url}");
    assert_eq!(pg.psql_in("t1", "SELECT 1 + 1"), "2");
    let dir = pg.dir().to_path_buf();
    drop(pg);
    assert!(!dir.exists(), "its files are removed");
}
