//! The `sqlite:PATH` store (being built).

use std::path::Path;

use super::StoreError;

/// Runs in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore;

impl SqliteStore {
    /// Opens (or creates) the store at `path`.
    pub async fn open(path: &Path) -> Result<std::convert::Infallible, StoreError> {
        Err(StoreError::Backend(format!(
            "{}: not built yet",
            path.display()
        )))
    }
}
