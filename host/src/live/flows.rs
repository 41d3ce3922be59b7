//! Flow files as a live registry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;

use super::core::{Core, shared_methods};
use super::events::Watched;
use super::kind::Kind;
use super::options::{WatchError, WatchOptions};
use super::scan::Root;
use crate::flow::{Flow, FlowError, parse_flow};

/// Flow files as a live registry: a folder of `.yaml`, `.yml` and `.json`
/// flows (by file stem), or one flow file. Each is validated before it
/// replaces the previous definition; a run holds the `Arc<Flow>` it started
/// with.
#[derive(Clone)]
pub struct LiveFlows {
    core: Arc<Core<FlowKind>>,
}

impl std::fmt::Debug for LiveFlows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFlows").finish_non_exhaustive()
    }
}

impl LiveFlows {
    /// Loads the flows in `path` (a folder, or one flow file), then watches it.
    pub async fn open(path: impl AsRef<Path>, options: WatchOptions) -> Result<Self, WatchError> {
        let path = path.as_ref();
        let root = match tokio::fs::metadata(path).await {
            Ok(m) if m.is_dir() => Root::Dir(path.to_path_buf()),
            Ok(_) => Root::File(path.to_path_buf()),
            Err(e) => {
                return Err(WatchError::Read {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        };
        let core = Core::start(FlowKind, root, options, true).await?;
        Ok(LiveFlows { core })
    }

    /// The flow from the file with stem `name`, as it is now.
    pub fn get(&self, name: &str) -> Option<Arc<Flow>> {
        self.core.snap.load().flows.get(name).cloned()
    }

    /// Every flow, by file stem.
    pub fn all(&self) -> BTreeMap<String, Arc<Flow>> {
        self.core.snap.load().flows.clone()
    }

    shared_methods!();
}

/// Flows: YAML or JSON files, parsed and validated.
struct FlowKind;

#[derive(Default)]
struct FlowSnap {
    flows: BTreeMap<String, Arc<Flow>>,
}

impl Kind for FlowKind {
    type Item = Arc<Flow>;
    type Snap = FlowSnap;
    const WHAT: Watched = Watched::Flow;
    const MAX_LEN: u64 = crate::flow::MAX_FLOW_FILE_BYTES;

    fn matches(path: &Path) -> bool {
        // Test files (`NAME.test.yaml`) sit beside flows but are not flows.
        !crate::flowtest::is_test_file(path)
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"))
    }

    fn load(&self, path: PathBuf, bytes: Vec<u8>) -> BoxFuture<'static, Result<Arc<Flow>, String>> {
        Box::pin(async move {
            let parsed = tokio::task::spawn_blocking(move || {
                let text = String::from_utf8(bytes)
                    .map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
                parse_flow(&path, &text, None).map_err(|errors| {
                    let lines: Vec<_> = errors.iter().map(FlowError::to_string).collect();
                    lines.join("\n")
                })
            })
            .await
            .map_err(|e| format!("flow parser task failed: {e}"))?;
            parsed.map(Arc::new)
        })
    }

    fn publish<'a>(
        items: impl Iterator<Item = (&'a String, &'a Arc<Flow>)>,
        _removed: &BTreeSet<String>,
    ) -> FlowSnap {
        FlowSnap {
            flows: items.map(|(n, f)| (n.clone(), f.clone())).collect(),
        }
    }
}
