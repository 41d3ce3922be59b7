//! Reading a file a user dropped into a folder or named on the command line:
//! only a regular file is read (a FIFO or a device is refused without
//! blocking on its open), and never more than a cap (plus one byte, to tell
//! "too large"), so a huge file or a symlink to `/dev/zero` costs at most the
//! cap and a `mkfifo` cannot stall a reload or a shutdown.

use std::io::{self, Read};
use std::path::Path;

/// The whole file at `path`, if it is a regular file of at most `cap` bytes;
/// off the async runtime.
///
/// # Errors
/// As [`read_regular`].
pub(crate) async fn read_capped(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || read_regular(&path, cap))
        .await
        .map_err(io::Error::other)?
}

/// The whole file at `path`, if it is a regular file of at most `cap` bytes.
/// Blocking file I/O: async callers use [`read_capped`].
///
/// # Errors
/// An I/O error; `InvalidInput` for anything but a regular file (a FIFO, a
/// device, a folder); `FileTooLarge` (naming the cap) past `cap` bytes.
pub(crate) fn read_regular(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading blocks until a writer comes; non-blocking,
    // it returns at once, and the type check below refuses it.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        rustix::fs::OFlags::NONBLOCK.bits() as i32,
    );
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, a device or a folder), so it is not read",
        ));
    }
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "the file is larger than {}, the limit",
                bytesize::ByteSize(cap).display().iec()
            ),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_up_to_the_cap_and_no_further() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_capped(&path, 5).await.unwrap(), b"12345");
        let err = read_capped(&path, 4).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(err.to_string(), "the file is larger than 4 B, the limit");
        // An endless file costs the cap, not all memory.
        #[cfg(unix)]
        {
            let zero = tmp.path().join("zero");
            std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
            let err = read_capped(&zero, 1 << 20).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            // Nor does a FIFO with no writer block the read.
            let fifo = tmp.path().join("fifo");
            rustix::fs::mkfifoat(
                rustix::fs::CWD,
                &fifo,
                rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            )
            .unwrap();
            let err = read_capped(&fifo, 1 << 20).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        }
    }
}
