//! `[databases.NAME]` of `flowhost.toml`: what the operator declares, checked
//! where it is read so every mistake names its key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::postgres::PgUrl;

/// The most connections one database's pool may hold.
const MAX_POOL_SIZE: u32 = 1024;
/// The longest database name.
const MAX_NAME: usize = 64;

/// One database the operator declares.
///
/// ```toml
/// [databases.orders]
/// url = "sqlite:orders.db"     # relative to the config file's folder; or "postgres://..."
/// pool_size = 4
/// max_rows = 10000
/// max_bytes = 4194304
/// ```
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

    /// A database at `url` with the default pool and caps.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseConfig {
            url: url.into(),
            pool_size: Self::default_pool_size(),
            max_rows: Self::default_max_rows(),
            max_bytes: Self::default_max_bytes(),
        }
    }
}

/// Where a database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DbUrl {
    /// A SQLite file, its path resolved against the config file's folder.
    Sqlite(PathBuf),
    /// A PostgreSQL database (shown without its password).
    Postgres(PgUrl),
}

impl DbUrl {
    /// Reads `text`; a relative SQLite path is taken from `base`.
    pub(crate) fn parse(text: &str, base: &Path) -> Result<DbUrl, String> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("`sqlite:` names no file: `sqlite:PATH`".into());
            }
            return Ok(DbUrl::Sqlite(base.join(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return text.parse().map(DbUrl::Postgres);
        }
        Err("it must be `sqlite:PATH` or `postgres://USER@HOST:PORT/DB`".into())
    }
}

/// Checks every declared database: its name, its URL, its pool size and caps.
/// The error names the key: ``invalid `databases.orders.url`: ...``.
pub(crate) fn check(databases: &BTreeMap<String, DatabaseConfig>) -> Result<(), String> {
    databases
        .iter()
        .try_for_each(|(name, db)| check_one(name, db))
}

/// Checks the database `name`.
pub(crate) fn check_one(name: &str, db: &DatabaseConfig) -> Result<(), String> {
    {
        if let Some(why) = bad_name(name) {
            return Err(format!("invalid `databases.{name}`: {why}"));
        }
        let key = |field: &str| format!("databases.{name}.{field}");
        DbUrl::parse(&db.url, Path::new("."))
            .map_err(|why| format!("invalid `{}`: {why}", key("url")))?;
        if !(1..=MAX_POOL_SIZE).contains(&db.pool_size) {
            return Err(format!(
                "invalid `{}`: it must be 1 to {MAX_POOL_SIZE}",
                key("pool_size")
            ));
        }
        for (field, value) in [("max_rows", db.max_rows), ("max_bytes", db.max_bytes)] {
            if value == 0 {
                return Err(format!("invalid `{}`: it must be at least 1", key(field)));
            }
        }
    }
    Ok(())
}

/// Why `name` cannot name a database, if it cannot.
fn bad_name(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Some(format!("a database name has 1 to {MAX_NAME} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Some("a database name has only letters, digits, `_` and `-`".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, db: DatabaseConfig) -> Result<(), String> {
        check(&BTreeMap::from([(name.to_string(), db)]))
    }

    #[test]
    fn names_urls_and_caps_are_checked_by_key() {
        assert_eq!(one("orders", DatabaseConfig::new("sqlite:o.db")), Ok(()));
        assert_eq!(
            one("orders", DatabaseConfig::new("postgres://u@h:5432/d")),
            Ok(())
        );
        let e = one("orders", DatabaseConfig::new("mysql://h/d")).unwrap_err();
        assert!(e.starts_with("invalid `databases.orders.url`: "), "{e}");
        let e = one("orders", DatabaseConfig::new("postgres://u:secret@h:x/d")).unwrap_err();
        assert!(e.starts_with("invalid `databases.orders.url`: "), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = one("orders", DatabaseConfig::new("sqlite:")).unwrap_err();
        assert!(e.contains("names no file"), "{e}");
        let e = one("or ders", DatabaseConfig::new("sqlite:o.db")).unwrap_err();
        assert!(e.starts_with("invalid `databases.or ders`: "), "{e}");
        let e = one(&"x".repeat(65), DatabaseConfig::new("sqlite:o.db")).unwrap_err();
        assert!(e.contains("1 to 64 characters"), "{e}");
        for (field, db) in [
            (
                "pool_size",
                DatabaseConfig {
                    pool_size: 0,
                    ..DatabaseConfig::new("sqlite:o.db")
                },
            ),
            (
                "max_rows",
                DatabaseConfig {
                    max_rows: 0,
                    ..DatabaseConfig::new("sqlite:o.db")
                },
            ),
            (
                "max_bytes",
                DatabaseConfig {
                    max_bytes: 0,
                    ..DatabaseConfig::new("sqlite:o.db")
                },
            ),
        ] {
            let e = one("db", db).unwrap_err();
            assert!(
                e.starts_with(&format!("invalid `databases.db.{field}`")),
                "{e}"
            );
        }
    }

    #[test]
    fn relative_sqlite_paths_are_taken_from_the_config_folder() {
        assert_eq!(
            DbUrl::parse("sqlite:data/o.db", Path::new("/etc/flowhost")),
            Ok(DbUrl::Sqlite(PathBuf::from("/etc/flowhost/data/o.db")))
        );
        assert_eq!(
            DbUrl::parse("sqlite:/var/o.db", Path::new("/etc/flowhost")),
            Ok(DbUrl::Sqlite(PathBuf::from("/var/o.db")))
        );
    }
}
