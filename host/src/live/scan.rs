//! Listing the files to serve.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::core::{Core, Kind, Root};
use crate::plugin::plugin_name;
use crate::registry::list_files;

impl<K: Kind> Core<K> {
    /// The files to serve, by name; names with two files get an error instead.
    pub(super) async fn scan(
        &self,
    ) -> std::io::Result<(BTreeMap<String, PathBuf>, BTreeMap<String, String>)> {
        let root = match &self.root {
            Root::File(f) => {
                let mut files = BTreeMap::new();
                if tokio::fs::try_exists(f).await.unwrap_or(false) {
                    files.insert(plugin_name(f), f.clone());
                }
                return Ok((files, BTreeMap::new()));
            }
            Root::Dir(d) => d.clone(),
        };
        // Listing a large folder is blocking I/O: keep it off the runtime.
        tokio::task::spawn_blocking(move || list_files(&root, &K::matches))
            .await
            .map_err(std::io::Error::other)?
    }
}
