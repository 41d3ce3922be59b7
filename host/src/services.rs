//! What steps may reach beyond WASI: the operator's SQL databases and the
//! key-value state. A call reaches only the names its [`Grants`](crate::Grants)
//! list; [`Services`] says what those names lead to.
//!
//! Lifecycle (as for every capability): the services are built once, by
//! whoever owns the pools (the server, `flowhost run`, an embedder); each
//! call gets a cheap clone and checks its grants on every use; nothing of a
//! call outlives it (an open transaction is rolled back when the call ends).

use std::sync::Arc;

use crate::kv::KvStore;
use crate::sql::Databases;

/// The databases and key-value store calls may be granted. The default has
/// neither: every `sql` and `kv` call is then denied.
#[derive(Clone, Default)]
pub struct Services {
    pub(crate) databases: Option<Arc<Databases>>,
    pub(crate) kv: Option<Arc<dyn KvStore>>,
}

impl Services {
    /// No databases, no key-value store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The databases granted by `allow: {sql: [NAME]}`.
    pub fn databases(mut self, databases: Arc<Databases>) -> Self {
        self.databases = Some(databases);
        self
    }

    /// Where `allow: {kv: [NAME]}` namespaces are kept.
    pub fn kv(mut self, kv: Arc<dyn KvStore>) -> Self {
        self.kv = Some(kv);
        self
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("databases", &self.databases)
            .field("kv", &self.kv.is_some())
            .finish()
    }
}
