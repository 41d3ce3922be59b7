//! What differs between the two live registries: which files they take, how
//! one is loaded, and the snapshot they publish.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use super::events::Watched;

/// Plugins or flows.
pub(super) trait Kind: Send + Sync + 'static {
    /// One loaded file.
    type Item: Clone + Send + Sync + 'static;
    /// What new calls and runs read: swapped in whole.
    type Snap: Default + Send + Sync + 'static;
    const WHAT: Watched;
    /// The largest file read; a larger one fails without being read whole.
    const MAX_LEN: u64 = u64::MAX;
    /// Whether the file at `path` is one of ours.
    fn matches(path: &Path) -> bool;
    /// Loads a file's content: a compile for a plugin, a parse for a flow.
    /// The slow part of a reload, so it runs without the registry's lock.
    fn load(&self, path: PathBuf, bytes: Vec<u8>)
    -> BoxFuture<'static, Result<Self::Item, String>>;
    /// The check a changed file's loaded `item` must pass before it
    /// replaces the version serving (`None`: nothing to check). `Err`
    /// refuses the swap, with the reason.
    fn vet(&self, _item: &Self::Item) -> Option<BoxFuture<'static, Result<(), String>>> {
        None
    }
    /// Whether loading `item` was served from the compile cache.
    fn cached(_item: &Self::Item) -> bool {
        false
    }
    /// `item`, stamped with the version it serves as.
    fn with_version(item: Self::Item, _version: u64) -> Self::Item {
        item
    }
    /// The snapshot of `items` (what serves, by name), remembering the names
    /// `removed` while serving.
    fn publish<'a>(
        items: impl Iterator<Item = (&'a String, &'a Self::Item)>,
        removed: &BTreeSet<String>,
    ) -> Self::Snap;
}
