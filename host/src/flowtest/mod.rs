//! `flowhost test`: test files of cases run against a flow, with mocked
//! steps and virtual time, checked against what each run recorded.
//!
//! A case runs on its own current-thread runtime whose clock is paused
//! (unless the case asks for `real_time`): tokio then jumps over every wait
//! when nothing else can run, so backoffs, breaker reset timeouts and mock
//! delays take no wall time while the record (kept on tokio's clock) shows
//! their nominal spacing. Real guest calls still run under their limits:
//! fuel, memory, and the epoch deadline on the wall clock.
//!
//! - `file`: test files, parsed with positions;
//! - `expect`: a case's expectations against its run record, by JSON path;
//! - `junit`: JUnit XML for CI systems.

mod expect;
mod file;
mod junit;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use expect::{Mismatch, check};
pub use file::{Case, Expect, MAX_CASES, MAX_MOCK_ANSWERS, TestFile, parse_test_file};
pub use junit::{CaseReport, FileReport, junit_xml};

use crate::executor::{Executor, RunOptions, RunRecord};
use crate::flow::{Flow, FlowError, MAX_FLOW_FILE_BYTES, load_flow};
use crate::host::Host;
use crate::registry::{PluginSet, load_plugins, scan_dir};

/// Reads and parses a test file ([`parse_test_file`]).
///
/// # Errors
/// Every problem in the file, or one without a position when it cannot be read.
pub async fn load_test_file(path: &Path) -> Result<TestFile, Vec<FlowError>> {
    let unreadable = |message: String| vec![FlowError::whole_file(path, message)];
    let bytes = crate::bounded_read::read_capped(path, MAX_FLOW_FILE_BYTES)
        .await
        .map_err(|e| unreadable(format!("cannot read the test file: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| unreadable("cannot read the test file: not UTF-8 text".into()))?;
    parse_test_file(path, &text)
}

/// A test file ready to run: its flow checked and its plugins loaded.
#[derive(Debug)]
pub struct Suite {
    /// The test file.
    pub file: TestFile,
    flow: Arc<Flow>,
    plugins: Arc<PluginSet>,
}

impl Suite {
    /// Loads the flow `file` tests and the plugins it and its mocks use,
    /// from `plugins` (else the file's own `plugins` folder).
    ///
    /// # Errors
    /// What stops the file from running, one line each, naming the file.
    pub async fn prepare(
        host: &Host,
        file: TestFile,
        plugins: Option<&Path>,
    ) -> Result<Suite, Vec<String>> {
        let at = file.path.display().to_string();
        let Some(dir) = plugins.map(Path::to_path_buf).or(file.plugins.clone()) else {
            return Err(vec![format!(
                "{at}: no plugins folder: give `plugins:` in the file or --plugins"
            )]);
        };
        let scan_at = dir.clone();
        let files = tokio::task::spawn_blocking(move || scan_dir(&scan_at))
            .await
            .map_err(|e| vec![e.to_string()])?
            .map_err(|e| vec![format!("{at}: {e}")])?;
        let known = |name: &str| files.contains_key(name);
        let flow = load_flow(&file.flow, Some(&known))
            .await
            .map_err(|errors| errors.iter().map(FlowError::to_string).collect::<Vec<_>>())?;
        let mut names: BTreeSet<&str> = flow.plugin_names();
        let mocked: Vec<&str> = file.cases.iter().flat_map(|c| c.mocks.plugins()).collect();
        let missing: Vec<String> = mocked
            .iter()
            .filter(|n| !files.contains_key(**n))
            .map(|n| format!("{at}: mock plugin `{n}` is not in {}", dir.display()))
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        names.extend(mocked);
        let (set, errors) = load_plugins(host, &files, names).await;
        if !errors.is_empty() {
            return Err(errors.iter().map(ToString::to_string).collect());
        }
        Ok(Suite {
            file,
            flow: Arc::new(flow),
            plugins: Arc::new(set),
        })
    }

    /// The flow under test.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    /// Runs `case` on a fresh executor (no breaker state from another case)
    /// and checks its record.
    pub async fn run(&self, host: &Host, case: &Case) -> CaseOutcome {
        let started = Instant::now();
        // Key-value state in memory, fresh for each case; it expires on the
        // case's (virtual) time.
        let kv = Arc::new(crate::kv::MemoryKv::new());
        let exec = Executor::with_services(host.clone(), crate::Services::new().kv(kv));
        let (flow, plugins) = (self.flow.clone(), self.plugins.clone());
        let input = case.input.clone();
        let options = RunOptions {
            mocks: Some(Arc::new(case.mocks.clone())),
            ..RunOptions::default()
        };
        let paused = !case.real_time;
        let ran = tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(paused)
                .build()?;
            Ok::<_, std::io::Error>(rt.block_on(exec.run(&flow, &plugins, input, options)))
        })
        .await;
        let record = match ran {
            Ok(Ok(record)) => record,
            Ok(Err(e)) => return CaseOutcome::broken(started, format!("no runtime: {e}")),
            Err(e) => return CaseOutcome::broken(started, format!("the run failed: {e}")),
        };
        CaseOutcome {
            mismatches: check(&case.expect, &record),
            record: Some(record),
            wall: started.elapsed(),
        }
    }
}

/// What one case did.
#[derive(Debug)]
pub struct CaseOutcome {
    /// How its run differs from what it expected; empty when it passed.
    pub mismatches: Vec<Mismatch>,
    /// Its run's record (`None` when the run could not happen).
    pub record: Option<RunRecord>,
    /// The wall time it took.
    pub wall: Duration,
}

impl CaseOutcome {
    fn broken(started: Instant, why: String) -> Self {
        CaseOutcome {
            mismatches: vec![Mismatch {
                path: "$".into(),
                expected: "a run".into(),
                actual: why,
            }],
            record: None,
            wall: started.elapsed(),
        }
    }

    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// The test files under `path`: the file itself, or every
/// `*.test.yaml`, `*.test.yml` and `*.test.json` in a folder (recursively,
/// hidden entries and `target/` skipped), sorted.
///
/// # Errors
/// When a folder cannot be read.
pub fn find_test_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found: Vec<PathBuf> = crate::walk::files(path)
        .map_err(|e| format!("{}: cannot read the folder: {e}", path.display()))?
        .into_iter()
        .filter(|p| is_test_file(p))
        .collect();
    found.sort();
    Ok(found)
}

/// Whether `path` names a test file: `*.test.yaml`, `*.test.yml` or
/// `*.test.json`. A flows folder passes over them, so that tests can sit
/// beside their flows.
pub fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_ascii_lowercase)
        .is_some_and(|n| {
            [".test.yaml", ".test.yml", ".test.json"]
                .iter()
                .any(|s| n.ends_with(s))
        })
}
