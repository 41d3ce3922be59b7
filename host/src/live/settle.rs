//! Settling one changed file: waiting for it to stop changing, reading it,
//! loading it and vetting it (a swap the server gates), or deciding to retry. Runs without the registry's lock:
//! loading is a compile, seconds for a large component.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::kind::Kind;
use super::options::WatchOptions;
use super::scan::Sig;
use crate::cache::hex;

/// A file whose signature changed since it last settled.
pub(super) struct Candidate {
    pub(super) name: String,
    pub(super) sig: Sig,
    /// The content hash of the version serving under this name.
    pub(super) serving: Option<String>,
    /// Silent retries so far.
    pub(super) tries: u32,
}

/// What examining one changed file found.
pub(super) enum Outcome<T> {
    /// Same content as serving: nothing to swap.
    Same(Sig),
    Loaded(Loaded<T>),
    Failed(String, Sig),
    /// Not settled (or failing while fresh): look again at this instant.
    Retry(Instant),
}

/// A file loaded, ready to serve.
pub(super) struct Loaded<T> {
    pub(super) item: T,
    pub(super) hash: String,
    pub(super) size: u64,
    pub(super) load_time: Duration,
    pub(super) cached: bool,
    pub(super) sig: Sig,
}

/// Silent retries of a failing file before it is reported however fresh it is.
const MAX_TRIES: u32 = 20;

async fn stat(sig: &Sig) -> std::io::Result<Sig> {
    let meta = tokio::fs::metadata(&sig.path).await?;
    Ok(Sig::of(&sig.path, &meta))
}

/// The file's content (at most `cap` bytes, a regular file) and its SHA-256
/// in hex, off the async runtime: hashing a large component takes a while.
async fn read_hashed(path: &Path, cap: u64) -> std::io::Result<(Vec<u8>, String)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let bytes = crate::bounded_read::read_regular(&path, cap)?;
        let hash = hex(&Sha256::digest(&bytes));
        Ok((bytes, hash))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Settles, reads and loads one changed file. `initial`: report a broken
/// file at once rather than waiting for it to go quiet.
pub(super) async fn examine<K: Kind>(
    kind: &K,
    options: &WatchOptions,
    candidate: &Candidate,
    initial: bool,
) -> Outcome<K::Item> {
    let sig = candidate.sig.clone();
    let later = Instant::now() + options.debounce;
    // Still changing after the settle interval: look again later.
    match stat(&sig).await {
        Ok(now) if now == sig => {}
        _ => return Outcome::Retry(later),
    }
    let (bytes, hash) = match read_hashed(&sig.path, K::MAX_LEN).await {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Retry(later),
        Err(e) => {
            let error = format!("{}: cannot read the file: {e}", sig.path.display());
            return Outcome::Failed(error, sig);
        }
    };
    // Written to while we read it: what we have may be torn.
    match stat(&sig).await {
        Ok(now) if now == sig && bytes.len() as u64 == sig.len => {}
        _ => return Outcome::Retry(later),
    }
    if candidate.serving.as_ref() == Some(&hash) {
        return Outcome::Same(sig);
    }
    let size = bytes.len() as u64;
    let started = Instant::now();
    match kind.load(sig.path.clone(), bytes).await {
        Ok(item) => {
            let load_time = started.elapsed();
            // Only a swap is vetted: a first version replaces nothing.
            if candidate.serving.is_some()
                && let Some(check) = kind.vet(&item)
                && let Err(reason) = check.await
            {
                return Outcome::Failed(format!("{}: {reason}", sig.path.display()), sig);
            }
            Outcome::Loaded(Loaded {
                cached: K::cached(&item),
                item,
                hash,
                size,
                load_time,
                sig,
            })
        }
        Err(error) => {
            let age = sig
                .mtime
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .unwrap_or(Duration::ZERO);
            if !initial && age < options.quiet && candidate.tries < MAX_TRIES {
                tracing::debug!(file = %sig.path.display(), "not loadable yet, retrying: {error}");
                let wait = (options.quiet - age).max(options.debounce);
                Outcome::Retry(Instant::now() + wait)
            } else {
                Outcome::Failed(error, sig)
            }
        }
    }
}
