//! One cache entry on disk: its layout, its MAC, and reading it without
//! following a planted symlink or trusting a file another user owns.
//!
//! An entry is a header (magic, format version, the cache key, the payload
//! length, and an HMAC-SHA256 under the secret key over all of these and the
//! payload), then the payload: what `Component::serialize` produced.

use std::fs;
use std::io::Read;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::key::SecretKey;

const MAGIC: &[u8; 8] = b"FLOWHSTC";
/// Bumped whenever the entry layout changes (2: a keyed MAC instead of a
/// plain SHA-256).
pub(super) const FORMAT: u32 = 2;
/// magic + format + key + payload length + MAC.
const HEADER_LEN: usize = 8 + 4 + 32 + 8 + 32;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &SecretKey) -> HmacSha256 {
    HmacSha256::new_from_slice(&secret.0).expect("HMAC takes a key of any length")
}

/// The entry for `payload` under `key`, sealed with `secret`.
pub(super) fn seal(secret: &SecretKey, key: &[u8; 32], payload: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(HEADER_LEN + payload.len());
    entry.extend_from_slice(MAGIC);
    entry.extend_from_slice(&FORMAT.to_le_bytes());
    entry.extend_from_slice(key);
    entry.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut m = mac(secret);
    m.update(&entry);
    m.update(payload);
    entry.extend_from_slice(&m.finalize().into_bytes());
    entry.extend_from_slice(payload);
    entry
}

/// Checks an entry's header against `key` and its MAC under `secret`;
/// returns the payload.
pub(super) fn check<'a>(
    secret: &SecretKey,
    bytes: &'a [u8],
    key: &[u8; 32],
) -> Result<&'a [u8], &'static str> {
    if bytes.len() < HEADER_LEN {
        return Err("truncated header");
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    if &header[..8] != MAGIC {
        return Err("not a flowhost cache entry (bad magic)");
    }
    if header[8..12] != FORMAT.to_le_bytes() {
        return Err("another cache format version");
    }
    if &header[12..44] != key {
        return Err("its key does not match its name (a foreign entry)");
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[44..52]);
    if u64::from_le_bytes(len) != payload.len() as u64 {
        return Err("truncated or padded payload (length mismatch)");
    }
    let mut m = mac(secret);
    m.update(&header[..52]);
    m.update(payload);
    m.verify_slice(&header[52..84])
        .map_err(|_| "its MAC does not verify (not written by this user's flowhost, or corrupt)")?;
    Ok(payload)
}

/// Opens `path` for reading without following a symlink and without
/// blocking on a FIFO.
pub(super) fn open_no_follow(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::File::options();
    options.read(true);
    #[cfg(unix)]
    {
        use rustix::fs::OFlags;
        let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK;
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, flags.bits() as i32);
    }
    options.open(path)
}

/// Why opening a file with [`open_no_follow`] failed, in words.
pub(super) fn open_error(e: &std::io::Error) -> String {
    #[cfg(unix)]
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return "a symlink".into();
    }
    format!("cannot open it: {e}")
}

/// The file at `path`, opened without following a symlink, with its
/// metadata: `Ok(None)` when there is none, `Err` (why) when it is not a
/// regular file of this user. The checks are made on the opened handle.
pub(super) fn open_own(path: &Path) -> Result<Option<(fs::File, fs::Metadata)>, String> {
    let file = match open_no_follow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(open_error(&e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(format!(
                "owned by uid {}, not by this user (uid {me})",
                meta.uid()
            ));
        }
    }
    Ok(Some((file, meta)))
}

/// The bytes of the entry at `path`: `Ok(None)` when there is none, `Err`
/// (why) when it must be discarded unread: a symlink, not a regular file,
/// owned by another user, or larger than `max_len`. The checks are made on
/// the opened file, so the path cannot be swapped between check and read.
pub(super) fn read(path: &Path, max_len: u64) -> Result<Option<Vec<u8>>, String> {
    let Some((file, meta)) = open_own(path)? else {
        return Ok(None);
    };
    if meta.len() > max_len {
        return Err("larger than the cache's size limit".into());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&file)
        .take(max_len)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    // Refresh the mtime through the handle: eviction deletes the least
    // recently used. Only the owner may, and the owner was checked.
    let _ = file.set_modified(std::time::SystemTime::now());
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked() {
        let secret = SecretKey([1u8; 32]);
        let key = [7u8; 32];
        let payload = b"compiled code";
        let entry = seal(&secret, &key, payload);
        assert_eq!(check(&secret, &entry, &key), Ok(&payload[..]));
        assert!(check(&secret, &entry, &[8u8; 32]).is_err(), "foreign key");
        assert!(check(&secret, &entry[..entry.len() - 1], &key).is_err());
        assert!(check(&secret, &entry[..10], &key).is_err());
        let mut flipped = entry.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let mac_error = "its MAC does not verify (not written by this user's flowhost, or corrupt)";
        assert_eq!(check(&secret, &flipped, &key), Err(mac_error));
        // Under another secret, the same entry does not verify: knowing the
        // layout is not enough to forge one.
        assert_eq!(check(&SecretKey([2u8; 32]), &entry, &key), Err(mac_error));
        // Nor does an entry whose key was rewritten to another's name.
        let mut renamed = entry.clone();
        renamed[12..44].copy_from_slice(&[8u8; 32]);
        assert_eq!(check(&secret, &renamed, &[8u8; 32]), Err(mac_error));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_fifos_and_large_files_are_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real.cwasm");
        fs::write(&real, b"bytes").unwrap();
        assert_eq!(read(&real, 5).unwrap(), Some(b"bytes".to_vec()));
        assert_eq!(
            read(&real, 4).unwrap_err(),
            "larger than the cache's size limit"
        );
        assert_eq!(read(&tmp.path().join("none"), 5).unwrap(), None);
        let link = tmp.path().join("link.cwasm");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(read(&link, 5).unwrap_err(), "a symlink");
        let fifo = tmp.path().join("fifo.cwasm");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        assert_eq!(read(&fifo, 5).unwrap_err(), "not a regular file");
    }
}
