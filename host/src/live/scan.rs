//! Listing the files to serve.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::core::{Core, Kind, Root};
use crate::plugin::plugin_name;

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
        let matches = |p: &Path| self.kind.matches(p);
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut dups: BTreeMap<String, String> = BTreeMap::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e) if dir == root => return Err(e),
                Err(_) => continue, // a subfolder removed while scanning
            };
            while let Ok(Some(entry)) = entries.next_entry().await {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                // `metadata` follows symlinks; only real folders are descended
                // into (no symlink loops).
                let Ok(ft) = entry.file_type().await else {
                    continue;
                };
                if ft.is_dir() {
                    if name != "target" {
                        pending.push(path);
                    }
                } else if matches(&path) {
                    let stem = plugin_name(&path);
                    if let Some(other) = files.get(&stem) {
                        let (a, b) = if other < &path {
                            (other.clone(), path.clone())
                        } else {
                            (path.clone(), other.clone())
                        };
                        dups.insert(
                            stem.clone(),
                            format!(
                                "two files are named `{stem}`: {} and {}",
                                a.display(),
                                b.display()
                            ),
                        );
                    } else {
                        files.insert(stem, path);
                    }
                }
            }
        }
        for name in dups.keys() {
            files.remove(name);
        }
        Ok((files, dups))
    }
}
