//! What the server's steps may reach beyond WASI, built once at start: the
//! `[databases]` of its config (and the key-value state).

use std::path::Path;
use std::sync::Arc;

use super::{ServeError, ServerConfig};
use crate::Services;
use crate::sql::Databases;
use crate::store::Store;

/// The services every run of this server gets.
pub(super) async fn services(
    config: &ServerConfig,
    _store: &Arc<dyn Store>,
) -> Result<Services, ServeError> {
    let mut services = Services::new();
    if !config.databases.is_empty() {
        let base = config.config_dir.as_deref().unwrap_or(Path::new("."));
        let databases = Databases::open(&config.databases, base).await?;
        services = services.databases(Arc::new(databases));
    }
    Ok(services)
}
