//! Shared test fixtures: the plugins (built once per test run), one shared
//! host with a compiled-plugin cache, and the `flowhost` binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use flowhost::{CallOptions, CallReport, Config, Context, Host, Limits, Plugin};

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// `plugins/dist`, after building every plugin once for this test run.
pub fn dist() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let status = Command::new("bash")
            .arg(root().join("plugins/build.sh"))
            .status()
            .expect("run plugins/build.sh");
        assert!(status.success(), "plugins/build.sh failed");
        root().join("plugins/dist")
    })
}

/// The path of a built plugin, e.g. `testing/echo` or `hostile/busy-loop`.
pub fn wasm(name: &str) -> PathBuf {
    dist().join(format!("{name}.wasm"))
}

/// A host shared by the tests of this binary.
pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new(Config::default()).expect("host"))
}

/// A plugin compiled once per test run.
pub async fn plugin(name: &str) -> Plugin {
    static CACHE: OnceLock<Mutex<HashMap<String, Plugin>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().unwrap().get(name) {
        return p.clone();
    }
    let p = host().load(wasm(name)).await.expect("load plugin");
    cache.lock().unwrap().insert(name.to_string(), p.clone());
    p
}

/// Calls `name` with `input`, `config` and `options`.
pub async fn call(name: &str, input: &str, config: &str, options: CallOptions) -> CallReport {
    let p = plugin(name).await;
    let ctx = Context {
        config: config.to_string(),
        ..Context::direct(p.name())
    };
    host().call_with(&p, &ctx, input, &options).await
}

/// Options with these limits and no grants.
pub fn limited(limits: Limits) -> CallOptions {
    CallOptions {
        limits: Some(limits),
        ..CallOptions::default()
    }
}

/// The `flowhost` binary.
pub fn flowhost() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowhost"));
    cmd.env("FLOWHOST_LOG", "info");
    cmd
}

/// Runs a command and returns (status code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("spawn");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}
