//! The compile cache's secret key: entries carry an HMAC-SHA256 under it,
//! so only this user's flowhost can have written an entry that loads.
//!
//! It lives outside the cache directory (anyone who could ever write that
//! directory must not have been able to read or plant the key):
//! `$FLOWHOST_CACHE_KEY` (a file), else `$XDG_CONFIG_HOME/flowhost/cache.key`,
//! else `~/.config/flowhost/cache.key`. It is created on first use with
//! mode 0600, 32 random bytes from `/dev/urandom` in hex; a key file that is
//! a symlink, not a regular file, owned by another user or readable by
//! others is refused.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::CacheError;

/// The secret key's length in bytes.
const KEY_LEN: usize = 32;

/// A secret key for entry MACs.
pub(crate) struct SecretKey(pub(super) [u8; KEY_LEN]);

/// Where the key is: `$FLOWHOST_CACHE_KEY`, else
/// `$XDG_CONFIG_HOME/flowhost/cache.key`, else
/// `~/.config/flowhost/cache.key`. `None` when none of those variables is set.
pub fn cache_key_file() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(file) = var("FLOWHOST_CACHE_KEY") {
        return Some(PathBuf::from(file));
    }
    let config = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("flowhost").join("cache.key"))
}

/// [`cache_key_file`], or an error when there is no place for the key.
pub(crate) fn locate() -> Result<PathBuf, CacheError> {
    cache_key_file().ok_or_else(|| CacheError::Key {
        path: PathBuf::from("cache.key"),
        message: "no place for it: set FLOWHOST_CACHE_KEY, XDG_CONFIG_HOME or HOME".into(),
    })
}

/// The key in the file at `path`, created if there is none, for the cache
/// at `dir`. Blocking file I/O.
pub(crate) fn load_or_create(path: &Path, dir: &Path) -> Result<SecretKey, CacheError> {
    let fail = |message: String| CacheError::Key {
        path: path.to_path_buf(),
        message,
    };
    if is_inside(path, dir) {
        return Err(fail(
            "it is inside the cache directory; keep it where only its owner could ever write"
                .into(),
        ));
    }
    match read_key(path) {
        Ok(Some(key)) => return Ok(key),
        Ok(None) => {}
        Err(message) => return Err(fail(message)),
    }
    create_key(path).map_err(fail)?;
    // Read back what won: this process's key or a concurrent one's.
    read_key(path)
        .map_err(fail)?
        .ok_or_else(|| fail("it vanished after it was created".into()))
}

/// Whether `file` would be inside `dir` (both resolved as far as they exist).
fn is_inside(file: &Path, dir: &Path) -> bool {
    let resolve = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let parent = file.parent().map(resolve).unwrap_or_default();
    parent.starts_with(resolve(dir))
}

/// The key at `path`, `None` when there is no file, or why it is refused.
fn read_key(path: &Path) -> Result<Option<SecretKey>, String> {
    let Some((file, meta)) = super::entry::open_own(path)? else {
        return Ok(None);
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "mode is {mode:o}: others could read it; it must be 600"
            ));
        }
    }
    let mut text = String::new();
    file.take(4 * KEY_LEN as u64)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read it: {e}"))?;
    let text = text.trim();
    let mut key = [0u8; KEY_LEN];
    let valid = text.len() == 2 * KEY_LEN
        && key.iter_mut().enumerate().all(|(i, b)| {
            text.get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .map(|v| *b = v)
                .is_some()
        });
    if !valid {
        return Err(format!(
            "not a cache key ({} hex digits expected)",
            2 * KEY_LEN
        ));
    }
    Ok(Some(SecretKey(key)))
}

/// Creates the key file (and its folder, 0700) with mode 0600. Another
/// process creating it at the same time is fine: the first one wins.
fn create_key(path: &Path) -> Result<(), String> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(folder) = folder {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(folder)
            .map_err(|e| format!("cannot create its folder: {e}"))?;
    }
    let mut key = [0u8; KEY_LEN];
    fs::File::open("/dev/urandom")
        .and_then(|mut r| r.read_exact(&mut key))
        .map_err(|e| format!("cannot read random bytes from /dev/urandom: {e}"))?;
    let text = format!("{}\n", super::hex(&key));
    // Written whole to a temporary file, then linked into place, so that no
    // reader sees half a key and no writer replaces another's.
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let written = write_private(&tmp, text.as_bytes()).and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            tracing::info!(key = %path.display(), "compile cache: created a new secret key");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create it: {e}")),
    }
}

/// Writes a new file readable only by its owner.
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::File::options();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn refused(path: &Path, dir: &Path) -> String {
        match load_or_create(path, dir) {
            Ok(_) => panic!("the key file was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_key_is_created_private_then_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, dir) = (
            tmp.path().join("config/flowhost/cache.key"),
            tmp.path().join("cache"),
        );
        let first = load_or_create(&path, &dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(load_or_create(&path, &dir).unwrap().0, first.0);
        let other = tmp.path().join("other.key");
        assert_ne!(load_or_create(&other, &dir).unwrap().0, first.0, "random");
    }

    #[test]
    fn a_key_file_others_could_read_or_plant_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let path = tmp.path().join("cache.key");
        load_or_create(&path, &dir).unwrap();

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = refused(&path, &dir);
        assert_eq!(
            e,
            format!(
                "compile cache key {}: mode is 644: others could read it; it must be 600",
                path.display()
            )
        );

        let link = tmp.path().join("link.key");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(refused(&link, &dir).ends_with(": a symlink"));

        fs::write(tmp.path().join("short.key"), "abc").unwrap();
        let short = tmp.path().join("short.key");
        fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(refused(&short, &dir).ends_with("not a cache key (64 hex digits expected)"));

        let inside = dir.join("cache.key");
        assert!(refused(&inside, &dir).ends_with(
            "it is inside the cache directory; keep it where only its owner could ever write"
        ));
        assert!(!inside.exists(), "not created");
    }

    /// Run as root, a key file of another user is refused.
    #[test]
    fn a_key_file_of_another_user_is_refused() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cache.key");
        load_or_create(&path, &tmp.path().join("cache")).unwrap();
        std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
        let e = refused(&path, &tmp.path().join("cache"));
        assert!(
            e.ends_with("owned by uid 4242, not by this user (uid 0)"),
            "{e}"
        );
    }
}
