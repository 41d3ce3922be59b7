//! Planning a reconcile: the folder listing against what the table last
//! settled. Pure: no I/O, no clock, no lock of its own.

use std::path::{Path, PathBuf};

use super::kind::Kind;
use super::scan::Listing;
use super::settle::Candidate;
use super::table::Table;

/// What a reconcile has to do.
#[derive(Default)]
pub(super) struct Plan {
    /// Names that cannot be loaded as they are on disk: (name, path, error).
    pub(super) broken: Vec<(String, PathBuf, String)>,
    /// Files whose signature changed since they last settled.
    pub(super) changed: Vec<Candidate>,
    /// Names whose file is no longer listed: (name, path).
    pub(super) gone: Vec<(String, PathBuf)>,
}

impl Plan {
    /// Whether files are changing: they get the settle time first.
    pub(super) fn touches_files(&self) -> bool {
        !self.changed.is_empty() || !self.gone.is_empty()
    }
}

/// What differs between `listing` and `table`. `root` names the folder for a
/// name with two files that has no file of its own yet.
pub(super) fn plan<K: Kind>(table: &Table<K>, listing: &Listing, root: &Path) -> Plan {
    let slots = table.slots();
    let mut plan = Plan::default();
    // Names with two files: an error; the last good version keeps serving.
    for (name, error) in &listing.dups {
        let path = slots.get(name).map_or(root, |s| &s.path);
        plan.broken
            .push((name.clone(), path.to_path_buf(), error.clone()));
    }
    for (name, listed) in &listing.files {
        let sig = match &listed.sig {
            Ok(sig) => sig,
            Err(error) => {
                plan.broken
                    .push((name.clone(), listed.path.clone(), error.clone()));
                continue;
            }
        };
        let slot = slots.get(name);
        if slot.and_then(|s| s.sig.as_ref()) != Some(sig) {
            plan.changed.push(Candidate {
                name: name.clone(),
                sig: sig.clone(),
                serving: slot.and_then(|s| s.serving_hash()).map(str::to_string),
                tries: slot.map_or(0, |s| s.tries),
            });
        }
    }
    plan.gone = slots
        .iter()
        .filter(|(n, _)| !listing.files.contains_key(*n) && !listing.dups.contains_key(*n))
        .map(|(n, s)| (n.clone(), s.path.clone()))
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use futures::future::BoxFuture;

    use super::*;
    use crate::live::events::Watched;
    use crate::live::scan::{Listed, Sig};
    use crate::live::settle::{Loaded, Outcome};
    use crate::live::table::Changes;

    /// Items are the file's length.
    struct Lengths;

    impl Kind for Lengths {
        type Item = u64;
        type Snap = ();
        const WHAT: Watched = Watched::Plugin;
        fn matches(_: &Path) -> bool {
            true
        }
        fn load(&self, _: PathBuf, bytes: Vec<u8>) -> BoxFuture<'static, Result<u64, String>> {
            Box::pin(async move { Ok(bytes.len() as u64) })
        }
        fn publish<'a>(_: impl Iterator<Item = (&'a String, &'a u64)>, _: &BTreeSet<String>) {}
    }

    fn sig(name: &str, len: u64) -> Sig {
        Sig {
            path: PathBuf::from(format!("/p/{name}.wasm")),
            len,
            mtime: None,
            ino: 1,
        }
    }

    /// A table serving `a` (length 1) and `b` (length 2).
    fn table() -> Table<Lengths> {
        let mut table = Table::default();
        let mut changes = Changes::default();
        for (name, len) in [("a", 1), ("b", 2)] {
            let loaded = Loaded {
                item: len,
                hash: format!("hash-{name}"),
                size: len,
                load_time: Duration::ZERO,
                cached: false,
                sig: sig(name, len),
            };
            table.settle(name, Outcome::Loaded(loaded), &mut changes);
        }
        table
    }

    fn listing(files: &[(&str, Result<Sig, String>)], dups: &[&str]) -> Listing {
        Listing {
            files: files
                .iter()
                .map(|(name, sig)| {
                    let path = PathBuf::from(format!("/p/{name}.wasm"));
                    (
                        name.to_string(),
                        Listed {
                            path,
                            sig: sig.clone(),
                        },
                    )
                })
                .collect(),
            dups: dups
                .iter()
                .map(|n| (n.to_string(), format!("two files are named `{n}`")))
                .collect(),
        }
    }

    #[test]
    fn unchanged_files_need_nothing() {
        let listing = listing(&[("a", Ok(sig("a", 1))), ("b", Ok(sig("b", 2)))], &[]);
        let plan = plan(&table(), &listing, Path::new("/p"));
        assert!(plan.broken.is_empty() && !plan.touches_files());
    }

    #[test]
    fn a_changed_file_is_examined_against_what_serves() {
        let listing = listing(
            &[
                ("a", Ok(sig("a", 5))),
                ("b", Ok(sig("b", 2))),
                ("c", Ok(sig("c", 3))),
            ],
            &[],
        );
        let plan = plan(&table(), &listing, Path::new("/p"));
        let changed: Vec<_> = plan
            .changed
            .iter()
            .map(|c| (c.name.as_str(), c.serving.as_deref()))
            .collect();
        assert_eq!(changed, [("a", Some("hash-a")), ("c", None)]);
        assert!(plan.gone.is_empty());
    }

    #[test]
    fn duplicate_and_unreadable_files_are_broken() {
        let listing = listing(&[("b", Err("b.wasm: cannot read the file".into()))], &["a"]);
        let plan = plan(&table(), &listing, Path::new("/p"));
        let broken: Vec<_> = plan
            .broken
            .iter()
            .map(|(n, _, e)| (n.as_str(), e.as_str()))
            .collect();
        assert_eq!(
            broken,
            [
                ("a", "two files are named `a`"),
                ("b", "b.wasm: cannot read the file")
            ]
        );
        assert!(plan.changed.is_empty() && plan.gone.is_empty());
    }

    #[test]
    fn names_without_a_file_are_gone() {
        let plan = plan(&table(), &Listing::default(), Path::new("/p"));
        let gone: Vec<_> = plan.gone.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(gone, ["a", "b"]);
    }
}
