//! Validation messages as data. Every flow file in `flow/fixtures/invalid/`
//! must fail to load with exactly the `file:line:column: message` lines of
//! the `.errors` file beside it; every flow file in `flow/fixtures/valid/`
//! must load. A new case is a new file (plugins named as in [`KNOWN`]).
//!
//! `FLOWHOST_UPDATE_FIXTURES=1 cargo test -p flowhost --lib flow::` writes
//! each `.errors` file from what the loader reports now: review the diff.
//!
//! [`KNOWN`]: super::KNOWN

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::known;
use crate::flow::parse_flow;

fn folder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/flow/fixtures")
        .join(name)
}

/// The files of `dir` with one of `extensions`, sorted.
fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| extensions.iter().any(|x| e == *x))
        })
        .collect();
    out.sort();
    out
}

fn flow_files(dir: &Path) -> Vec<PathBuf> {
    let out = files(dir, &["yaml", "json"]);
    assert!(!out.is_empty(), "no flow files in {}", dir.display());
    out
}

/// What loading the flow file reports, one error a line; empty when it loads.
/// Errors name the file by its file name.
fn report(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let name = Path::new(path.file_name().unwrap());
    match parse_flow(name, &text, Some(&known)) {
        Ok(_) => String::new(),
        Err(errors) => errors.iter().map(|e| format!("{e}\n")).collect(),
    }
}

#[test]
fn invalid_flows_report_the_expected_errors() {
    let dir = folder("invalid");
    let update = std::env::var_os("FLOWHOST_UPDATE_FIXTURES").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for path in flow_files(&dir) {
        let actual = report(&path);
        let expected_path = path.with_extension("errors");
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual.is_empty() {
            failures.push(format!(
                "{}: loads without errors (a valid flow belongs in fixtures/valid)",
                path.display()
            ));
            continue;
        }
        if actual == expected {
            continue;
        }
        if update {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        failures.push(format!(
            "{}:\n--- expected ({})\n+++ reported\n{}",
            path.display(),
            expected_path.display(),
            diff(&expected, &actual)
        ));
    }
    for errors in files(&dir, &["errors"]) {
        let has_flow = ["yaml", "json"]
            .iter()
            .any(|e| errors.with_extension(e).exists());
        if !has_flow {
            failures.push(format!("{}: no flow file beside it", errors.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed (FLOWHOST_UPDATE_FIXTURES=1 rewrites the .errors files):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn valid_flows_load() {
    for path in flow_files(&folder("valid")) {
        let errors = report(&path);
        assert!(errors.is_empty(), "{}:\n{errors}", path.display());
    }
}

/// A line diff: `-` an expected line not reported, `+` a reported line not
/// expected.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // common[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut common = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            common[i][j] = if a[i] == b[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        let line = if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
            format!("  {}", a[i - 1])
        } else if i < a.len() && (j == b.len() || common[i + 1][j] >= common[i][j + 1]) {
            i += 1;
            format!("- {}", a[i - 1])
        } else {
            j += 1;
            format!("+ {}", b[j - 1])
        };
        let _ = writeln!(out, "{line}");
    }
    out
}

#[test]
fn the_diff_shows_what_differs() {
    assert_eq!(
        diff("a\nb\nc\n", "a\nx\nc\nd\n"),
        "  a\n- b\n+ x\n  c\n+ d\n"
    );
}
