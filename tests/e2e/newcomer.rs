//! A newcomer's first step in each language: `flowhost new`, then the very
//! command it prints, run by a shell in a fresh folder outside the repository.
//!
//! The environment is the test's own less everything that points at this
//! repository (`FLOWHOST_*`, cargo's variables, `NODE_PATH`, a venv, any
//! value naming the checkout), with the test's `flowhost` first on PATH, as
//! after `cargo install --path host`. So `build.sh` must install the
//! JavaScript, Python and C tools itself; npm's and pip's caches under HOME
//! keep that quick.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::support::{root, run};

/// What a newcomer does in one language, and what they should see.
struct Case {
    lang: &'static str,
    /// The step's output for the input the printed command passes.
    output: Value,
    /// A line the step logs for that input (shown on stderr), if it logs.
    log: Option<&'static str>,
    /// An input the step refuses, and the end of the error line it prints.
    bad_input: &'static str,
    refusal: &'static str,
}

fn cases() -> [Case; 4] {
    let greeting = json!({"greeting": "Hello, Ada!"});
    let greeter = |lang| Case {
        lang,
        output: greeting.clone(),
        log: Some("greeting Ada (attempt 1)"),
        bad_input: "{}",
        refusal: "invalid-input: name is missing",
    };
    [
        greeter("rust"),
        greeter("js"),
        greeter("python"),
        Case {
            lang: "c",
            output: json!({"step": "hello-c", "input": {"id": 7}}),
            log: None,
            bad_input: "[1]",
            refusal: "invalid-input: expected a JSON object",
        },
    ]
}

/// `bash -c SCRIPT` in `cwd`, with the environment of a newcomer who has
/// installed flowhost: nothing in it points at this repository.
fn shell(script: &str, cwd: &Path) -> Command {
    let flowhost_dir = Path::new(env!("CARGO_BIN_EXE_flowhost")).parent().unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::iter::once(flowhost_dir.to_path_buf())
        .chain(std::env::split_paths(&path).filter(|dir| !dir.starts_with(root())));
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).current_dir(cwd).env_clear();
    cmd.envs(std::env::vars_os().filter(|(key, value)| newcomer_has(key, value)));
    cmd.env("PATH", std::env::join_paths(path).unwrap());
    cmd
}

/// Whether a newcomer's shell has this variable of the test's environment.
fn newcomer_has(key: &OsStr, value: &OsStr) -> bool {
    const TOOLCHAINS: [&str; 6] = [
        "NODE_PATH",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "PYTHONHOME",
        "CONDA_PREFIX",
        "RUSTFLAGS",
    ];
    let key = key.to_string_lossy();
    let from_cargo = key.starts_with("CARGO_") && key != "CARGO_HOME";
    !(key.starts_with("FLOWHOST_")
        || from_cargo
        || TOOLCHAINS.contains(&key.as_ref())
        || value.to_string_lossy().contains(&*root().to_string_lossy()))
}

/// Follows the newcomer path in one language, asserting what the user sees.
fn follow(case: &Case) {
    let lang = case.lang;
    let name = format!("hello-{lang}");
    let tmp = tempfile::tempdir().unwrap();
    assert!(!tmp.path().starts_with(root()));
    let started = Instant::now();

    let (code, stdout, stderr) = run(&mut shell(
        &format!("flowhost new --lang {lang} {name}"),
        tmp.path(),
    ));
    assert_eq!(code, 0, "{lang}: flowhost new: {stderr}");
    let command = stdout.lines().last().unwrap_or_default();
    assert!(
        command.starts_with(&format!(
            "cd {name} && ./build.sh && flowhost call {name}.wasm --input '"
        )),
        "{lang}: the printed command: {stdout}"
    );

    let (code, stdout, stderr) = run(&mut shell(command, tmp.path()));
    assert_eq!(code, 0, "{lang}: `{command}` failed:\n{stderr}");
    let output: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{lang}: stdout is not the step's JSON ({e}): {stdout:?}"));
    assert_eq!(output, case.output, "{lang}");
    if let Some(log) = case.log {
        assert!(
            stderr.contains(log),
            "{lang}: the step's log line: {stderr}"
        );
    }
    if lang != "rust" {
        assert!(
            stderr.contains("build.sh: installing"),
            "{lang}: build.sh installed nothing, so a toolchain leaked in: {stderr}"
        );
    }

    let project = tmp.path().join(&name);
    let call = format!("flowhost call {name}.wasm --input '{}'", case.bad_input);
    let (code, _, stderr) = run(&mut shell(&call, &project));
    assert_eq!(code, 1, "{lang}: {call}: {stderr}");
    assert!(stderr.contains(case.refusal), "{lang}: {call}: {stderr}");

    let (code, _, stderr) = run(&mut shell("./build.sh", &project));
    assert_eq!(code, 0, "{lang}: second ./build.sh: {stderr}");
    for word in ["installing", "adding"] {
        assert!(
            !stderr.contains(word),
            "{lang}: second ./build.sh: {stderr}"
        );
    }

    assert_sources_only(lang, &project);
    eprintln!("{lang}: {:.1} s", started.elapsed().as_secs_f64());
}

/// What `git add -A` takes in the built project: its sources, nothing that
/// build.sh installed or made (the template's `.gitignore`).
fn assert_sources_only(lang: &str, project: &Path) {
    let (code, files, stderr) = run(&mut shell(
        "git init -q . && git add -A && git ls-files",
        project,
    ));
    assert_eq!(code, 0, "{lang}: git: {stderr}");
    let files: Vec<&str> = files.lines().collect();
    assert!(files.contains(&"build.sh"), "{lang}: {files:?}");
    for file in &files {
        let installed = ["node_modules/", ".venv/", "target/", "__pycache__/"]
            .iter()
            .any(|dir| file.contains(dir));
        assert!(
            !installed && !file.ends_with(".wasm"),
            "{lang}: {file} is not ignored: {files:?}"
        );
    }
}

/// The four languages at once, each on its own thread: the Rust and Python
/// builds take a minute or more, and the test harness would run only as many
/// tests at once as there are cores. A failing language panics its thread,
/// named after it; the others still finish.
#[test]
fn the_printed_command_works_in_every_language() {
    let cases = cases();
    std::thread::scope(|scope| {
        for case in &cases {
            std::thread::Builder::new()
                .name(case.lang.to_string())
                .spawn_scoped(scope, || follow(case))
                .unwrap();
        }
    });
}

#[test]
fn c_build_names_the_packages_to_install_when_clang_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&mut shell("flowhost new --lang c probe", tmp.path()));
    assert_eq!(code, 0, "{stderr}");
    // A clang that cannot build for wasm32-wasi, first on PATH.
    let bin: PathBuf = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(
        bin.join("clang"),
        "#!/bin/sh\necho 'clang: no wasm32-wasi here' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(bin.join("clang"), std::fs::Permissions::from_mode(0o755)).unwrap();

    let (code, stdout, stderr) = run(&mut shell(
        r#"PATH="$PWD/bin:$PATH" probe/build.sh"#,
        tmp.path(),
    ));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("apt-get install -y clang lld wasi-libc libclang-rt-dev-wasm32"),
        "{stderr}"
    );
    assert!(stderr.contains("no wasm32-wasi here"), "{stderr}");
    assert!(
        !tmp.path().join("probe/node_modules").exists(),
        "installed before failing"
    );
}
