//! The server's settings (`flowhost.toml`), every one with a documented default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Limits;
use crate::duration::too_long;
use crate::replay::ReplayGate;
use crate::sql::DatabaseConfig;
use crate::store::StoreUrl;

use super::token::TokenHash;

/// The largest `max_connections`.
const MAX_CONNECTIONS: usize = 1 << 20;

/// Settings of `flowhost serve`. Unknown keys are errors.
///
/// ```toml
/// listen = "127.0.0.1:8080"
/// workers = 8
/// queue_capacity = 64
/// drain_timeout = "10s"
/// max_steps_per_run = 10000
/// store = "sqlite:/var/lib/flowhost/flowhost.db"   # or "memory", or "postgres://..."
/// lease = "5s"                      # several servers on postgres: a dead one's runs move after it
/// retention_age = "30days"          # finished runs older are removed
/// retention_runs = 100000           # and past the newest this many
/// run_history = 1000                # the memory store's bounds
/// run_history_bytes = 67108864      # 64 MiB
/// run_history_max_output = 65536    # 64 KiB
/// api_token_hash = "sha256:..."     # `flowhost token hash`; none unless set
/// api_token_env = "FLOWHOST_API_TOKEN"   # else the token from this variable
/// session_lifetime = "12h"
/// header_read_timeout = "10s"
/// max_connections = 1024
///
/// [replay_gate]     # off unless given: a changed plugin must pass its recorded calls
/// runs = 50
/// max_changed = 0.1
///
/// [limits]          # default limits of every guest call
/// timeout = "10s"
/// # fuel = 10000000000  (a cap; none unless set)
///
/// [databases.orders]   # steps granted `allow: {sql: [orders]}` reach it
/// url = "sqlite:orders.db"     # relative to this file's folder; or "postgres://..."
/// pool_size = 4
/// max_rows = 10000
/// max_bytes = 4194304
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where to listen. Default: `127.0.0.1:8080` (loopback only).
    pub listen: SocketAddr,
    /// Runs executing at once. Default: 8.
    pub workers: usize,
    /// Runs accepted but not started; past it, new runs and events get `429`.
    /// An event that starts more flows than this is accepted whole when the
    /// queue is empty. Default: 64.
    pub queue_capacity: usize,
    /// Seconds a client is told to wait (`Retry-After`) when the queue is full.
    /// Default: 1.
    pub retry_after_secs: u64,
    /// Where runs are kept. Default: none, which keeps them in memory (lost
    /// on exit); `flowhost serve` defaults to a SQLite file in its data
    /// directory instead.
    pub store: Option<StoreUrl>,
    /// With a store several servers share (PostgreSQL): how long a server
    /// holds a run without renewing its claim. A server that dies (or
    /// stalls) longer than this loses its runs to the others, which resume
    /// them. Shorter moves them sooner; too short lets a busy server lose
    /// runs it still runs (they are stopped, and resumed elsewhere).
    /// Default: 5 s; at least 1 s.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// A durable store removes finished runs older than this, in the
    /// background. Default: 30 days.
    #[serde(with = "humantime_serde")]
    pub retention_age: Duration,
    /// A durable store keeps at most this many finished runs, the newest.
    /// Default: 100,000.
    pub retention_runs: usize,
    /// Finished runs the memory store keeps for `GET /runs/{id}`; the
    /// oldest are forgotten first. Default: 1,000.
    pub run_history: usize,
    /// Bytes (estimated from what the records hold) the finished runs kept
    /// for `GET /runs/{id}` may take; past it, the oldest are forgotten
    /// first, as past `run_history`. Default: 64 MiB.
    pub run_history_bytes: u64,
    /// The largest output kept whole in a finished run's record; a larger
    /// one is left out of it (`output_trimmed` gives its size). The client
    /// that waited for the run gets it whole. Default: 64 KiB.
    pub run_history_max_output: u64,
    /// Steps one run may start (branches and for_each items' steps
    /// included); past it the run fails with `too-many-steps`. Default: 10,000.
    pub max_steps_per_run: usize,
    /// How long a shutdown lets in-flight runs finish before cancelling them.
    /// Default: 10 s.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Hops an event chain may take (a run started by an event that a run
    /// started by an event emitted ...) before emits are refused. Default: 8.
    pub max_event_hops: u32,
    /// Events one run may emit. Default: 100.
    pub max_emits_per_run: u32,
    /// Deadline of the readiness probe's run. Default: 2 s.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// Guest instances alive at once, across all runs. Default: 256.
    pub max_instances: u32,
    /// Default limits of every guest call.
    pub limits: Limits,
    /// Before a changed plugin replaces the version serving, replay its last
    /// recorded calls against it, and refuse the swap when too many differ
    /// or fail (`[replay_gate]`). Default: off.
    pub replay_gate: Option<ReplayGate>,
    /// The SHA-256 of the API token (`sha256:HEX`, as `flowhost token hash`
    /// prints it). When a token is set, every route but `/healthz` and the
    /// login form needs it. Default: none.
    pub api_token_hash: Option<TokenHash>,
    /// Without `api_token_hash`: the environment variable that holds the
    /// token, if it is set. Default: `FLOWHOST_API_TOKEN`.
    pub api_token_env: String,
    /// How long a UI session (the login form's cookie) lasts. Default: 12 h.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// A connection whose request headers have not all arrived this long
    /// after it opened (or after its previous answer) is closed. Default: 10 s.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Connections open at once; past it, new ones wait until one closes.
    /// Default: 1,024.
    pub max_connections: usize,
    /// Serve beyond loopback without a token (`--insecure-no-auth`); only
    /// ever set by code, never by the file.
    #[serde(skip)]
    pub insecure_no_auth: bool,
    /// The SQL databases steps may be granted (`[databases.NAME]`).
    /// Default: none.
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// The folder relative `sqlite:` paths in `databases` are taken from:
    /// the config file's, set by whoever read it; only ever set by code.
    /// Default: none, the working directory.
    #[serde(skip)]
    pub config_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 8,
            queue_capacity: 64,
            retry_after_secs: 1,
            store: None,
            lease: Duration::from_secs(5),
            retention_age: Duration::from_secs(30 * 24 * 3600),
            retention_runs: 100_000,
            run_history: 1000,
            run_history_bytes: 64 << 20,
            run_history_max_output: 64 << 10,
            max_steps_per_run: crate::executor::RunOptions::DEFAULT_MAX_STEPS,
            drain_timeout: Duration::from_secs(10),
            max_event_hops: 8,
            max_emits_per_run: 100,
            probe_timeout: Duration::from_secs(2),
            max_instances: 256,
            limits: Limits::default(),
            replay_gate: None,
            api_token_hash: None,
            api_token_env: "FLOWHOST_API_TOKEN".into(),
            session_lifetime: Duration::from_secs(12 * 3600),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            insecure_no_auth: false,
            databases: BTreeMap::new(),
            config_dir: None,
        }
    }
}

impl ServerConfig {
    /// Parses a `flowhost.toml`. Every duration must be at most
    /// [`MAX_DURATION`](crate::MAX_DURATION).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let config: ServerConfig = toml::from_str(text).map_err(|e| without_secret(text, &e))?;
        let durations = [
            ("drain_timeout", config.drain_timeout),
            ("retention_age", config.retention_age),
            ("probe_timeout", config.probe_timeout),
            ("limits.timeout", config.limits.timeout),
            ("lease", config.lease),
            ("session_lifetime", config.session_lifetime),
            ("header_read_timeout", config.header_read_timeout),
        ];
        for (key, d) in durations {
            if let Some(why) = too_long(d) {
                return Err(format!("invalid `{key}`: {why}"));
            }
        }
        if config.lease < Duration::from_secs(1) {
            return Err("invalid `lease`: it must be at least 1s".into());
        }
        if config.header_read_timeout.is_zero() || config.session_lifetime.is_zero() {
            let key = match config.header_read_timeout.is_zero() {
                true => "header_read_timeout",
                false => "session_lifetime",
            };
            return Err(format!("invalid `{key}`: it must be greater than zero"));
        }
        if !(1..=MAX_CONNECTIONS).contains(&config.max_connections) {
            return Err(format!(
                "invalid `max_connections`: it must be 1 to {MAX_CONNECTIONS}"
            ));
        }
        if let Some(why) = config.replay_gate.as_ref().and_then(ReplayGate::invalid) {
            return Err(why);
        }
        crate::sql::check(&config.databases)?;
        if config.api_token_env.is_empty() {
            return Err("invalid `api_token_env`: name an environment variable".into());
        }
        if config.limits.fuel == Some(0) {
            return Err("invalid `limits.fuel`: the cap must be at least 1".into());
        }
        if config.limits.max_memory < Limits::MIN_MEMORY {
            return Err(
                "invalid `limits.max_memory`: it must be at least 65536 (64KiB, one WebAssembly page)"
                    .into(),
            );
        }
        Ok(config)
    }

    /// The host configuration these settings imply.
    pub fn host_config(&self) -> crate::Config {
        crate::Config::new()
            .limits(self.limits.clone())
            .max_instances(self.max_instances)
    }
}

/// A parse error in its words, but without the source line when that line
/// sets `api_token_hash`: the token itself may have been pasted there.
fn without_secret(text: &str, e: &toml::de::Error) -> String {
    let Some(start) = e.span().map(|s| s.start.min(text.len())) else {
        return e.to_string();
    };
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    if !text[line_start..]
        .trim_start()
        .starts_with("api_token_hash")
    {
        return e.to_string();
    }
    let line = text[..start].matches('\n').count() + 1;
    format!("invalid `api_token_hash` at line {line}: {}", e.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let c =
            ServerConfig::from_toml("workers = 2\ndrain_timeout = \"2s\"\n[limits]\nfuel = 5\n")
                .unwrap();
        assert_eq!(
            (c.workers, c.drain_timeout, c.limits.fuel),
            (2, Duration::from_secs(2), Some(5))
        );
        let none = ServerConfig::from_toml("[limits]\ntimeout = \"1s\"\n").unwrap();
        assert_eq!(none.limits.fuel, None, "no fuel cap unless one is set");
        let d = ServerConfig::default();
        assert_eq!(
            (
                d.run_history_bytes,
                d.run_history_max_output,
                d.max_steps_per_run
            ),
            (64 << 20, 64 << 10, 10_000)
        );
        let c = ServerConfig::from_toml(
            "run_history_bytes = 1000\nrun_history_max_output = 10\nmax_steps_per_run = 5\n",
        )
        .unwrap();
        assert_eq!(
            (
                c.run_history_bytes,
                c.run_history_max_output,
                c.max_steps_per_run
            ),
            (1000, 10, 5)
        );
        let e = ServerConfig::from_toml("wrokers = 2").unwrap_err();
        assert!(e.contains("wrokers"), "{e}");
    }

    #[test]
    fn databases_are_declared_by_name_and_checked() {
        let c = ServerConfig::from_toml(
            "[databases.orders]\nurl = \"sqlite:o.db\"\n[databases.pg]\nurl = \"postgres://u@h:5432/d\"\npool_size = 8\nmax_rows = 5\n",
        )
        .unwrap();
        let orders = &c.databases["orders"];
        assert_eq!(
            (orders.pool_size, orders.max_rows, orders.max_bytes),
            (4, 10_000, 4 << 20)
        );
        assert_eq!(
            (c.databases["pg"].pool_size, c.databases["pg"].max_rows),
            (8, 5)
        );
        for (toml, start) in [
            (
                "[databases.orders]\nurl = \"mysql://x\"",
                "invalid `databases.orders.url`: ",
            ),
            (
                "[databases.orders]\nurl = \"sqlite:o\"\npool_size = 0",
                "invalid `databases.orders.pool_size`: ",
            ),
            (
                "[databases.\"a b\"]\nurl = \"sqlite:o\"",
                "invalid `databases.a b`: ",
            ),
        ] {
            let e = ServerConfig::from_toml(toml).unwrap_err();
            assert!(e.starts_with(start), "{toml}: {e}");
        }
        let e = ServerConfig::from_toml("[databases.orders]\nurl = \"sqlite:o\"\npool = 2")
            .unwrap_err();
        assert!(e.contains("pool"), "{e}");
    }

    #[test]
    fn the_replay_gate_is_off_unless_set_and_checked() {
        assert_eq!(ServerConfig::default().replay_gate, None);
        let c = ServerConfig::from_toml("[replay_gate]\nruns = 5\nmax_changed = 0.25\n").unwrap();
        let gate = c.replay_gate.unwrap();
        assert_eq!((gate.runs, gate.max_changed), (5, 0.25));
        let c = ServerConfig::from_toml("[replay_gate]\n").unwrap();
        assert_eq!(c.replay_gate, Some(ReplayGate::default()));
        for (toml, key) in [
            ("[replay_gate]\nruns = 0", "replay_gate.runs"),
            (
                "[replay_gate]\nmax_changed = 1.5",
                "replay_gate.max_changed",
            ),
            ("[replay_gate]\nrun = 5", "run"),
        ] {
            let e = ServerConfig::from_toml(toml).unwrap_err();
            assert!(e.contains(key), "{toml}: {e}");
        }
    }

    #[test]
    fn durations_past_a_year_are_refused() {
        let huge = "\"18446744073709551615s\"";
        for (toml, key) in [
            (format!("drain_timeout = {huge}"), "drain_timeout"),
            (format!("probe_timeout = {huge}"), "probe_timeout"),
            (format!("[limits]\ntimeout = {huge}"), "limits.timeout"),
        ] {
            assert_eq!(
                ServerConfig::from_toml(&toml).unwrap_err(),
                format!("invalid `{key}`: it is longer than the maximum of 1year (365.25 days)")
            );
        }
        let year = ServerConfig::from_toml("drain_timeout = \"1y\"").unwrap();
        assert_eq!(year.drain_timeout, crate::MAX_DURATION);
    }

    #[test]
    fn a_zero_fuel_cap_or_too_little_memory_is_refused() {
        assert_eq!(
            ServerConfig::from_toml("[limits]\nfuel = 0\n").unwrap_err(),
            "invalid `limits.fuel`: the cap must be at least 1"
        );
        for memory in [0, 65535] {
            let e =
                ServerConfig::from_toml(&format!("[limits]\nmax_memory = {memory}\n")).unwrap_err();
            assert!(e.starts_with("invalid `limits.max_memory`: "), "{e}");
        }
        let c = ServerConfig::from_toml("[limits]\nmax_memory = 65536\nfuel = 1\n").unwrap();
        assert_eq!((c.limits.max_memory, c.limits.fuel), (65536, Some(1)));
    }

    #[test]
    fn the_security_settings_parse_and_are_checked() {
        let d = ServerConfig::default();
        assert_eq!(
            (d.api_token_hash.as_ref(), d.api_token_env.as_str()),
            (None, "FLOWHOST_API_TOKEN")
        );
        assert_eq!(
            (d.header_read_timeout, d.max_connections),
            (Duration::from_secs(10), 1024)
        );
        let hash = TokenHash::of("t").to_string();
        let c = ServerConfig::from_toml(&format!(
            "api_token_hash = \"{hash}\"\napi_token_env = \"MY_TOKEN\"\nheader_read_timeout = \"2s\"\nmax_connections = 8\n"
        ))
        .unwrap();
        assert_eq!(c.api_token_hash, Some(TokenHash::of("t")));
        assert_eq!(
            (
                c.api_token_env.as_str(),
                c.header_read_timeout,
                c.max_connections
            ),
            ("MY_TOKEN", Duration::from_secs(2), 8)
        );
        let e = ServerConfig::from_toml("api_token_hash = \"hunter2\"").unwrap_err();
        assert!(
            e.contains("api_token_hash") && e.contains("flowhost token hash"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "the value is not echoed: {e}");
        for (toml, key) in [
            ("max_connections = 0", "max_connections"),
            ("header_read_timeout = \"0s\"", "header_read_timeout"),
            ("session_lifetime = \"0s\"", "session_lifetime"),
            ("insecure_no_auth = true", "insecure_no_auth"),
        ] {
            let e = ServerConfig::from_toml(toml).unwrap_err();
            assert!(e.contains(key), "{toml}: {e}");
        }
    }
}
