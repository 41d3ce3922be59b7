//! `flowhost call` and `flowhost inspect` as a user runs them.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{flowhost, run, wasm};

fn path(name: &str) -> String {
    wasm(name).to_string_lossy().into_owned()
}

#[test]
fn call_prints_the_output_and_exits_0() {
    let (code, out, err) =
        run(flowhost().args(["call", &path("testing/echo"), "--input", r#"{"a":[1,2]}"#]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!({"a": [1, 2]})
    );
}

#[test]
fn call_reads_input_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.json");
    std::fs::write(&file, r#"{"from":"file"}"#).unwrap();
    let arg = format!("@{}", file.display());
    let (code, out, err) = run(flowhost().args(["call", &path("testing/echo"), "--input", &arg]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#""from":"file""#), "{out}");
}

#[test]
fn step_errors_exit_1_naming_the_kind() {
    for kind in ["transient", "permanent", "invalid-input"] {
        let config = format!(r#"{{"kind":"{kind}","message":"it broke"}}"#);
        let (code, out, err) =
            run(flowhost().args(["call", &path("testing/fail"), "--config", &config]));
        assert_eq!(code, 1, "{err}");
        assert!(out.is_empty());
        assert!(err.contains(&format!("failed: {kind}: it broke")), "{err}");
    }
}

#[test]
fn limits_are_named_in_their_words() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("hostile/busy-loop", &["--fuel", "100000000"], "fuel"),
        ("hostile/sleep-forever", &["--timeout", "200ms"], "deadline"),
        ("hostile/memory-hog", &["--max-memory", "16MiB"], "memory"),
        (
            "hostile/huge-output",
            &["--max-memory", "1GiB", "--max-output", "1MiB"],
            "output-too-large",
        ),
        ("hostile/panic", &[], "trap"),
    ];
    for (plugin, flags, kind) in cases {
        let (code, _, err) = run(flowhost().arg("call").arg(path(plugin)).args(*flags));
        assert_eq!(code, 1, "{plugin}: {err}");
        assert!(
            err.contains(&format!("failed: {kind}: ")),
            "{plugin}: {err}"
        );
    }
}

#[test]
fn an_endless_loop_without_a_fuel_cap_runs_until_its_deadline() {
    let call = || run(flowhost().args(["call", &path("hostile/busy-loop"), "--timeout", "1s"]));
    // The first call compiles into the compile cache; the second is timed,
    // so a busy machine's compile does not count as the call's time.
    call();
    let started = Instant::now();
    let (code, out, err) = call();
    let took = started.elapsed();
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("failed: deadline: the call ran past its deadline of 1s"),
        "{err}"
    );
    assert!(took >= Duration::from_secs(1), "stopped early: {took:?}");
    // Fuel would have stopped it at about 0.7 s of guest code; a generous
    // bound, for a loaded machine, that still tells a deadline from a hang.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn invalid_input_from_the_sdk_is_reported() {
    let (code, _, err) =
        run(flowhost().args(["call", &path("validate-order"), "--input", "[1,2]"]));
    assert_eq!(code, 1);
    assert!(err.contains("failed: invalid-input: "), "{err}");
}

#[test]
fn output_that_is_not_json_is_refused() {
    let (code, out, err) = run(flowhost().args(["call", &path("hostile/not-json")]));
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "nothing printed as output: {out}");
    assert!(
        err.contains("failed: permanent: the step returned invalid JSON"),
        "{err}"
    );
}

#[test]
fn inspect_shows_metadata_imports_and_exports() {
    let (code, out, err) = run(flowhost().args(["inspect", &path("testing/echo"), "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "echo");
    assert!(v["exports"].as_array().unwrap().iter().any(|e| e == "run"));
    assert!(
        v["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().starts_with("flowhost:step/"))
    );
    assert!(v["size"].as_u64().unwrap() > 0 && v["compile_ms"].as_f64().unwrap() > 0.0);

    let (code, out, _) = run(flowhost().args(["inspect", &path("testing/echo")]));
    assert_eq!(code, 0);
    assert!(
        out.contains("compile time:") && out.contains("sha256:"),
        "{out}"
    );
}

#[test]
fn a_zero_fuel_cap_or_memory_under_a_page_is_bad_usage() {
    for (flag, value) in [
        ("--fuel", "0"),
        ("--max-memory", "0"),
        ("--max-memory", "1KiB"),
    ] {
        let (code, out, err) = run(flowhost().args(["call", &path("testing/echo"), flag, value]));
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
    let (code, _, err) = run(flowhost().args([
        "call",
        &path("testing/echo"),
        "--fuel",
        "1000000",
        "--max-memory",
        "64MiB",
    ]));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn bad_usage_is_one_line_naming_what_is_wrong() {
    let echo = path("testing/echo");
    let cases: &[(&[&str], &str)] = &[
        (
            &["call"],
            "flowhost: missing <PLUGIN> (see flowhost call --help)",
        ),
        (
            &["call", &echo, "--bogus"],
            "flowhost: unexpected argument '--bogus' (see flowhost call --help)",
        ),
        (
            &["call", &echo, "--timeout", "5 fortnights"],
            "flowhost: invalid value `5 fortnights` for --timeout: expected a number and a unit, \
             such as 500ms, 2s or 1m (see flowhost call --help)",
        ),
        (
            &["call", &echo, "--timeout", "0ms"],
            "flowhost: invalid value `0ms` for --timeout: a deadline must be greater than zero \
             (see flowhost call --help)",
        ),
        (
            &["call", &echo, "--max-output", "lots"],
            "flowhost: invalid value `lots` for --max-output: expected a number of bytes, \
             or a number and a unit such as 512KiB, 64MiB or 1GB (see flowhost call --help)",
        ),
        (
            &["call", &echo, "--fuel", "0"],
            "flowhost: invalid value `0` for --fuel: the cap must be at least 1 \
             (0 would stop every call at once) (see flowhost call --help)",
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
fn flag_durations_are_written_as_in_flow_files() {
    // A flow file's `timeout: 1h 30m` and `timeout: " 2s "` are read alike.
    for timeout in ["1h 30m", " 2s ", "1500ms"] {
        let (code, out, err) =
            run(flowhost().args(["call", &path("testing/echo"), "--timeout", timeout]));
        assert_eq!((code, out.trim()), (0, "{}"), "{timeout}: {err}");
    }
}

#[test]
fn help_and_version_print_on_stdout_and_exit_0() {
    let (code, out, _) = run(flowhost().args(["call", "--help"]));
    assert_eq!(code, 0);
    assert!(
        out.contains("Usage: flowhost call [OPTIONS] <PLUGIN>"),
        "{out}"
    );
    // `--input` defaults to `{}`: an option, never shown as required.
    assert!(out.contains("[default: {}]"), "{out}");
    let (code, out, _) = run(flowhost().arg("--version"));
    assert_eq!(code, 0);
    assert!(out.starts_with("flowhost "), "{out}");
}
