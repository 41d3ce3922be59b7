//! `step.toml`: how `flowhost dev` rebuilds a plugin from its source.
//!
//! A folder under the plugins folder that holds a `step.toml` is a plugin's
//! source:
//!
//! ```toml
//! # plugins/src/greet/step.toml
//! build = "cargo build --release --target wasm32-wasip2"
//! output = "target/wasm32-wasip2/release/greet.wasm"
//! name = "greet"   # optional; default: the folder's name
//! ```
//!
//! `build` runs with `sh -c` in that folder; `output` is relative to it.
//! After a successful build, `dev` copies `output` to `<folder>/<name>.wasm`
//! (write to a temporary file, then rename), where the plugins watcher picks
//! it up like any other change. `dev` watches the folder recursively and
//! rebuilds on any change except to `target/`, hidden files and `.wasm` files.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::Failure;

// The folder walk the library's plugins registry uses, compiled into the
// binary too: one rule for what a walk skips.
#[path = "../walk.rs"]
mod walk;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepToml {
    build: String,
    output: PathBuf,
    name: Option<String>,
}

/// One plugin built from source.
pub(crate) struct StepBuild {
    /// The folder holding `step.toml`.
    pub(crate) dir: PathBuf,
    pub(crate) name: String,
    command: String,
    output: PathBuf,
}

/// The `step.toml` files under `root` (not inside `target/` or hidden folders).
pub(crate) async fn discover(root: &Path) -> Result<Vec<StepBuild>, Failure> {
    let root = root.to_path_buf();
    // Listing a large tree is blocking I/O: keep it off the runtime. A folder
    // that cannot be read holds no builds (opening it as plugins says why).
    let files = tokio::task::spawn_blocking(move || walk::files(&root).unwrap_or_default())
        .await
        .map_err(Failure::failed)?;
    let mut found = Vec::new();
    for path in files {
        if path.file_name().is_some_and(|n| n == "step.toml") {
            found.push(parse(&path).await?);
        }
    }
    found.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(found)
}

async fn parse(path: &Path) -> Result<StepBuild, Failure> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    let spec: StepToml =
        toml::from_str(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let name = spec.name.unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "step".into())
    });
    Ok(StepBuild {
        dir,
        name,
        command: spec.build,
        output: spec.output,
    })
}

impl StepBuild {
    /// Runs the build and installs its output; reports on stderr.
    pub(crate) async fn build(&self) -> bool {
        eprintln!("[dev] building `{}`: {}", self.name, self.command);
        let started = Instant::now();
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            // The build's chatter goes to stderr; stdout is the flow's output.
            .stdout(std::io::stderr())
            .status()
            .await;
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!(
                    "[dev] build of `{}` failed ({s}); the last good version keeps serving",
                    self.name
                );
                return false;
            }
            Err(e) => {
                eprintln!("[dev] cannot run the build of `{}`: {e}", self.name);
                return false;
            }
        }
        match self.install().await {
            Ok(dest) => {
                eprintln!(
                    "[dev] built `{}` in {:.1} s -> {}",
                    self.name,
                    started.elapsed().as_secs_f64(),
                    dest.display()
                );
                true
            }
            Err(e) => {
                eprintln!("[dev] build of `{}`: {e}", self.name);
                false
            }
        }
    }

    /// Copies the output next to `step.toml`, atomically.
    async fn install(&self) -> Result<PathBuf, String> {
        let src = self.dir.join(&self.output);
        let dest = self.dir.join(format!("{}.wasm", self.name));
        let tmp = self.dir.join(format!(".{}.wasm.tmp", self.name));
        let bytes = tokio::fs::read(&src)
            .await
            .map_err(|e| format!("cannot read the output {}: {e}", src.display()))?;
        if tokio::fs::read(&dest).await.ok().as_ref() == Some(&bytes) {
            return Ok(dest); // unchanged
        }
        tokio::fs::write(&tmp, &bytes)
            .await
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(|e| format!("cannot rename into {}: {e}", dest.display()))?;
        Ok(dest)
    }
}

/// A watcher over the build folders: sends the index of a folder whose
/// sources changed.
pub(crate) type SourceWatcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

pub(crate) fn watch(
    builds: &[StepBuild],
) -> Result<(Option<SourceWatcher>, mpsc::UnboundedReceiver<usize>), Failure> {
    let (tx, rx) = mpsc::unbounded_channel();
    if builds.is_empty() {
        return Ok((None, rx));
    }
    let dirs: Vec<PathBuf> = builds
        .iter()
        .map(|b| std::fs::canonicalize(&b.dir).unwrap_or_else(|_| b.dir.clone()))
        .collect();
    let owned = dirs.clone();
    let handler = move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        let mut hit = vec![false; owned.len()];
        for event in events.iter().filter(|e| !e.kind.is_access()) {
            for path in &event.paths {
                if let Some(i) = source_of(&owned, path) {
                    hit[i] = true;
                }
            }
        }
        for (i, _) in hit.iter().enumerate().filter(|(_, h)| **h) {
            let _ = tx.send(i);
        }
    };
    let fail = |e: notify::Error| Failure::failed(format!("cannot watch the plugin sources: {e}"));
    let mut debouncer = new_debouncer(Duration::from_millis(200), None, handler).map_err(fail)?;
    for dir in &dirs {
        debouncer
            .watch(dir, RecursiveMode::Recursive)
            .map_err(fail)?;
    }
    Ok((Some(debouncer), rx))
}

/// Which build folder a changed source file belongs to, if it is a source
/// (not under `target/`, not hidden, not a `.wasm`).
fn source_of(dirs: &[PathBuf], path: &Path) -> Option<usize> {
    if path.extension().is_some_and(|e| e == "wasm") {
        return None;
    }
    let (i, dir) = dirs
        .iter()
        .enumerate()
        .filter(|(_, d)| path.starts_with(d))
        .max_by_key(|(_, d)| d.components().count())?;
    let rel = path.strip_prefix(dir).ok()?;
    (!walk::is_skipped(rel)).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_exclude_build_output() {
        let dirs = vec![PathBuf::from("/p/a"), PathBuf::from("/p/a/b")];
        assert_eq!(source_of(&dirs, Path::new("/p/a/src/lib.rs")), Some(0));
        assert_eq!(source_of(&dirs, Path::new("/p/a/b/src/lib.rs")), Some(1));
        assert_eq!(source_of(&dirs, Path::new("/p/a/target/x.rs")), None);
        assert_eq!(source_of(&dirs, Path::new("/p/a/.git/x")), None);
        assert_eq!(source_of(&dirs, Path::new("/p/a/a.wasm")), None);
        assert_eq!(source_of(&dirs, Path::new("/q/x.rs")), None);
    }
}
