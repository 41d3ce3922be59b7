//! `flowhost dev`: the flow re-runs with the saved input whenever a plugin changes.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{flowhost, wasm, write_atomic};

/// Waits for a line from `lines` that satisfies `want`, for at most 20 s.
fn wait_for(lines: &mpsc::Receiver<String>, want: impl Fn(&str) -> bool) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if want(&line) => return line,
            Ok(_) => continue,
            Err(e) => panic!("no such line: {e}"),
        }
    }
}

#[test]
fn dev_reruns_the_flow_when_a_plugin_changes() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let step = plugins.join("step.wasm");
    std::fs::copy(wasm("testing/echo"), &step).unwrap();
    let flow = dir.path().join("flow.yaml");
    std::fs::write(&flow, "flow: dev\nsteps:\n  - {id: s, plugin: step}\n").unwrap();

    let mut child = flowhost()
        .args([
            "dev",
            flow.to_str().unwrap(),
            "--plugins",
            plugins.to_str().unwrap(),
        ])
        .args(["--input", r#"{"v":1}"#, "--no-cache"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, stdout) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| drop(tx.send(l)))
    });
    let (tx, stderr) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| drop(tx.send(l)))
    });

    // The first run: echo returns the saved input.
    assert_eq!(wait_for(&stdout, |l| l.starts_with('{')), r#"{"v":1}"#);
    // Swap in another step under the same name: the flow runs again, with the same input.
    write_atomic(&step, &std::fs::read(wasm("testing/counter")).unwrap());
    wait_for(&stderr, |l| l.contains("step") && l.contains("v2"));
    assert_eq!(wait_for(&stdout, |l| l.starts_with('{')), r#"{"calls":1}"#);
    // A broken file is reported and the last good version keeps serving.
    std::fs::write(&step, b"not wasm").unwrap();
    let reported = wait_for(&stderr, |l| l.contains("not a WebAssembly file"));
    assert!(reported.contains("step.wasm"), "{reported}");

    child.kill().unwrap();
    child.wait().unwrap();
}
