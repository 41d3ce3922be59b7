//! Reading a file through a size cap: never more than the cap (plus one
//! byte, to tell "too large") is read, so a huge file or a symlink to
//! `/dev/zero` costs at most the cap.

use std::io;
use std::path::Path;

use tokio::io::AsyncReadExt;

/// The whole file at `path`, if it holds at most `cap` bytes.
///
/// # Errors
/// An I/O error, or `FileTooLarge` (naming the cap) past `cap` bytes.
pub(crate) async fn read_capped(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let file = tokio::fs::File::open(path).await?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .await?;
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
            assert_eq!(
                err.to_string(),
                "the file is larger than 1.0 MiB, the limit"
            );
        }
    }
}
