//! Settling one changed file: waiting for it to stop changing, reading it,
//! and loading it, or deciding to retry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::core::{Core, Kind};
use crate::cache::hex;

/// A file's identity and state, as far as `stat` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sig {
    pub(super) path: PathBuf,
    pub(super) len: u64,
    pub(super) mtime: Option<SystemTime>,
    pub(super) ino: u64,
}

pub(super) async fn stat(path: &Path) -> std::io::Result<Sig> {
    // `metadata` follows symlinks: a symlinked plugin is its target's content.
    let meta = tokio::fs::metadata(path).await?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let ino = 0;
    Ok(Sig {
        path: path.to_path_buf(),
        len: meta.len(),
        mtime: meta.modified().ok(),
        ino,
    })
}

/// What examining one changed file found.
pub(super) enum Outcome<T> {
    /// Same content as serving: nothing to swap.
    Same(Sig),
    Loaded {
        item: T,
        hash: String,
        size: u64,
        load_time: Duration,
        sig: Sig,
    },
    Failed(String, Sig),
    /// Not settled (or failing while fresh): look again at this instant.
    Retry(Instant),
}

/// Silent retries of a failing file before it is reported however fresh it is.
const MAX_TRIES: u32 = 20;

impl<K: Kind> Core<K> {
    /// Settles, reads and loads one changed file.
    pub(super) async fn examine(
        &self,
        sig: Sig,
        serving: Option<String>,
        initial: bool,
        tries: u32,
    ) -> Outcome<K::Item> {
        let later = Instant::now() + self.options.debounce;
        // Still changing after the settle interval: look again later.
        match stat(&sig.path).await {
            Ok(now) if now == sig => {}
            _ => return Outcome::Retry(later),
        }
        let bytes = match crate::bounded_read::read_capped(&sig.path, K::MAX_LEN).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Retry(later),
            Err(e) => {
                let error = format!("{}: cannot read the file: {e}", sig.path.display());
                return Outcome::Failed(error, sig);
            }
        };
        // Written to while we read it: what we have may be torn.
        match stat(&sig.path).await {
            Ok(now) if now == sig && bytes.len() as u64 == sig.len => {}
            _ => return Outcome::Retry(later),
        }
        let hash = hex(&Sha256::digest(&bytes));
        if serving.as_ref() == Some(&hash) {
            return Outcome::Same(sig);
        }
        let size = bytes.len() as u64;
        let started = Instant::now();
        match self.kind.load(sig.path.clone(), bytes).await {
            Ok(item) => Outcome::Loaded {
                item,
                hash,
                size,
                load_time: started.elapsed(),
                sig,
            },
            Err(error) => {
                let age = sig
                    .mtime
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .unwrap_or(Duration::ZERO);
                if !initial && age < self.options.quiet && tries < MAX_TRIES {
                    tracing::debug!(file = %sig.path.display(), "not loadable yet, retrying: {error}");
                    let wait = (self.options.quiet - age).max(self.options.debounce);
                    Outcome::Retry(Instant::now() + wait)
                } else {
                    Outcome::Failed(error, sig)
                }
            }
        }
    }
}
