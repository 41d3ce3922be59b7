//! What steps' `sql` and `kv` grants lead to in a server, built once at start.

use std::sync::Arc;

use super::ServerConfig;
use crate::Services;
use crate::store::Store;

/// The server's services: key-value state in its store, so that it
/// survives restarts and every server sharing the store sees it.
pub(super) fn services(_config: &ServerConfig, store: &Arc<dyn Store>) -> Services {
    Services::new().kv(store.kv())
}
