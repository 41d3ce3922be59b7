//! The compile cache: compiled components on disk, so a warm start skips
//! cranelift.
//!
//! Loading a cached entry runs `Component::deserialize`, which trusts its
//! input as native code. So the cache trusts nothing it did not write:
//!
//! - the directory belongs to the host's user and has mode 0700: it is
//!   created so, and a directory owned by another user is refused. One with
//!   a wider mode is narrowed to 0700 and every entry in it deleted (with a
//!   warning): another user could have written them;
//! - an entry is `<key>.cwasm`, where the key is a SHA-256 over the
//!   component's content hash, the engine's compatibility hash (compiler
//!   flags, tunables, wasm features, wasmtime's module version),
//!   the wasmtime version and this format's version;
//! - an entry starts with a header (magic, format version, the key, the
//!   payload length and an HMAC-SHA256 of all that and the payload under a
//!   secret key kept outside the directory, see [`cache_key_file`]), checked
//!   before anything is deserialized. An entry that is a symlink, not a
//!   regular file or owned by another user (checked on the opened file), or
//!   that is corrupt, truncated, foreign or fails its MAC, is deleted with a
//!   warning naming it, and the component recompiled;
//! - entries are written to a temporary file and renamed into place, so a
//!   reader never sees half an entry;
//! - the total size is bounded: past the limit the least recently used
//!   entries (by modification time, refreshed on every hit) are deleted.
//!
//! All of it is blocking file I/O: callers run it in `spawn_blocking`.

mod entry;
mod key;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use entry::FORMAT;
pub use key::cache_key_file;
use key::{SecretKey, write_private};

const EXT: &str = "cwasm";

/// The wasmtime release this host is built with (pinned with `=` in
/// `host/Cargo.toml`; keep the two in step). The engine's compatibility hash
/// already covers wasmtime's own module version; this is a second guard.
const WASMTIME_VERSION: &str = "48.0.8";

/// The default size limit: 1 GiB.
pub const DEFAULT_CACHE_LIMIT: u64 = 1 << 30;

/// The default cache directory: `$FLOWHOST_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/flowhost`, else `~/.cache/flowhost`. `None` when none of
/// those variables is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("FLOWHOST_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("flowhost"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".cache").join("flowhost"))
}

/// The cache directory cannot be used safely.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The directory could not be created, read or fixed.
    #[error("compile cache {}: {message}", .dir.display())]
    Io {
        /// The cache directory.
        dir: PathBuf,
        /// What failed.
        message: String,
    },
    /// The secret key file cannot be used: missing and not creatable, or
    /// refused (a symlink, another owner, readable by others).
    #[error("compile cache key {}: {message}", .path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The directory is not owned by the user running the host; loading
    /// compiled code from it would run someone else's code.
    #[error(
        "compile cache {}: owned by uid {owner}, not by this user (uid {me}); refusing to load compiled code from it",
        .dir.display()
    )]
    NotOwned {
        /// The cache directory.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
        /// The host's effective user.
        me: u32,
    },
}

/// Counters of one host's cache use, since the host started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Components loaded from the cache (compilation skipped).
    pub hits: u64,
    /// Lookups that found no entry.
    pub misses: u64,
    /// Entries found corrupt, truncated, foreign, unauthenticated, symlinked,
    /// not regular files or not ours: deleted and recompiled.
    pub discarded: u64,
    /// Entries written.
    pub stored: u64,
    /// Entries deleted to stay under the size limit.
    pub evicted: u64,
}

/// What is in a cache directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CacheInfo {
    /// The directory.
    pub dir: PathBuf,
    /// Number of entries.
    pub entries: u64,
    /// Their total size in bytes.
    pub total_bytes: u64,
    /// The size limit in bytes.
    pub limit: u64,
    /// The secret key file (see [`cache_key_file`]), if there is a place for it.
    pub key_file: Option<PathBuf>,
}

/// The compile cache of one host.
pub(crate) struct CompileCache {
    dir: PathBuf,
    limit: u64,
    /// The engine part of every key.
    engine_key: [u8; 32],
    /// What entries are authenticated with.
    secret: SecretKey,
    stats: Arc<Counters>,
}

#[derive(Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    discarded: AtomicU64,
    stored: AtomicU64,
    evicted: AtomicU64,
}

/// Feeds `Hash` impls into SHA-256, so the engine hash is stable across processes.
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0 // never used: the digest is taken from the inner state
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// A hash of everything about `engine` that decides whether compiled code
/// from one engine loads in another, plus the wasmtime version.
pub(crate) fn engine_key(engine: &Engine) -> [u8; 32] {
    use std::hash::Hash;
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.update(WASMTIME_VERSION.as_bytes());
    h.0.update(FORMAT.to_le_bytes());
    h.0.finalize().into()
}

impl CompileCache {
    /// Opens (creating it 0700 if needed) the cache at `dir` for `engine`,
    /// with its secret key (created on first use).
    pub(crate) fn open(dir: &Path, limit: u64, engine: &Engine) -> Result<Self, CacheError> {
        prepare_cache_dir(dir)?;
        let secret = key::load_or_create(&key::locate()?, dir)?;
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            limit,
            engine_key: engine_key(engine),
            secret,
            stats: Arc::default(),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let s = &self.stats;
        CacheStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            discarded: s.discarded.load(Ordering::Relaxed),
            stored: s.stored.load(Ordering::Relaxed),
            evicted: s.evicted.load(Ordering::Relaxed),
        }
    }

    /// The key of a component whose bytes hash to `content_hash`.
    pub(crate) fn key(&self, content_hash: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(content_hash);
        h.update(self.engine_key);
        h.finalize().into()
    }

    fn entry_path(&self, key: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.{EXT}", hex(key)))
    }

    /// The cached component for `key`, if there is a sound entry that this
    /// user's flowhost wrote. Any other is deleted.
    pub(crate) fn get(&self, engine: &Engine, key: &[u8; 32]) -> Option<Component> {
        let path = self.entry_path(key);
        let discard = |why: &str| {
            tracing::warn!(entry = %path.display(), "compile cache: discarding entry: {why}");
            let _ = fs::remove_file(&path);
            self.stats.discarded.fetch_add(1, Ordering::Relaxed);
            None
        };
        let bytes = match entry::read(&path, self.limit) {
            Ok(Some(b)) => b,
            Ok(None) => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Err(why) => return discard(&why),
        };
        let payload = match entry::check(&self.secret, &bytes, key) {
            Ok(p) => p,
            Err(why) => return discard(why),
        };
        // SAFETY: the entry is a regular file of this user, and its MAC under
        // this user's secret key (kept outside the directory, readable by no
        // one else) covers its key and payload: only this user's flowhost can
        // have written it, from `Component::serialize` of this component
        // under a compatible engine.
        match unsafe { Component::deserialize(engine, payload) } {
            Ok(c) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                Some(c)
            }
            Err(e) => discard(&format!("wasmtime rejected it: {e:#}")),
        }
    }

    /// Stores `component` under `key`, then evicts past the limit. Failures
    /// are logged, never fatal: the cache is an optimisation.
    pub(crate) fn put(&self, key: &[u8; 32], component: &Component) {
        let payload = match component.serialize() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("compile cache: cannot serialize a component: {e:#}");
                return;
            }
        };
        let entry = entry::seal(&self.secret, key, &payload);
        let path = self.entry_path(key);
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            hex(key),
            std::process::id(),
            fastrand::u64(..)
        ));
        let written = write_private(&tmp, &entry).and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            tracing::warn!(entry = %path.display(), "compile cache: cannot write an entry: {e}");
            return;
        }
        self.stats.stored.fetch_add(1, Ordering::Relaxed);
        match evict(&self.dir, self.limit) {
            Ok(n) => {
                self.stats.evicted.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!("compile cache: eviction failed: {e}"),
        }
    }
}

/// Creates a compile cache directory with mode 0700, or checks an existing
/// one: it must be a real directory belonging to this user. Another mode is
/// set to 0700; when it let group or others in, every entry is deleted too
/// (with a warning), since another user could have written them. Blocking
/// file I/O.
pub fn prepare_cache_dir(dir: &Path) -> Result<(), CacheError> {
    let io = |message: String| CacheError::Io {
        dir: dir.to_path_buf(),
        message,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| io(format!("cannot create the directory: {e}")))?;
    // symlink_metadata: a symlink planted in place of the directory is refused.
    let meta = fs::symlink_metadata(dir).map_err(|e| io(format!("cannot read it: {e}")))?;
    if !meta.is_dir() {
        return Err(io("not a directory (a symlink or a file)".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(CacheError::NotOwned {
                dir: dir.to_path_buf(),
                owner: meta.uid(),
                me,
            });
        }
        let mode = meta.mode() & 0o777;
        if mode != 0o700 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| io(format!("mode is {mode:o} and cannot be set to 700: {e}")))?;
            if mode & 0o077 == 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    "compile cache: the directory had mode {mode:o}; set it to 700"
                );
            } else {
                // Now that no one else can add to it, drop what others could
                // have written: their entries are never loaded.
                let deleted = purge(dir);
                tracing::warn!(
                    dir = %dir.display(),
                    "compile cache: the directory had mode {mode:o}, so other users could write it; set it to 700 and deleted its {deleted} entries"
                );
            }
        }
    }
    Ok(())
}

/// Deletes every entry and temporary file in `dir` that can be deleted;
/// returns how many entries were.
fn purge(dir: &Path) -> u64 {
    let Ok(read) = fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for path in read.flatten().map(|e| e.path()) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let is_entry = name.ends_with(&format!(".{EXT}"));
        let is_tmp = name.starts_with('.') && name.ends_with(".tmp");
        if (is_entry || is_tmp) && fs::remove_file(&path).is_ok() {
            n += u64::from(is_entry);
        }
    }
    n
}

/// The cache's secret key for the cache at `dir`: checked, or created (mode
/// 0600) on first use; returns where it is. Blocking file I/O.
pub fn prepare_cache_key(dir: &Path) -> Result<PathBuf, CacheError> {
    let path = key::locate()?;
    key::load_or_create(&path, dir)?;
    Ok(path)
}

/// The cache entries in `dir`: (path, size, mtime).
fn entries(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64, SystemTime)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != EXT) {
            continue;
        }
        if let Ok(meta) = entry.metadata()
            && meta.is_file()
        {
            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((path, meta.len(), mtime));
        }
    }
    Ok(found)
}

/// Deletes the oldest entries until the total is within `limit`; returns how many.
fn evict(dir: &Path, limit: u64) -> std::io::Result<u64> {
    let mut all = entries(dir)?;
    let mut total: u64 = all.iter().map(|e| e.1).sum();
    if total <= limit {
        return Ok(0);
    }
    all.sort_by_key(|e| e.2);
    let mut n = 0;
    for (path, size, _) in all {
        if total <= limit {
            break;
        }
        if fs::remove_file(&path).is_ok() {
            total -= size;
            n += 1;
        }
    }
    Ok(n)
}

/// What is in the cache at `dir` (which need not exist).
pub fn cache_info(dir: &Path, limit: u64) -> Result<CacheInfo, CacheError> {
    let all = match entries(dir) {
        Ok(all) => all,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(CacheError::Io {
                dir: dir.to_path_buf(),
                message: format!("cannot read it: {e}"),
            });
        }
    };
    Ok(CacheInfo {
        dir: dir.to_path_buf(),
        entries: all.len() as u64,
        total_bytes: all.iter().map(|e| e.1).sum(),
        limit,
        key_file: cache_key_file(),
    })
}

/// Deletes every entry (and leftover temporary file) in the cache at `dir`;
/// returns how many entries were deleted. Other files are left alone.
pub fn cache_clear(dir: &Path) -> Result<u64, CacheError> {
    let io = |e: std::io::Error| CacheError::Io {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    };
    let read = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(e)),
    };
    let mut n = 0;
    for entry in read {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let is_entry = name.ends_with(&format!(".{EXT}"));
        let is_tmp = name.starts_with('.') && name.ends_with(".tmp");
        if is_entry || is_tmp {
            fs::remove_file(&path).map_err(io)?;
            n += u64::from(is_entry);
        }
    }
    Ok(n)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Code compiled by an engine with other settings (here, no fuel
    /// counting) never loads: it lives under another key.
    #[test]
    fn another_engine_configuration_misses() {
        let engine = |fuel: bool| Engine::new(wasmtime::Config::new().consume_fuel(fuel)).unwrap();
        let (metered, plain) = (engine(true), engine(false));
        let tmp = tempfile::tempdir().unwrap();
        let one = CompileCache::open(tmp.path(), DEFAULT_CACHE_LIMIT, &metered).unwrap();
        let other = CompileCache::open(tmp.path(), DEFAULT_CACHE_LIMIT, &plain).unwrap();
        let component = Component::new(&metered, "(component)").unwrap();
        one.put(&one.key(b"content"), &component);
        assert!(one.get(&metered, &one.key(b"content")).is_some());
        assert!(other.get(&plain, &other.key(b"content")).is_none());
        assert_eq!(other.stats().misses, 1);
        assert_eq!(other.stats().discarded, 0);
    }
}
