//! What the server's steps' `sql` and `kv` grants lead to, built once at
//! start: the `[databases]` of its config, and key-value state in its
//! store, so that it survives restarts and every server sharing the store
//! sees it.

use std::path::Path;
use std::sync::Arc;

use super::{ServeError, ServerConfig};
use crate::Services;
use crate::sql::Databases;
use crate::store::Store;

/// The services every run of this server gets.
pub(super) async fn services(
    config: &ServerConfig,
    store: &Arc<dyn Store>,
) -> Result<Services, ServeError> {
    let mut services = Services::new().kv(store.kv());
    if !config.databases.is_empty() {
        let base = config.config_dir.as_deref().unwrap_or(Path::new("."));
        let databases = Databases::open(&config.databases, base).await?;
        services = services.databases(Arc::new(databases));
    }
    Ok(services)
}
