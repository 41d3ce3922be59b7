//! Listing the files to serve, with what `stat` says of each.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::plugin::plugin_name;
use crate::registry::list_files;

/// What is watched: a folder (recursively) or one file.
#[derive(Clone)]
pub(super) enum Root {
    Dir(PathBuf),
    File(PathBuf),
}

impl Root {
    pub(super) fn path(&self) -> &Path {
        match self {
            Root::Dir(p) | Root::File(p) => p,
        }
    }
}

/// A file's identity and state, as far as `stat` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sig {
    pub(super) path: PathBuf,
    pub(super) len: u64,
    pub(super) mtime: Option<SystemTime>,
    pub(super) ino: u64,
}

impl Sig {
    /// The signature of `path`, from its metadata (which follows symlinks: a
    /// symlinked plugin is its target's content).
    pub(super) fn of(path: &Path, meta: &Metadata) -> Sig {
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let ino = 0;
        Sig {
            path: path.to_path_buf(),
            len: meta.len(),
            mtime: meta.modified().ok(),
            ino,
        }
    }
}

/// One file found, and its signature or why it cannot be stat'ed (a
/// dangling symlink, or gone since it was listed).
pub(super) struct Listed {
    pub(super) path: PathBuf,
    pub(super) sig: Result<Sig, String>,
}

/// The files to serve, by name; names with two files get an error instead.
#[derive(Default)]
pub(super) struct Listing {
    pub(super) files: BTreeMap<String, Listed>,
    pub(super) dups: BTreeMap<String, String>,
}

/// Lists and stats the files under `root` that `matches`, off the async
/// runtime (a large folder is a lot of blocking I/O).
pub(super) async fn scan(root: &Root, matches: fn(&Path) -> bool) -> std::io::Result<Listing> {
    let root = root.clone();
    tokio::task::spawn_blocking(move || list(&root, matches))
        .await
        .map_err(std::io::Error::other)?
}

fn list(root: &Root, matches: fn(&Path) -> bool) -> std::io::Result<Listing> {
    let (files, dups) = match root {
        Root::File(f) => {
            let mut files = BTreeMap::new();
            if f.try_exists().unwrap_or(false) {
                files.insert(plugin_name(f), f.clone());
            }
            (files, BTreeMap::new())
        }
        Root::Dir(d) => list_files(d, &matches)?,
    };
    let files = files
        .into_iter()
        .map(|(name, path)| {
            let sig = std::fs::metadata(&path)
                .map(|meta| Sig::of(&path, &meta))
                .map_err(|e| format!("{}: cannot read the file: {e}", path.display()));
            (name, Listed { path, sig })
        })
        .collect();
    Ok(Listing { files, dups })
}
