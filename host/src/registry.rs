//! The plugins a run can use, by name (a plugin's name is its file stem).
//!
//! A [`PluginSet`] is an immutable snapshot: a run resolves every plugin from
//! one snapshot, so it uses one version of each plugin for its whole life.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::LoadError;
use crate::host::Host;
use crate::plugin::{Plugin, plugin_name};
use crate::walk;

/// Plugins by name. It also remembers names that a live registry
/// ([`LivePlugins`](crate::LivePlugins)) saw removed, so that a lookup can
/// say so.
#[derive(Clone, Default, Debug)]
pub struct PluginSet {
    plugins: Arc<HashMap<String, Plugin>>,
    removed: Arc<BTreeSet<String>>,
}

impl PluginSet {
    /// A set of already-loaded plugins, named by their file stems.
    pub fn new(plugins: impl IntoIterator<Item = Plugin>) -> Self {
        let plugins = plugins
            .into_iter()
            .map(|p| (p.name().to_string(), p))
            .collect();
        PluginSet {
            plugins: Arc::new(plugins),
            removed: Arc::default(),
        }
    }

    /// A set of `plugins` that remembers `removed` names (those not in `plugins`).
    pub(crate) fn with_removed(
        plugins: impl IntoIterator<Item = Plugin>,
        removed: impl IntoIterator<Item = String>,
    ) -> Self {
        let mut set = PluginSet::new(plugins);
        let removed = removed
            .into_iter()
            .filter(|n| !set.plugins.contains_key(n))
            .collect();
        set.removed = Arc::new(removed);
        set
    }

    /// Whether `name` was in the live registry this set came from, and its
    /// file has been removed.
    pub fn is_removed(&self, name: &str) -> bool {
        !self.plugins.contains_key(name) && self.removed.contains(name)
    }

    /// The error for a lookup of `name` that found nothing: "plugin `x` not
    /// found", with "(removed)" when its file was removed.
    pub fn not_found_message(&self, name: &str) -> String {
        if self.is_removed(name) {
            format!("plugin `{name}` not found (removed)")
        } else {
            format!("plugin `{name}` not found")
        }
    }

    /// The plugins, in no particular order.
    pub fn plugins(&self) -> impl Iterator<Item = &Plugin> {
        self.plugins.values()
    }

    /// The plugin called `name`.
    pub fn get(&self, name: &str) -> Option<&Plugin> {
        self.plugins.get(name)
    }

    /// Whether a plugin called `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.plugins.contains_key(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<_> = self.plugins.keys().map(String::as_str).collect();
        names.sort();
        names
    }
}

/// The `.wasm` files under `dir` (recursively), by plugin name.
///
/// Two files with the same stem are an error naming both. The rules are
/// those of the live registry (`list_files`).
pub fn scan_dir(dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let is_wasm = |p: &Path| p.extension().is_some_and(|e| e == "wasm");
    let (files, dups) = list_files(dir, &is_wasm)
        .map_err(|e| format!("{}: cannot read the plugins folder: {e}", dir.display()))?;
    match dups.into_values().next() {
        Some(dup) => Err(dup),
        None => Ok(files),
    }
}

/// The files under `root` (recursively) that `matches`, by file stem; names
/// that two files share are left out and reported in the second map.
///
/// The folder is walked as every folder is ([`walk::files`]: hidden entries
/// and `target` folders skipped, symlinked folders not followed). Blocking:
/// async callers run it in `spawn_blocking`.
pub(crate) fn list_files(
    root: &Path,
    matches: &dyn Fn(&Path) -> bool,
) -> std::io::Result<(BTreeMap<String, PathBuf>, BTreeMap<String, String>)> {
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut dups: BTreeMap<String, String> = BTreeMap::new();
    for path in walk::files(root)? {
        if !matches(&path) {
            continue;
        }
        let stem = plugin_name(&path);
        if let Some(other) = files.get(&stem) {
            let (a, b) = if other < &path {
                (other, &path)
            } else {
                (&path, other)
            };
            let message = format!(
                "two files are named `{stem}`: {} and {}",
                a.display(),
                b.display()
            );
            dups.insert(stem, message);
        } else {
            files.insert(stem, path);
        }
    }
    for name in dups.keys() {
        files.remove(name);
    }
    Ok((files, dups))
}

/// Loads the named plugins from `files` (see [`scan_dir`]) concurrently.
/// Names with no file are left out; a file that fails to load is an error.
pub async fn load_plugins(
    host: &Host,
    files: &BTreeMap<String, PathBuf>,
    names: impl IntoIterator<Item = &str>,
) -> (PluginSet, Vec<LoadError>) {
    let loads = names
        .into_iter()
        .filter_map(|n| files.get(n))
        .map(|path| host.load(path));
    let mut plugins = Vec::new();
    let mut errors = Vec::new();
    for result in futures::future::join_all(loads).await {
        match result {
            Ok(p) => plugins.push(p),
            Err(e) => errors.push(e),
        }
    }
    (PluginSet::new(plugins), errors)
}
