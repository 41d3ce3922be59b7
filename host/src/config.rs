//! Configuration: host-wide [`Config`], per-call [`Limits`] and [`Grants`].
//!
//! Every default is documented here, in one place, and every one can be
//! overridden: host-wide through `Config`, per call through `Limits`/`Grants`.

mod http_grant;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use http_grant::canonical_host;
pub use http_grant::{HttpGrant, HttpGrantError};

/// Limits on one guest call, enforced on every call (fuel only when capped).
///
/// Limits that would fail every call (a zero `timeout`, `fuel: Some(0)`, a
/// `max_memory` under [`Limits::MIN_MEMORY`]) fail the call at once with a
/// `host` error naming the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock deadline for the whole call, guest code and guest waits alike.
    /// Default: 10 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A cap on fuel, about one unit per guest instruction (a tight loop
    /// burns billions a second). Fuel is always metered, reported and used to
    /// yield to tokio; `None` sets no cap, so the deadline bounds guest CPU
    /// time. Set a cap to bound work independently of machine speed.
    /// Default: `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Linear memory, summed over all memories of the instance, in bytes.
    /// Default: 128 MiB.
    pub max_memory: u64,
    /// Elements in any one table. Default: 100,000.
    pub max_table_elements: u32,
    /// Core instances, memories and tables per call. Large components
    /// (componentize-py makes about 38 core instances) need the headroom.
    /// Default: 200.
    pub max_instances: u32,
    /// Size of the returned JSON in bytes. Default: 16 MiB.
    pub max_output: u64,
    /// Bytes of log lines, stdout and stderr kept per call; the rest is
    /// dropped and counted. Default: 64 KiB.
    pub max_log: u64,
}

impl Limits {
    /// The smallest `max_memory` accepted: one WebAssembly page (64 KiB).
    /// Below it no guest could have a memory, so every call would fail.
    pub const MIN_MEMORY: u64 = 64 << 10;

    /// Why these limits would fail every call, naming the field, if they
    /// would: a zero `timeout`, a `fuel` cap of 0, or a `max_memory` under
    /// [`Limits::MIN_MEMORY`]. Flow files, flags and `flowhost.toml` refuse
    /// these where they are read; limits built in code are checked here,
    /// where every call's limits reach the runtime.
    pub(crate) fn check(&self) -> Result<(), String> {
        let why = if self.timeout.is_zero() {
            "`timeout` is zero; it must be greater than zero"
        } else if self.fuel == Some(0) {
            "`fuel` is Some(0); a cap must be at least 1 (None sets no cap)"
        } else if self.max_memory < Self::MIN_MEMORY {
            "`max_memory` is under Limits::MIN_MEMORY, 64KiB (one WebAssembly page)"
        } else {
            return Ok(());
        };
        Err(format!("invalid limits: {why}"))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(10),
            fuel: None,
            max_memory: 128 << 20,
            max_table_elements: 100_000,
            max_instances: 200,
            max_output: 16 << 20,
            max_log: 64 << 10,
        }
    }
}

/// Capabilities granted to a call. The default grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grants {
    /// Host directories mounted into the guest.
    pub dirs: Vec<DirGrant>,
    /// Names of host environment variables the guest may read.
    pub env: Vec<String>,
    /// Hosts the guest may reach with outbound HTTP.
    pub http: Vec<HttpGrant>,
    /// Names of the databases (`[databases.NAME]`) the guest may query.
    pub sql: Vec<String>,
    /// Key-value namespaces the guest may read and write.
    pub kv: Vec<String>,
}

/// A host directory mounted at a guest path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it; defaults to the host path.
    #[serde(default)]
    pub guest: Option<String>,
    /// Read-only unless `rw`.
    #[serde(default)]
    pub mode: DirMode,
}

impl DirGrant {
    /// The guest path, defaulting to the host path.
    pub fn guest_path(&self) -> String {
        self.guest
            .clone()
            .unwrap_or_else(|| self.host.to_string_lossy().into_owned())
    }
}

/// Access to a mounted directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DirMode {
    /// Read only (the default).
    #[default]
    Ro,
    /// Read and write.
    Rw,
}

/// Host-wide settings: the engine, the instance pool and the default limits.
///
/// ```
/// use std::time::Duration;
/// let config = flowhost::Config::new()
///     .max_instances(64)
///     .epoch_tick(Duration::from_millis(5));
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) limits: Limits,
    pub(crate) max_instances: u32,
    pub(crate) max_memory_size: u64,
    pub(crate) epoch_tick: Duration,
    pub(crate) fuel_yield_interval: u64,
    #[cfg(feature = "bench-internals")]
    pub(crate) metering: Metering,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) cache_limit: u64,
    pub(crate) http_max_idle_per_host: usize,
    pub(crate) http_idle_timeout: Duration,
}

/// Which metering is compiled in. Only benchmarks (the `bench-internals`
/// feature) can turn either off; every other build always has both.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metering {
    /// Fuel counting.
    pub fuel: bool,
    /// Epoch interruption.
    pub epochs: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            max_instances: 256,
            max_memory_size: 4 << 30,
            epoch_tick: Duration::from_millis(10),
            fuel_yield_interval: 250_000,
            #[cfg(feature = "bench-internals")]
            metering: Metering {
                fuel: true,
                epochs: true,
            },
            cache_dir: None,
            cache_limit: crate::cache::DEFAULT_CACHE_LIMIT,
            http_max_idle_per_host: 32,
            http_idle_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits for calls that do not set their own. Default: [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The default limits.
    pub fn default_limits(&self) -> &Limits {
        &self.limits
    }

    /// Guest instances alive at once, across all calls. The pooling allocator
    /// reserves slots for this many up front; a call beyond it fails with a
    /// host error. Raise it for servers with many concurrent calls. Default: 256.
    pub fn max_instances(mut self, n: u32) -> Self {
        self.max_instances = n.max(1);
        self
    }

    /// The largest linear memory any call may be given, in bytes. Only
    /// virtual address space is reserved. Default: 4 GiB (the wasm32 maximum).
    pub fn max_memory_size(mut self, bytes: u64) -> Self {
        self.max_memory_size = bytes;
        self
    }

    /// How often the epoch clock ticks. Deadlines are checked, and running
    /// guests yield to tokio, once a tick. Lower it for tighter deadlines at a
    /// small CPU cost. Default: 10 ms.
    pub fn epoch_tick(mut self, tick: Duration) -> Self {
        self.epoch_tick = tick.max(Duration::from_millis(1));
        self
    }

    /// Benchmarks only: turn fuel or epoch metering off, to measure what it
    /// costs. A host without them cannot bound CPU or deadlines for guest code.
    #[cfg(feature = "bench-internals")]
    #[doc(hidden)]
    pub fn benchmark_only_metering(mut self, metering: Metering) -> Self {
        self.metering = metering;
        self
    }

    /// Whether the engine counts fuel: always, outside benchmarks.
    pub(crate) fn meters_fuel(&self) -> bool {
        #[cfg(feature = "bench-internals")]
        return self.metering.fuel;
        #[cfg(not(feature = "bench-internals"))]
        true
    }

    /// Whether the engine interrupts on epochs: always, outside benchmarks.
    pub(crate) fn meters_epochs(&self) -> bool {
        #[cfg(feature = "bench-internals")]
        return self.metering.epochs;
        #[cfg(not(feature = "bench-internals"))]
        true
    }

    /// Fuel between yields to tokio, so CPU-bound guests share worker threads.
    /// Lower means fairer latency beside CPU-bound guests; each yield costs
    /// about a microsecond. Default: 250,000 (about 30 µs of guest code).
    pub fn fuel_yield_interval(mut self, fuel: u64) -> Self {
        self.fuel_yield_interval = fuel.max(1);
        self
    }

    /// The compile cache directory, or `None` for no cache. Compiled
    /// components are kept there, keyed by content and engine settings, so a
    /// restart loads them in milliseconds instead of compiling again.
    /// The directory is created with mode 0700 (a wider mode is narrowed; one
    /// owned by another user makes [`Host::new`](crate::Host::new) fail).
    /// Default: `None` in the library, so embedders and tests opt in; the
    /// `flowhost` binary uses [`default_cache_dir`](crate::default_cache_dir)
    /// (`$FLOWHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/flowhost`, else
    /// `~/.cache/flowhost`).
    pub fn cache(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// The compile cache's size limit in bytes; past it, the least recently
    /// used entries are deleted. Default: 1 GiB.
    pub fn cache_limit(mut self, bytes: u64) -> Self {
        self.cache_limit = bytes;
        self
    }

    /// The compile cache directory, if any.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache_dir.as_deref()
    }

    /// The compile cache's size limit in bytes.
    pub fn cache_size_limit(&self) -> u64 {
        self.cache_limit
    }

    /// Idle keep-alive connections kept per host and port for steps'
    /// outbound HTTP, shared by every call of the host. A request reuses an
    /// idle connection to its host when there is one, saving the TCP (and
    /// TLS) handshake. Raise it when many concurrent calls talk to one
    /// service; 0 turns pooling off (every request dials its own
    /// connection and closes it), for servers that mishandle keep-alive.
    /// Default: 32.
    pub fn http_max_idle_per_host(mut self, n: usize) -> Self {
        self.http_max_idle_per_host = n;
        self
    }

    /// How long an idle pooled connection is kept before it is closed.
    /// Keep it under the servers' own keep-alive timeout (often 60 s or
    /// more) so the host closes first; lower it to hold fewer sockets open.
    /// At least 1 ms. Default: 30 s.
    pub fn http_idle_timeout(mut self, idle: Duration) -> Self {
        self.http_idle_timeout = idle.clamp(Duration::from_millis(1), crate::MAX_DURATION);
        self
    }

    /// The outbound HTTP pool's settings.
    pub(crate) fn http_pool(&self) -> crate::runtime::http::PoolSettings {
        crate::runtime::http::PoolSettings {
            max_idle_per_host: self.http_max_idle_per_host,
            idle_timeout: self.http_idle_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_that_would_fail_every_call_are_named_by_their_field() {
        assert_eq!(Limits::default().check(), Ok(()));
        let at_minimums = Limits {
            timeout: Duration::from_nanos(1),
            fuel: Some(1),
            max_memory: Limits::MIN_MEMORY,
            ..Limits::default()
        };
        assert_eq!(at_minimums.check(), Ok(()));
        let cases = [
            (
                Limits {
                    timeout: Duration::ZERO,
                    ..Limits::default()
                },
                "invalid limits: `timeout` is zero; it must be greater than zero",
            ),
            (
                Limits {
                    fuel: Some(0),
                    ..Limits::default()
                },
                "invalid limits: `fuel` is Some(0); a cap must be at least 1 (None sets no cap)",
            ),
            (
                Limits {
                    max_memory: Limits::MIN_MEMORY - 1,
                    ..Limits::default()
                },
                "invalid limits: `max_memory` is under Limits::MIN_MEMORY, 64KiB (one WebAssembly page)",
            ),
        ];
        for (limits, want) in cases {
            assert_eq!(limits.check(), Err(want.to_string()), "{limits:?}");
        }
    }
}
