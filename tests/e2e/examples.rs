//! Every example flow in `flows/examples/` runs on its `flows/data/NAME.input.json`
//! to the output in `flows/data/NAME.output.json`, as `flowhost run NAME.yaml
//! --plugins plugins/dist --input @NAME.input.json` would run it (a fresh
//! executor per run). A new example is tested by adding its three files;
//! `FLOWHOST_UPDATE_FIXTURES=1` writes the output files from the runs
//! (check them by eye). An example with a `NAME.toml` gets the databases it
//! declares, in a fresh folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flowhost::ErrorKind;
use flowhost::executor::StepStatus::{self, Continued, Recovered, Succeeded};
use flowhost::flow::Flow;
use flowhost::{Executor, PluginSet, RunRecord, RunStatus};
use serde_json::{Value, json};

use crate::support::{dist_all, host, parse_at, plugin_once, plugin_set, root, run_parsed, step};

fn examples() -> PathBuf {
    root().join("flows/examples")
}

/// Examples whose run fails by design: their own tests below.
const FAILING: [&str; 1] = ["on_error"];

/// Examples that need plugins `plugins/build.sh` does not build: their own
/// test, after `plugins/build-all.sh`.
const OTHER_TOOLCHAINS: [&str; 1] = ["polyglot"];

/// What some steps of the examples' records must show besides the output:
/// (example, step path, status, attempts, whether its breaker was open).
const STEPS: &[(&str, &str, StepStatus, usize, bool)] = &[
    (
        "orders",
        "each_order[0].notify.gold_note",
        Succeeded,
        1,
        false,
    ),
    ("orders", "each_order[1].notify.note", Succeeded, 1, false),
    ("retry", "fetch", Succeeded, 3, false),
    // Two calls, then the breaker refused the third.
    ("circuit_breaker", "quote", Recovered, 2, true),
    ("fallback", "primary", Recovered, 1, false),
    // Deadline errors are retried.
    ("timeouts", "slow", Recovered, 2, false),
    ("continue_on_error", "optional_audit", Continued, 1, false),
    ("on_error", "on_error", Succeeded, 1, false),
];

/// A generous bound on any example's run: `timeouts` cuts a 5 s step.
const WITHIN: Duration = Duration::from_secs(2);

/// The example names: every `NAME.yaml`, sorted.
fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(examples())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".yaml")?;
            (!stem.contains('.')).then(|| stem.to_string())
        })
        .collect();
    names.sort();
    names
}

/// An example's input or expected output, in `flows/data/` (outside the
/// examples folder, which `flowhost serve --flows` loads as flows).
fn file(name: &str, suffix: &str) -> PathBuf {
    root().join("flows/data").join(format!("{name}{suffix}"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn flow_file(name: &str) -> PathBuf {
    examples().join(format!("{name}.yaml"))
}

fn flow(name: &str) -> Flow {
    let path = flow_file(name);
    parse_at(&path, &std::fs::read_to_string(&path).unwrap())
}

async fn run_with(name: &str, flow: &Flow, plugins: &PluginSet) -> RunRecord {
    let input = read_json(&file(name, ".input.json"));
    // An example with a `NAME.toml` gets its databases, as `flowhost run
    // --config` opens them, but in a fresh folder rather than beside the file.
    let data = tempfile::tempdir().unwrap();
    let mut services = flowhost::Services::new();
    let config = examples().join(format!("{name}.toml"));
    if config.exists() {
        let settings =
            flowhost::server::ServerConfig::from_toml(&std::fs::read_to_string(&config).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let databases = flowhost::sql::Databases::open(&settings.databases, data.path())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        services = services.databases(std::sync::Arc::new(databases));
    }
    Executor::with_services(host().clone(), services)
        .run(flow, plugins, input, flowhost::RunOptions::default())
        .await
}

async fn run_example(name: &str) -> RunRecord {
    let flow = flow(name);
    run_with(name, &flow, &plugin_set(&flow).await).await
}

/// What is wrong with an example's run, if anything: its output against
/// `NAME.output.json` (rewritten instead with `FLOWHOST_UPDATE_FIXTURES=1`),
/// its steps against [`STEPS`], its duration against [`WITHIN`].
fn check(name: &str, record: &RunRecord) -> Result<(), String> {
    if record.status != RunStatus::Succeeded {
        return Err(format!("{}: {:?}", record.status, record.error));
    }
    let output = record.output_value().ok_or("no output")?;
    let path = file(name, ".output.json");
    if std::env::var_os("FLOWHOST_UPDATE_FIXTURES").is_some_and(|v| v == "1") {
        let text = serde_json::to_string_pretty(&output).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    } else if !path.exists() {
        return Err(format!("no {}", path.display()));
    } else if output != read_json(&path) {
        return Err(format!(
            "the output differs from {}; the run gave:\n{}",
            path.display(),
            serde_json::to_string_pretty(&output).unwrap()
        ));
    }
    check_steps(name, record)?;
    if record.duration_ms > WITHIN.as_secs_f64() * 1e3 {
        return Err(format!("took {} ms", record.duration_ms));
    }
    Ok(())
}

fn check_steps(name: &str, record: &RunRecord) -> Result<(), String> {
    for &(_, path, status, attempts, breaker_open) in STEPS.iter().filter(|s| s.0 == name) {
        let s = step(record, path);
        let seen = (s.status, s.attempts.len(), s.breaker_open);
        if seen != (status, attempts, breaker_open) {
            return Err(format!(
                "step {path}: (status, attempts, breaker open) {seen:?}, expected {:?}",
                (status, attempts, breaker_open)
            ));
        }
    }
    Ok(())
}

#[test]
fn every_example_parses_and_has_its_files() {
    let names = names();
    for name in &names {
        let path = flow_file(name);
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(errors) = flowhost::flow::parse_flow(&path, &text, None) {
            panic!("{}: {errors:?}", path.display());
        }
        assert!(
            file(name, ".input.json").exists(),
            "{name}.input.json is missing"
        );
        assert!(
            FAILING.contains(&name.as_str()) || file(name, ".output.json").exists(),
            "{name}.output.json is missing: run with FLOWHOST_UPDATE_FIXTURES=1 and check it"
        );
    }
    for name in FAILING.iter().chain(&OTHER_TOOLCHAINS) {
        assert!(names.contains(&name.to_string()), "example {name} is gone");
    }
    for (name, ..) in STEPS {
        assert!(names.contains(&name.to_string()), "example {name} is gone");
    }
}

#[tokio::test]
async fn every_example_gives_its_expected_output() {
    let mut failures = Vec::new();
    let special = |n: &str| FAILING.contains(&n) || OTHER_TOOLCHAINS.contains(&n);
    for name in names().iter().filter(|n| !special(n)) {
        let record = run_example(name).await;
        if let Err(why) = check(name, &record) {
            failures.push(format!("{name}.yaml: {why}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn polyglot() {
    // Every language's plugins, by name, as `--plugins plugins/dist` sees them.
    let dist = dist_all();
    let files = flowhost::scan_dir(dist).unwrap();
    let flow = flow("polyglot");
    let mut plugins = Vec::new();
    for name in flow.plugin_names() {
        let key = files[name].strip_prefix(dist).unwrap().with_extension("");
        plugins.push(plugin_once(&key.to_string_lossy()).await);
    }
    let record = run_with("polyglot", &flow, &PluginSet::new(plugins)).await;
    if let Err(why) = check("polyglot", &record) {
        panic!("polyglot.yaml: {why}");
    }
}

#[tokio::test]
async fn on_error() {
    let record = run_example("on_error").await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind.as_str()),
        ("charge", "permanent")
    );
    check_steps("on_error", &record).unwrap();
}

#[tokio::test]
async fn orders_input_schema() {
    let record = run_parsed(
        &Executor::new(host().clone()),
        &flow("orders"),
        json!({"orders": [{"id": "X", "customer": "y"}]}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!(error.kind, ErrorKind::InvalidInput);
    assert!(error.message.contains("items"), "{}", error.message);
}
