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
        let scheme = s.split_once(':').map_or(s, |(scheme, _)| scheme);
        let hint = match scheme {
            "postgres" | "postgresql" => " (PostgreSQL is not supported yet)",
            _ => "",
        };
        Err(StoreUrlError(format!(
            "unknown store `{}`{hint}: use `sqlite:PATH` or `memory`",
            crate::printable::printable(s)
        )))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory"),
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
        }
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
        assert_eq!(e, "unknown store `mysql://x`: use `sqlite:PATH` or `memory`");
    }
}
