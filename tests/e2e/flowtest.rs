//! `flowhost test`: test files run as a user runs them (the binary on files
//! in a temporary folder), their output, exit codes and JUnit report; the
//! example flows' own test files; virtual time through the library.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flowhost::flowtest::{Suite, parse_test_file};

use crate::support::{dist, flowhost, host, root, run};

/// A shop flow: a real step, a priced step (`flaky` never fails unless
/// mocked: it answers `{attempt, input}`) with retries 10 s apart, a
/// breaker on its plugin and a fallback, and a real step after it.
const FLOW: &str = r#"
flow: shop
steps:
  - id: load
    plugin: echo
  - id: price
    plugin: flaky
    retry: {max_attempts: 5, initial_interval: 10s, backoff_coefficient: 1, jitter: none}
    circuit_breaker: {failure_threshold: 4, reset_timeout: 1m}
    fallback:
      plugin: echo
      input: {source: fallback, reason: "${error.kind}"}
  - id: done
    plugin: echo
"#;

/// A folder with the shop flow and `shop.test.yaml` holding `cases`.
fn project(cases: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.yaml"), FLOW).unwrap();
    let file = dir.path().join("shop.test.yaml");
    std::fs::write(&file, format!("flow: shop.yaml\ncases:\n{cases}")).unwrap();
    (dir, file)
}

/// `flowhost test ARGS... --plugins DIST`: exit code, stdout, stderr.
fn flowhost_test(args: &[&str]) -> (i32, String, String) {
    run(flowhost()
        .arg("test")
        .args(args)
        .arg("--plugins")
        .arg(dist()))
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn every_example_flow_has_a_test_file_and_it_passes() {
    let examples = root().join("flows/examples");
    for entry in std::fs::read_dir(&examples).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".yaml") else {
            continue;
        };
        if !stem.contains('.') {
            let test = examples.join(format!("{stem}.test.yaml"));
            assert!(test.exists(), "{name} has no test file {}", test.display());
        }
    }
    let (code, out, err) = flowhost_test(&[arg(&examples)]);
    assert_eq!(code, 0, "{out}\n{err}");
    let summary = out.lines().last().unwrap();
    assert!(summary.ends_with(" passed, 0 failed"), "{out}");
    assert!(!out.contains('✗'), "{out}");
}

/// Each expectation kind, once met and once not: the met ones pass, the
/// others fail with the difference at its JSON path.
#[test]
fn each_expectation_kind_passes_and_fails_when_it_should() {
    let (_dir, file) = project(
        r#"
  - name: met
    input: {sku: A}
    mock:
      price: [{error: transient, message: "503 upstream"}, {output: {sku: A, total: 12}}]
    expect:
      status: succeeded
      output: {sku: A, total: 12}
      output_contains: {total: 12.0}
      min_duration: 10s
      max_duration: 11s
      steps:
        price: {status: succeeded, attempts: 2, breaker_open: false, mocked: true}
        load: {status: succeeded, mocked: false}
  - name: unmet output
    input: {sku: A}
    mock: {price: {output: {sku: A, total: 13, extra: 1}}}
    expect: {output: {sku: A, total: 12}}
  - name: unmet subset
    input: {sku: A}
    mock: {price: {output: {sku: A, lines: [1, 2]}}}
    expect: {output_contains: {lines: [1, 3]}}
  - name: unmet status and failure
    input: {sku: A}
    mock: {load: {error: invalid-input, message: "no sku"}}
    expect: {status: succeeded, failed_step: price, kind: permanent, message_contains: "no price"}
  - name: unmet steps
    input: {sku: A}
    mock: {price: {error: permanent}}
    expect:
      steps:
        price: {status: failed, attempts: 2, kind: transient, breaker_open: true, mocked: false}
        nowhere: {status: succeeded}
  - name: unmet durations
    input: {sku: A}
    mock: {price: {output: {}, delay: 2s}}
    expect: {min_duration: 3s, max_duration: 1s}
"#,
    );
    let (code, out, err) = flowhost_test(&[arg(&file)]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("  ✓ met ("), "{out}");
    for line in [
        "  ✗ unmet output (",
        "      $.output.total: expected 12, got 13",
        "      $.output.extra: expected nothing, got 1",
        "  ✗ unmet subset (",
        "      $.output.lines[1]: expected 3, got 2",
        "  ✗ unmet status and failure (",
        "      $.status: expected \"succeeded\", got \"failed\"",
        "      $.failed_step: expected \"price\", got \"load\"",
        "      $.kind: expected \"permanent\", got \"invalid-input\"",
        "      $.error.message: expected a message containing \"no price\", got \"no sku\"",
        "      the run: step load failed: invalid-input: no sku",
        "  ✗ unmet steps (",
        "      $.steps.price.status: expected \"failed\", got \"recovered\"",
        "      $.steps.price.attempts: expected 2, got 1",
        "      $.steps.price.kind: expected \"transient\", got \"permanent\"",
        "      $.steps.price.breaker_open: expected true, got false",
        "      $.steps.price.mocked: expected false, got true",
        "      $.steps.nowhere: expected {\"status\":\"succeeded\"}, got no step `nowhere` ran (steps: load, price, done)",
        "  ✗ unmet durations (",
        "      $.duration: expected at least 3s, got 2000ms",
        "      $.duration: expected at most 1s, got 2000ms",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert_eq!(out.lines().last(), Some("1 passed, 5 failed"), "{out}");
}

/// Per-attempt mocks: failures that are retried, that open the breaker
/// (whose refusal is not a call), and a fallback that answers; a mocked
/// fallback; a mock that is another plugin.
#[test]
fn per_attempt_mocks_drive_retries_the_breaker_and_the_fallback() {
    let (_dir, file) = project(
        r#"
  - name: four failures open the breaker and the fallback answers
    input: {sku: A}
    mock:
      price:
        - {error: transient}
        - {error: deadline}
        - {error: host, message: "reset"}
        - {error: transient}
        - {output: {never: true}}
    expect:
      status: succeeded
      output: {source: fallback, reason: circuit-open}
      steps:
        price: {status: recovered, attempts: 4, breaker_open: true, kind: circuit-open}
        price.fallback: {status: succeeded, mocked: false}
  - name: a mocked fallback fails and so does the run
    input: {sku: A}
    mock:
      price: {error: permanent, message: "gone"}
      price.fallback: {error: transient, message: "cache down"}
    expect:
      status: failed
      failed_step: price
      kind: transient
      message_contains: cache down
      steps:
        price.fallback: {status: failed, kind: transient, mocked: true}
  - name: a mock may be another plugin
    input: {sku: A}
    mock:
      price: {plugin: fail}
    expect:
      status: succeeded
      output_contains: {source: fallback}
      steps:
        price: {status: recovered, attempts: 1, kind: permanent, mocked: true}
"#,
    );
    let (code, out, err) = flowhost_test(&[arg(&file)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.lines().last(), Some("3 passed, 0 failed"), "{out}");
}

/// 30 s of backoff take no wall time; the record keeps the nominal
/// spacing, and a real guest call after it still runs.
#[tokio::test]
async fn time_is_virtual_unless_a_case_asks_for_real_time() {
    let (dir, file) = project(
        r#"
  - name: thirty seconds of backoff
    input: {sku: A}
    mock:
      price: [{error: transient}, {error: transient}, {error: transient}, {output: {sku: A}}]
    expect:
      status: succeeded
      output: {sku: A}
      min_duration: 30s
  - name: real time
    real_time: true
    input: {sku: A}
    mock:
      price: {output: {sku: A}, delay: 300ms}
    expect: {status: succeeded, min_duration: 300ms}
"#,
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let mut test = parse_test_file(&file, &text).unwrap();
    test.plugins = Some(dist().to_path_buf());
    let suite = Suite::prepare(host(), test, None).await.unwrap();

    let virtual_case = &suite.file.cases[0];
    let started = Instant::now();
    let outcome = suite.run(host(), virtual_case).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(outcome.passed(), "{:?}", outcome.mismatches);
    let record = outcome.record.unwrap();
    let price = record.steps.iter().find(|s| s.path == "price").unwrap();
    let starts: Vec<f64> = price.attempts.iter().map(|a| a.start_ms).collect();
    assert_eq!(starts.len(), 4, "{starts:?}");
    for gap in starts.windows(2) {
        assert!(gap[1] - gap[0] >= 10_000.0, "{starts:?}");
    }
    assert!(record.duration_ms >= 30_000.0, "{}", record.duration_ms);
    let done = record.steps.iter().find(|s| s.path == "done").unwrap();
    assert!(done.attempts[0].error.is_none() && !done.attempts[0].mocked);

    let started = Instant::now();
    let outcome = suite.run(host(), &suite.file.cases[1]).await;
    assert!(outcome.passed(), "{:?}", outcome.mismatches);
    assert!(started.elapsed() >= Duration::from_millis(300));
    drop(dir);
}

#[test]
fn junit_report_parses_back() {
    let (dir, file) = project(
        r#"
  - name: passes
    input: {sku: "<A & B>"}
    expect: {status: succeeded, output: {attempt: 1, input: {sku: "<A & B>"}}}
  - name: fails <with> "markup"
    input: {sku: A}
    expect: {status: failed}
"#,
    );
    let report = dir.path().join("report.xml");
    let (code, out, err) = flowhost_test(&[arg(&file), "--junit", arg(&report)]);
    assert_eq!(code, 1, "{out}\n{err}");
    let xml = std::fs::read_to_string(&report).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}:\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("2"));
    assert_eq!(root.attribute("failures"), Some("1"));
    let suite = root.children().find(|n| n.is_element()).unwrap();
    assert_eq!(suite.attribute("name"), Some(arg(&file)));
    let cases: Vec<_> = suite.children().filter(|n| n.is_element()).collect();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0].attribute("name"), Some("passes"));
    assert_eq!(cases[0].attribute("classname"), Some("shop"));
    assert!(cases[0].children().all(|n| !n.is_element()));
    assert_eq!(cases[1].attribute("name"), Some("fails <with> \"markup\""));
    let failure = cases[1].children().find(|n| n.is_element()).unwrap();
    assert_eq!(failure.tag_name().name(), "failure");
    let text = failure.text().unwrap();
    assert!(
        text.contains("$.status: expected \"failed\", got \"succeeded\""),
        "{text}"
    );
}

#[test]
fn invalid_test_files_are_reported_at_file_line_column() {
    let (_dir, file) = project(
        r#"
  - name: typo
    input: {}
    expct: {status: succeeded}
  - name: bad mock
    mock:
      price: {error: flaky}
      load: {output: 1, plugin: echo}
    expect: {status: sometimes}
  - input: {}
    expect: {}
"#,
    );
    let (code, out, err) = flowhost_test(&[arg(&file)]);
    assert_eq!(code, 2, "{out}\n{err}");
    let at = file.display();
    for line in [
        format!(
            "{at}:6:5: unknown field `expct` in a case; allowed fields: name, input, mock, real_time, expect"
        ),
        format!("{at}:9:22: `error`: unknown error kind `flaky`"),
        format!(
            "{at}:10:13: a mock answer gives exactly one of `output`, `error` or `plugin` (found output, plugin)"
        ),
        format!(
            "{at}:11:22: unknown status `sometimes` (expected one of: succeeded, failed, cancelled)"
        ),
        format!("{at}:12:5: a case needs a `name`"),
    ] {
        assert!(err.contains(&line), "missing {line:?} in:\n{err}");
    }
    assert!(!out.contains("passed"), "{out}");
}

#[test]
fn filter_runs_only_matching_cases() {
    let (_dir, file) = project(
        r#"
  - name: gold customer
    input: {sku: A}
    expect: {status: succeeded}
  - name: silver customer
    input: {sku: A}
    expect: {status: failed}
"#,
    );
    let (code, out, err) = flowhost_test(&[arg(&file), "--filter", "GOLD"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("✓ gold customer"), "{out}");
    assert!(!out.contains("silver"), "{out}");
    assert_eq!(out.lines().last(), Some("1 passed, 0 failed"));

    let (code, _, err) = flowhost_test(&[arg(&file), "--filter", "platinum"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--filter \"platinum\": no case matches"),
        "{err}"
    );
}
