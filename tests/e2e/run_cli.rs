//! `flowhost check` and `flowhost run` as a user runs them: exit codes,
//! output, the run record and the timeline.

use serde_json::{Value, json};

use crate::support::{dist, example, flowhost, plugins, root, run};

/// A flow file `name` holding `text`, in a fresh temporary folder (kept
/// alive by the returned handle).
fn flow_in_temp_dir(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join(name);
    std::fs::write(&flow, text).unwrap();
    (dir, flow)
}

#[test]
fn check_accepts_a_valid_flow() {
    let (code, out, err) = run(flowhost().args([
        "check",
        &example("sequential.yaml"),
        "--plugins",
        &plugins(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok: flow `sequential`, 3 steps, plugins: echo"),
        "{out}"
    );
}

#[test]
fn check_counts_steps_saying_when_nested_ones_are_included() {
    let (code, out, err) = run(flowhost().args(["check", &example("retry.yaml")]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok: flow `retry`, 1 step, plugins: flaky"),
        "{out}"
    );
    let (code, out, err) = run(flowhost().args(["check", &example("orders.yaml")]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok: flow `orders`, 9 steps (2 top-level), plugins: "),
        "{out}"
    );
}

#[test]
fn a_step_id_beyond_ascii_is_refused_saying_ascii() {
    let (_dir, flow) = flow_in_temp_dir(
        "umlaut.yaml",
        "flow: umlaut\nsteps:\n  - id: prüfen\n    plugin: echo\n",
    );
    let (code, _, err) = run(flowhost().args(["check", flow.to_str().unwrap()]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "umlaut.yaml:3:9: invalid step id `prüfen`: use ASCII letters, digits, `_` and `-`"
        ),
        "{err}"
    );
}

#[test]
fn check_prints_every_error_with_its_position_and_exits_2() {
    let (_dir, flow) = flow_in_temp_dir(
        "broken.yaml",
        "flow: broken\nsteps:\n  - id: a\n    plugin: no-such-plugin\n  - id: b\n    plugin: echo\n    retries: 3\n",
    );
    let (code, out, err) =
        run(flowhost().args(["check", flow.to_str().unwrap(), "--plugins", &plugins()]));
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("2 error(s) in the flow"), "{err}");
    assert!(
        err.contains("broken.yaml:4:13: unknown plugin `no-such-plugin`"),
        "{err}"
    );
    assert!(
        err.contains("broken.yaml:7:5: unknown field `retries`"),
        "{err}"
    );
}

#[test]
fn run_prints_the_output_writes_the_record_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.json");
    let input = format!(
        "@{}",
        root().join("flows/data/sequential.input.json").display()
    );
    let (code, out, err) = run(flowhost().args([
        "run",
        &example("sequential.yaml"),
        "--plugins",
        &plugins(),
        "--input",
        &input,
        "--record",
        record.to_str().unwrap(),
        "--trace",
    ]));
    assert_eq!(code, 0, "{err}");
    let output: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        output,
        json!({"from_greet": "hello ada", "doubled": 42, "name_upper": "ADA"})
    );

    let record: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(record["status"], "succeeded");
    let paths: Vec<_> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["greet", "passthrough", "combine"]);
    assert_eq!(record["steps"][0]["version"].as_str().unwrap().len(), 64);

    // The timeline: one line per step, all on the critical path of a sequence.
    assert!(err.contains("of flow sequential: succeeded in"), "{err}");
    for path in paths {
        assert!(
            err.lines().any(|l| l.starts_with(&format!("* {path} "))),
            "{path} not on the critical path:\n{err}"
        );
    }
}

#[test]
fn a_failed_flow_exits_1_naming_the_step_and_its_causes() {
    let (_dir, flow) = flow_in_temp_dir(
        "fails.yaml",
        "flow: fails\nsteps:\n  - id: outer\n    parallel:\n      - {id: ok, plugin: echo}\n      - {id: bad, plugin: fail, config: {kind: permanent, message: nope}}\n",
    );
    let (code, out, err) =
        run(flowhost().args(["run", flow.to_str().unwrap(), "--plugins", &plugins()]));
    assert_eq!(code, 1, "{out}");
    assert!(out.is_empty());
    assert!(
        err.contains("flow fails failed: step outer.bad failed: permanent: nope"),
        "{err}"
    );
    assert!(
        err.contains("caused by: parallel step outer failed"),
        "{err}"
    );
}

#[test]
fn the_trace_marks_the_failure_that_cancelled_its_siblings_as_critical() {
    let (_dir, flow) = flow_in_temp_dir(
        "cut.yaml",
        "flow: cut\nsteps:\n  - id: skipped\n    if: \"${false}\"\n    plugin: echo\n  - id: outer\n    parallel:\n      - {id: slow, plugin: sleep, config: {ms: 400}}\n      - {id: bad, plugin: fail, config: {kind: permanent, message: nope}}\n",
    );
    let (code, _, err) = run(flowhost().args([
        "run",
        flow.to_str().unwrap(),
        "--plugins",
        &plugins(),
        "--trace",
    ]));
    assert_eq!(code, 1, "{err}");
    let line = |path: &str| {
        err.lines()
            .find(|l| {
                l.get(2..)
                    .is_some_and(|l| l.starts_with(&format!("{path} ")))
            })
            .unwrap_or_else(|| panic!("no line for {path}:\n{err}"))
    };
    // The failing branch decided when `outer` ended; the cancelled one did not.
    assert!(line("outer.bad").starts_with("* "), "{err}");
    assert!(line("outer.slow").starts_with("  "), "{err}");
    assert!(line("outer.slow").contains("cancelled"), "{err}");
    // A skipped plugin step names its plugin.
    let skipped = line("skipped");
    assert_eq!(
        skipped[2..].split_whitespace().nth(1),
        Some("echo"),
        "{err}"
    );
    assert!(skipped.contains("skipped"), "{err}");
}

#[test]
fn an_unwritable_record_path_is_bad_usage_found_before_the_run() {
    let (code, out, err) = run(flowhost().args([
        "run",
        &example("sequential.yaml"),
        "--plugins",
        &plugins(),
        "--input",
        r#"{"name": "ada", "n": 21}"#,
        "--record",
        "/nonexistent-dir/r.json",
        "--trace",
    ]));
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("--record /nonexistent-dir/r.json: cannot write the record there"),
        "{err}"
    );
    // No timeline: the run never started.
    assert!(!err.contains("of flow sequential"), "{err}");
}

#[test]
fn bad_usage_of_run_and_check_is_one_line() {
    let flow = example("sequential.yaml");
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", &flow],
            "flowhost: missing --plugins (see flowhost run --help)",
        ),
        (
            &["check"],
            "flowhost: missing <FLOW> (see flowhost check --help)",
        ),
        (
            &["run", &flow, "--plugins", "p", "--recrod", "r.json"],
            "flowhost: unexpected argument '--recrod'; did you mean '--record'? \
             (see flowhost run --help)",
        ),
        (
            &["run", &flow, "--plugins", "p", "--cache-limit", "1 bucket"],
            "flowhost: invalid value `1 bucket` for --cache-limit: expected a number of bytes, \
             or a number and a unit such as 512KiB, 64MiB or 1GB (see flowhost run --help)",
        ),
    ];
    for (args, want) in cases {
        let (code, out, err) = run(flowhost().args(*args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err, format!("{want}\n"), "{args:?}");
    }
}

#[test]
fn bad_usage_exits_2() {
    let (code, _, err) = run(flowhost().args([
        "run",
        &example("sequential.yaml"),
        "--plugins",
        &plugins(),
        "--input",
        "{not json",
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("--input is not valid JSON"), "{err}");
    let (code, _, err) =
        run(flowhost().args(["run", "no-such-flow.yaml", "--plugins", &plugins()]));
    assert_eq!(code, 2);
    assert!(err.contains("no-such-flow.yaml"), "{err}");
}

#[test]
fn a_bad_input_is_refused_before_the_run_naming_where_it_came_from() {
    let (dir, flow) = flow_in_temp_dir(
        "schema.yaml",
        "flow: schema\ninput_schema: {type: object, properties: {amount: {type: number}}}\nsteps:\n  - {id: a, plugin: echo}\n",
    );
    let flow = flow.to_str().unwrap();
    // Not JSON, in a file: the file, with serde's line and column.
    let file = dir.path().join("in.json");
    std::fs::write(&file, "{\n  \"amount\": 1,\n}\n").unwrap();
    let input = format!("@{}", file.display());
    let (code, out, err) =
        run(flowhost().args(["run", flow, "--plugins", &plugins(), "--input", &input]));
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains(&format!(
            "--input {input} is not valid JSON: key must be a string at line 3 column 1"
        )),
        "{err}"
    );
    // JSON that fails the schema: the field, and no run.
    let (code, out, err) = run(flowhost().args([
        "run",
        flow,
        "--plugins",
        &plugins(),
        "--input",
        r#"{"amount": "ten"}"#,
    ]));
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains(
            "--input: the input does not match the flow's input_schema: input/amount: \"ten\" is not of type \"number\""
        ),
        "{err}"
    );
    assert!(out.is_empty());
}

#[test]
fn an_input_expressions_cannot_read_is_named_by_its_flag() {
    let (_dir, flow) = flow_in_temp_dir(
        "big.yaml",
        "flow: big\nsteps:\n  - {id: a, plugin: echo, input: \"${input.big}\"}\n",
    );
    let (code, out, err) = run(flowhost().args([
        "run",
        flow.to_str().unwrap(),
        "--plugins",
        &plugins(),
        "--input",
        r#"{"big":1e400}"#,
    ]));
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains(
            "--input: the JSON cannot be read: number out of range at line 1 column 12; \
             steps get it as written, but expressions cannot read it"
        ),
        "{err}"
    );
}

/// A duration past one year: it would overflow the clock.
const HUGE: &str = "18446744073709551615s";
const TOO_LONG: &str = "it is longer than the maximum of 1year (365.25 days)";

#[test]
fn a_duration_past_a_year_is_a_load_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("forever.yaml");
    std::fs::write(
        &flow,
        format!(
            "flow: forever\ntimeout: {HUGE}\nsteps:\n  - id: a\n    plugin: echo\n    circuit_breaker: {{reset_timeout: {HUGE}}}\n"
        ),
    )
    .unwrap();
    let file = flow.to_str().unwrap();
    for command in ["check", "run"] {
        let (code, out, err) = run(flowhost().args([command, file, "--plugins", &plugins()]));
        assert_eq!(code, 2, "{command}: {out}{err}");
        assert!(
            err.contains(&format!(
                "{file}:2:10: invalid duration `{HUGE}` for `timeout`: {TOO_LONG}"
            )),
            "{command}: {err}"
        );
        assert!(
            err.contains(&format!(
                "{file}:6:38: invalid duration `{HUGE}` for `reset_timeout`: {TOO_LONG}"
            )),
            "{command}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_timeout_flag_past_a_year_is_a_usage_error_naming_the_flag() {
    let echo = dist().join("testing/echo.wasm");
    let echo = echo.to_str().unwrap();
    let (code, out, err) = run(flowhost().args(["call", echo, "--timeout", HUGE]));
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(
        err,
        format!(
            "flowhost: invalid value `{HUGE}` for --timeout: {TOO_LONG} (see flowhost call --help)\n"
        )
    );
    // A year itself is fine.
    let (code, out, err) = run(flowhost().args(["call", echo, "--timeout", "1y"]));
    assert_eq!((code, out.trim()), (0, "{}"), "{err}");
}

#[test]
fn a_config_duration_past_a_year_stops_serve_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowhost.toml");
    for (toml, key) in [
        (format!("drain_timeout = \"{HUGE}\"\n"), "drain_timeout"),
        (format!("probe_timeout = \"{HUGE}\"\n"), "probe_timeout"),
        (
            format!("[limits]\ntimeout = \"{HUGE}\"\n"),
            "limits.timeout",
        ),
    ] {
        std::fs::write(&config, toml).unwrap();
        let mut child = flowhost()
            .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(dir.path())
            .arg("--flows")
            .arg(dir.path())
            .arg("--config")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("`flowhost serve` with {key} past a year started serving");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(2), "{key}: {err}");
        assert!(
            err.contains(&format!(
                "{}: invalid `{key}`: {TOO_LONG}",
                config.display()
            )),
            "{err}"
        );
    }
}
