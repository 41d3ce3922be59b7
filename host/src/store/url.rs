//! `--store URL`: which backend, and where.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where runs are kept, as `--store` and `store = "..."` name it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// `memory`: nothing survives the process.
    Memory,
    /// `sqlite:PATH`: one SQLite file.
    Sqlite(PathBuf),
    /// `postgres://...` (or `postgresql://`): a PostgreSQL database that
    /// several servers share. Shown without its password.
    Postgres(super::postgres::PgUrl),
}

impl StoreUrl {
    /// The default store of `flowhost serve`: `flowhost.db` in `data_dir`,
    /// else in [`default_data_dir`].
    pub fn default_in(data_dir: Option<&std::path::Path>) -> Option<StoreUrl> {
        let dir = match data_dir {
            Some(d) => d.to_path_buf(),
            None => default_data_dir()?,
        };
        Some(StoreUrl::Sqlite(dir.join("flowhost.db")))
    }
}

/// Where `flowhost serve` keeps its store by default: `$FLOWHOST_DATA_DIR`,
/// else `$XDG_DATA_HOME/flowhost`, else `~/.local/share/flowhost`.
pub fn default_data_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("FLOWHOST_DATA_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_DATA_HOME") {
        return Some(PathBuf::from(dir).join("flowhost"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".local/share/flowhost"))
}

/// A `--store` value that names no backend this build has.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreUrlError(String);

impl FromStr for StoreUrl {
    type Err = StoreUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "memory" {
            return Ok(StoreUrl::Memory);
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(StoreUrlError(
                    "`sqlite:` needs a file: `sqlite:PATH`, for example `sqlite:runs.db`".into(),
                ));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return s
                .parse()
                .map(StoreUrl::Postgres)
                .map_err(|why: String| StoreUrlError(crate::printable::printable(&why).into()));
        }
        Err(StoreUrlError(format!(
            "unknown store `{}`: use `sqlite:PATH`, `postgres://USER@HOST:PORT/DB` or `memory`",
            crate::printable::printable(s)
        )))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory"),
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreUrl::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// As written in the config: a PostgreSQL URL keeps its password here (it
/// is shown without it).
impl serde::Serialize for StoreUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StoreUrl::Postgres(url) => s.serialize_str(url.as_str()),
            other => s.collect_str(other),
        }
    }
}

impl<'de> serde::Deserialize<'de> for StoreUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_backend_and_names_what_is_wrong() {
        assert_eq!("memory".parse::<StoreUrl>().unwrap(), StoreUrl::Memory);
        assert_eq!(
            "sqlite:runs.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("runs.db".into())
        );
        assert_eq!(
            "sqlite:///var/lib/f.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("/var/lib/f.db".into())
        );
        let e = "sqlite:".parse::<StoreUrl>().unwrap_err().to_string();
        assert!(e.contains("needs a file"), "{e}");
        let e = "mysql://x".parse::<StoreUrl>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown store `mysql://x`: use `sqlite:PATH`, `postgres://USER@HOST:PORT/DB` or `memory`"
        );
        for text in [
            "postgres://u:pw@h:5432/d",
            "postgresql://u@h/d?sslmode=require",
        ] {
            let url = text.parse::<StoreUrl>().unwrap();
            assert!(matches!(url, StoreUrl::Postgres(_)), "{text}");
            let json = serde_json::to_string(&url).unwrap();
            assert_eq!(json, format!("\"{text}\""), "the config keeps it whole");
        }
        let shown = "postgres://u:pw@h:5432/d".parse::<StoreUrl>().unwrap();
        assert_eq!(shown.to_string(), "postgres://u@h:5432/d");
        let e = "postgres://u:pw@h:x/d"
            .parse::<StoreUrl>()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("`postgres://u@h:x/d`: ") && !e.contains("pw"),
            "{e}"
        );
    }
}
