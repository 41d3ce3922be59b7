//! Walking a folder tree, the one way every reader of a plugins or sources
//! folder does it.
//!
//! Hidden entries and `target` entries are skipped (editor temp files, build
//! output); symlinked files count, symlinked folders are not followed (no
//! loops). All of it is blocking file I/O: async callers run it in
//! `spawn_blocking`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Whether a walk passes over an entry called `name`.
fn skipped(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || name == "target"
}

/// Whether `rel`, a path relative to a walked folder, lies where a walk does
/// not go (under a hidden or `target` entry, or is one).
pub(crate) fn is_skipped(rel: &Path) -> bool {
    rel.components().any(|c| skipped(c.as_os_str()))
}

/// Every file under `root` (recursively), in no particular order: anything
/// that is not a folder, symlinks included.
///
/// An unreadable `root` is an error; a subfolder that cannot be read or
/// vanishes while listing is passed over.
pub(crate) fn files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if dir == root => return Err(e),
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            if skipped(&entry.file_name()) {
                continue;
            }
            // `file_type` does not follow symlinks: a symlinked folder is
            // listed as a file, never entered.
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                pending.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_entries_and_build_output_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in ["a/b", ".git", "target", "a/target"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "x",
            "a/y",
            "a/b/z",
            ".hidden",
            "a/.swp",
            ".git/c",
            "target/t",
            "a/target/u",
        ] {
            std::fs::write(root.join(file), b"").unwrap();
        }
        let mut found: Vec<_> = files(root)
            .unwrap()
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        found.sort();
        let want: Vec<PathBuf> = ["a/b/z", "a/y", "x"].iter().map(PathBuf::from).collect();
        assert_eq!(found, want);
        assert!(files(&root.join("missing")).is_err());

        assert!(is_skipped(Path::new("target/x.rs")));
        assert!(is_skipped(Path::new("src/.x.swp")));
        assert!(!is_skipped(Path::new("src/lib.rs")));
    }
}
