//! SQL databases for steps: declared by the operator (`[databases.NAME]` in
//! `flowhost.toml`), pooled by the host, granted per step
//! (`allow: {sql: [NAME]}`), reached through the WIT `sql` interface.
//!
//! TODO(issue 17): pools for SQLite and PostgreSQL, caps, deadline cancel.

mod guest;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One database the operator declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite:PATH` (relative to the config file's folder) or `postgres://...`.
    pub url: String,
    /// Connections kept open at most. Default: 4.
    #[serde(default = "DatabaseConfig::default_pool_size")]
    pub pool_size: u32,
    /// The most rows one query may return. Default: 10,000.
    #[serde(default = "DatabaseConfig::default_max_rows")]
    pub max_rows: u64,
    /// The most bytes of JSON one query may return. Default: 4 MiB.
    #[serde(default = "DatabaseConfig::default_max_bytes")]
    pub max_bytes: u64,
}

impl DatabaseConfig {
    fn default_pool_size() -> u32 {
        4
    }
    fn default_max_rows() -> u64 {
        10_000
    }
    fn default_max_bytes() -> u64 {
        4 << 20
    }
}

/// The declared databases, by name, with their pools.
#[derive(Debug, Default)]
pub struct Databases {
    configs: BTreeMap<String, DatabaseConfig>,
}
