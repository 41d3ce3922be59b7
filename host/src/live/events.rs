//! What a live registry reports: the status of each name, and reload events.

use std::path::PathBuf;
use std::time::Duration;

/// What a live registry holds under one name: the version serving, if any,
/// and the current error, if any.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct EntryStatus {
    /// The name (the file stem).
    pub name: String,
    /// The file.
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// The version counter of the version serving (1, 2, 3... per name).
    pub version: Option<u64>,
    /// SHA-256 of the serving version's file, in hex.
    pub hash: Option<String>,
    /// Size of the serving version's file in bytes.
    pub size: Option<u64>,
    /// How long loading the serving version took (compiling, for a plugin).
    pub load_ms: Option<f64>,
    /// Whether the serving version came from the compile cache.
    pub cached: bool,
    /// When the serving version was loaded (RFC 3339).
    pub loaded_at: Option<String>,
    /// Why the file on disk is not serving, naming the file; `None` when it is.
    pub error: Option<String>,
}

/// What kind of file a [`ReloadEvent`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Watched {
    /// A plugin (`.wasm`).
    Plugin,
    /// A flow file.
    Flow,
}

/// One change a live registry made or refused.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ReloadEvent {
    /// Plugin or flow.
    pub what: Watched,
    /// The name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// What happened.
    pub outcome: ReloadOutcome,
}

/// What happened to a watched file.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// A new version is serving.
    Loaded {
        /// Its version counter.
        version: u64,
        /// SHA-256 of the file, in hex.
        hash: String,
        /// How long loading took.
        #[serde(with = "humantime_serde")]
        load_time: Duration,
        /// Whether the compile cache served it.
        cached: bool,
    },
    /// The file is broken; the last good version (if any) keeps serving.
    Failed {
        /// Why, naming the file.
        error: String,
    },
    /// The file was removed; so was its name from new snapshots.
    Removed,
}

impl std::fmt::Display for ReloadEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.what {
            Watched::Plugin => "plugin",
            Watched::Flow => "flow",
        };
        match &self.outcome {
            ReloadOutcome::Loaded {
                version,
                hash,
                load_time,
                cached,
            } => write!(
                f,
                "{what} `{}` v{version} ({}) loaded in {:.1} ms{}",
                self.name,
                &hash[..12.min(hash.len())],
                load_time.as_secs_f64() * 1e3,
                if *cached {
                    " from the compile cache"
                } else {
                    ""
                }
            ),
            ReloadOutcome::Failed { error } => write!(
                f,
                "{what} `{}` rejected, the last good version keeps serving: {error}",
                self.name
            ),
            ReloadOutcome::Removed => {
                write!(
                    f,
                    "{what} `{}` removed ({})",
                    self.name,
                    self.path.display()
                )
            }
        }
    }
}
