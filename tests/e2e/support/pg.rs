//! PostgreSQL for the tests: one throwaway server shared by the tests that
//! run at the same time (stopped when the last of them ends), a fresh
//! database per test, and SQL by URL for a child test process that was given
//! only a URL.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

// Shared with the store's unit tests; these tests use only part of it.
#[allow(dead_code)]
#[path = "../../../host/src/store/tests/throwaway_pg.rs"]
mod throwaway_pg;

pub(crate) use throwaway_pg::ThrowawayPg;

/// The throwaway PostgreSQL of the tests running now: started by the first
/// that asks, stopped (and its files removed) when the last holder drops it,
/// so no server outlives the test binary.
pub fn shared() -> Arc<ThrowawayPg> {
    static SHARED: Mutex<Weak<ThrowawayPg>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pg) = slot.upgrade() {
        return pg;
    }
    let pg = Arc::new(ThrowawayPg::start());
    *slot = Arc::downgrade(&pg);
    pg
}

/// A database name no other test of this run uses.
fn fresh_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "flowhost_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// A fresh database on a PostgreSQL this test holds.
pub struct Db {
    pg: Arc<ThrowawayPg>,
    name: String,
    url: String,
}

impl Db {
    /// A fresh database on the shared server.
    pub fn fresh() -> Db {
        Db::fresh_on(shared())
    }

    /// A fresh database on `pg`.
    pub fn fresh_on(pg: Arc<ThrowawayPg>) -> Db {
        let name = fresh_name();
        let url = pg.create_db(&name);
        Db { pg, name, url }
    }

    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Cuts every connection to this database and refuses new ones, as if
    /// it had gone away; [`Db::come_back`] undoes it.
    pub fn go_away(&self) {
        let name = &self.name;
        self.pg.psql(&format!(
            "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false; \
             SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{name}'"
        ));
    }

    /// Accepts connections to this database again.
    pub fn come_back(&self) {
        self.pg.psql(&format!(
            "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS true",
            self.name
        ));
    }
}

/// A fresh database on the server whose `postgres` database `base` names
/// (`postgres://postgres@127.0.0.1:PORT/postgres`): for a child test process
/// that was handed only that URL. Returns the new database's URL.
pub fn fresh_db_at(base: &str) -> String {
    let name = fresh_name();
    let (server, _) = base
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("not a database URL: {base}"));
    let out = Command::new(psql())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", base, "-c"])
        .arg(format!("CREATE DATABASE \"{name}\""))
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "creating database {name} on {base} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{server}/{name}")
}

/// `psql` of the newest installed PostgreSQL, else the one on PATH.
fn psql() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let psql = e.path().join("bin/psql");
            psql.exists().then_some((n, psql))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map_or_else(|| PathBuf::from("psql"), |(_, p)| p)
}
