//! Opening a store file: the checks that run before SQLite writes a byte.
//!
//! Every refusal names the file and leaves it byte-for-byte as it was:
//! - the file and its header are read through a plain file descriptor (not
//!   SQLite), so a file that is not a SQLite database is never handed to it;
//! - the server's exclusive `flock` on the file is taken next (SQLite's own
//!   locks are `fcntl` locks: the two do not interfere);
//! - writability is checked from the permissions, so a read-only file is
//!   refused rather than opened read-only in silence (root, who may write
//!   anything, is refused a file nobody may write too);
//! - the schema is inspected through a read-only connection, which cannot
//!   write even to recover a journal; only then is the file opened for
//!   writing, switched to WAL and migrated.
//!
//! The descriptor that holds the lock is kept for the store's life and
//! closed last: closing any descriptor of the file drops the process's
//! `fcntl` locks on it, SQLite's included.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use rustix::fs::{Access, FlockOperation};

use crate::store::StoreError;

/// The first 16 bytes of every SQLite database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The size of a SQLite file header.
const HEADER: usize = 100;
/// How long a connection waits on another process's lock (a reader
/// recovering the WAL, a checkpoint) before reporting busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// The server's store: created when missing, locked, written.
    Write,
    /// A reader beside a running server: never created, locked or written.
    Read,
}

/// A store file that passed the checks made before SQLite opens it.
#[derive(Debug)]
pub(super) struct Probed {
    /// The file, held open (and in [`Mode::Write`], locked) for the store's life.
    pub(super) file: File,
    /// The file had no bytes: a new store.
    pub(super) empty: bool,
}

/// The file as shown in messages.
pub(super) fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Checks the file at `path` (creating it and its folder in
/// [`Mode::Write`] when missing) and, in [`Mode::Write`], locks it.
pub(super) fn probe(path: &Path, mode: Mode) -> Result<Probed, StoreError> {
    let name = shown(path);
    let not_a_store = |why: &str| StoreError::NotAStore {
        path: name.clone(),
        why: why.to_string(),
    };
    let folder = folder_of(path);
    let existing = match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Err(not_a_store("it is a folder")),
        Ok(meta) if !meta.is_file() => return Err(not_a_store("it is not a regular file")),
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_error(&name, e)),
    };
    let file = match (existing, mode) {
        (true, _) => File::open(path).map_err(|e| io_error(&name, e))?,
        (false, Mode::Read) => {
            return Err(StoreError::Backend(format!(
                "{name}: no store there (the file does not exist)"
            )));
        }
        (false, Mode::Write) => {
            if !folder.exists() {
                fs::create_dir_all(&folder).map_err(|e| io_error(&name, e))?;
            }
            writable(&folder, &name, "its folder")?;
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| io_error(&name, e))?
        }
    };
    let len = file.metadata().map_err(|e| io_error(&name, e))?.len();
    let mut header = [0u8; HEADER];
    let read = read_prefix(&file, &mut header).map_err(|e| io_error(&name, e))?;
    if len > 0 {
        check_header(&header[..read], len).map_err(|why| not_a_store(&why))?;
    } else if mode == Mode::Read {
        return Err(not_a_store("the file is empty"));
    }
    if mode == Mode::Write {
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(StoreError::Locked { path: name }),
            Err(e) => return Err(io_error(&name, e.into())),
        }
        writable(path, &name, "the file")?;
        writable(&folder, &name, "its folder")?;
    }
    Ok(Probed {
        file,
        empty: len == 0,
    })
}

/// The folder holding `path` (and its `-wal` and `-shm` files).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads up to `buf.len()` bytes from the start of `file`.
fn read_prefix(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut read = 0;
    while read < buf.len() {
        match file.read_at(&mut buf[read..], read as u64)? {
            0 => break,
            n => read += n,
        }
    }
    Ok(read)
}

/// Why a file of `len` bytes starting with `header` is not a SQLite
/// database SQLite could open, if it is not.
fn check_header(header: &[u8], len: u64) -> Result<(), String> {
    if header.len() < MAGIC.len() || &header[..MAGIC.len()] != MAGIC {
        return Err("it is not a SQLite file".into());
    }
    let corrupt = |what: &str| Err(format!("a corrupt SQLite file: {what}"));
    if header.len() < HEADER {
        return corrupt("shorter than a SQLite header");
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return corrupt("its header names no valid page size");
    }
    if !(1..=2).contains(&header[18]) || !(1..=2).contains(&header[19]) {
        return corrupt("its header names an unknown file format");
    }
    if header[21..24] != [64, 32, 32] {
        return corrupt("its header is damaged");
    }
    if !len.is_multiple_of(page_size) {
        return corrupt(&format!(
            "its size ({len} bytes) is not a whole number of {page_size}-byte pages (truncated?)"
        ));
    }
    Ok(())
}

/// Refuses a file or folder that cannot be written, or that nobody may write.
fn writable(path: &Path, name: &str, what: &str) -> Result<(), StoreError> {
    let read_only = |why: String| StoreError::ReadOnly {
        path: name.to_string(),
        why,
    };
    let meta = fs::metadata(path).map_err(|e| io_error(name, e))?;
    if meta.permissions().mode() & 0o222 == 0 {
        return Err(read_only(format!(
            "{what} is read-only (mode {:o})",
            meta.permissions().mode() & 0o7777
        )));
    }
    rustix::fs::access(path, Access::WRITE_OK).map_err(|e| {
        let e: io::Error = e.into();
        read_only(format!("{what}: {e}"))
    })
}

/// An I/O error about the store's file.
fn io_error(name: &str, e: io::Error) -> StoreError {
    let read_only = e.kind() == io::ErrorKind::PermissionDenied
        || e.kind() == io::ErrorKind::ReadOnlyFilesystem;
    if read_only {
        StoreError::ReadOnly {
            path: name.to_string(),
            why: e.to_string(),
        }
    } else {
        StoreError::Backend(format!("{name}: {e}"))
    }
}

/// A SQLite error about the store's file, typed where it can be.
pub(super) fn sqlite_error(name: &str, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::NotAStore {
            path: name.to_string(),
            why: format!("a corrupt SQLite file: {e}"),
        },
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly {
            path: name.to_string(),
            why: e.to_string(),
        },
        _ => StoreError::Backend(format!("{name}: {e}")),
    }
}

/// A read-only connection: it cannot write the file, not even to roll back
/// a hot journal.
pub(super) fn read_connection(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    connect(path, flags)
}

/// The writer's connection, on a file [`probe`] created or checked.
pub(super) fn write_connection(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = connect(path, flags)?;
    let name = shown(path);
    if conn
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(|e| sqlite_error(&name, e))?
    {
        return Err(StoreError::ReadOnly {
            path: name,
            why: "SQLite could open it for reading only".into(),
        });
    }
    Ok(conn)
}

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let name = shown(path);
    let conn = Connection::open_with_flags(path, flags).map_err(|e| sqlite_error(&name, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sqlite_error(&name, e))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut h = vec![0u8; HEADER];
        h[..16].copy_from_slice(MAGIC);
        h[16..18].copy_from_slice(&4096u16.to_be_bytes());
        h[18] = 2;
        h[19] = 2;
        h[21..24].copy_from_slice(&[64, 32, 32]);
        h
    }

    #[test]
    fn the_header_check_names_what_is_wrong() {
        assert_eq!(check_header(&header(), 8192), Ok(()));
        let e = check_header(b"hello, world", 12).unwrap_err();
        assert_eq!(e, "it is not a SQLite file");
        let e = check_header(&header()[..50], 50).unwrap_err();
        assert!(e.contains("shorter than a SQLite header"), "{e}");
        let mut h = header();
        h[16..18].copy_from_slice(&1000u16.to_be_bytes());
        let e = check_header(&h, 8192).unwrap_err();
        assert!(e.contains("no valid page size"), "{e}");
        let e = check_header(&header(), 6000).unwrap_err();
        assert!(e.contains("6000 bytes") && e.contains("truncated"), "{e}");
        let mut h = header();
        h[22] = 0;
        assert!(check_header(&h, 8192).unwrap_err().contains("damaged"));
    }
}
