//! Shared test fixtures: the plugins (built once per test run), one shared
//! host with a compiled-plugin cache, and the `flowhost` binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use flowhost::{CallOptions, CallReport, Config, Context, Host, Limits, Plugin};

pub mod fleet;
pub mod pg;

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

/// The path of example flow `name` (`sequential.yaml`), as an argument.
pub fn example(name: &str) -> String {
    root()
        .join("flows/examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// `plugins/dist`, built, as an argument.
pub fn plugins() -> String {
    dist().to_string_lossy().into_owned()
}

/// A temporary folder for `flowhost serve`: `plugins/` holding the built
/// `plugins` (by file stem), and empty `flows/` and `out/`.
pub fn served_folder(plugins: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["plugins", "flows", "out"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    for name in plugins {
        let stem = Path::new(name).file_name().unwrap().to_string_lossy();
        std::fs::copy(wasm(name), dir.path().join(format!("plugins/{stem}.wasm"))).unwrap();
    }
    dir
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
    // Each command its own data directory: a `serve` without `--store`
    // never shares a store with another test, nor touches the user's.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("e2e-data")
        .join(format!("{}-{n}", std::process::id()));
    cmd.env("FLOWHOST_DATA_DIR", dir);
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

/// Sends SIGTERM to `child`, as an operator's `kill` does.
pub fn sigterm(child: &std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {}", child.id());
}

/// Polls `check` every 10 ms until it holds; panics with `what` after `timeout`.
pub async fn poll_until<F, Fut>(timeout: std::time::Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Replaces `dest` with `bytes` the way build tools do: write a hidden
/// temporary file beside it, then rename it into place.
pub fn write_atomic(dest: &Path, bytes: &[u8]) {
    let tmp = dest.with_file_name(format!(
        ".{}.tmp",
        dest.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

/// A host with its own compile cache in `dir` (tests that swap plugins often
/// compile each version once).
pub fn cached_host(dir: &Path) -> Host {
    Host::new(Config::default().cache(Some(dir.to_path_buf()))).expect("host")
}

// ---- flows ----

/// Every plugin in `dist()` by name (file stem), as the `plugin()` cache key
/// (`echo` → `testing/echo`, `validate-order` → `validate-order`).
pub fn plugin_keys() -> &'static std::collections::BTreeMap<String, String> {
    static KEYS: OnceLock<std::collections::BTreeMap<String, String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dist = dist();
        flowhost::scan_dir(dist)
            .expect("scan plugins/dist")
            .into_iter()
            .map(|(name, path)| {
                let rel = path.strip_prefix(dist).unwrap().with_extension("");
                (name, rel.to_string_lossy().replace('\\', "/"))
            })
            .collect()
    })
}

/// Parses a flow from YAML text; plugin names must exist in `dist()`.
pub fn parse(yaml: &str) -> flowhost::flow::Flow {
    parse_at(Path::new("test.yaml"), yaml)
}

/// Parses a flow from YAML text, named `path` in errors.
pub fn parse_at(path: &Path, yaml: &str) -> flowhost::flow::Flow {
    let known = |n: &str| plugin_keys().contains_key(n);
    flowhost::flow::parse_flow(path, yaml, Some(&known)).unwrap_or_else(|errors| {
        let lines: Vec<_> = errors.iter().map(|e| e.to_string()).collect();
        panic!("bad flow:\n{}", lines.join("\n"))
    })
}

/// The plugins a flow uses, compiled once per test run by the shared host.
pub async fn plugin_set(flow: &flowhost::flow::Flow) -> flowhost::PluginSet {
    let mut plugins = Vec::new();
    for name in flow.plugin_names() {
        let key = plugin_keys()
            .get(name)
            .unwrap_or_else(|| panic!("no plugin `{name}` in plugins/dist"));
        plugins.push(plugin(key).await);
    }
    flowhost::PluginSet::new(plugins)
}

/// An executor on the shared host, shared by the tests of this binary (and
/// so are its circuit breakers: a breaker test uses its own executor).
pub fn executor() -> &'static flowhost::Executor {
    static EXEC: OnceLock<flowhost::Executor> = OnceLock::new();
    EXEC.get_or_init(|| flowhost::Executor::new(host().clone()))
}

/// Runs a flow given as YAML text on `input` with the shared executor.
pub async fn run_flow(yaml: &str, input: serde_json::Value) -> flowhost::RunRecord {
    run_flow_with(executor(), yaml, input).await
}

/// Runs a flow given as YAML text on `input` with `exec`, whose host must be
/// the shared `host()` (the plugins come from its cache).
pub async fn run_flow_with(
    exec: &flowhost::Executor,
    yaml: &str,
    input: serde_json::Value,
) -> flowhost::RunRecord {
    let flow = parse(yaml);
    run_parsed(exec, &flow, input).await
}

/// Runs a parsed flow on `input` with `exec` (on the shared host).
pub async fn run_parsed(
    exec: &flowhost::Executor,
    flow: &flowhost::flow::Flow,
    input: serde_json::Value,
) -> flowhost::RunRecord {
    let plugins = plugin_set(flow).await;
    exec.run(flow, &plugins, input, flowhost::RunOptions::default())
        .await
}

/// The record of the step at `path`; panics, listing the paths, when absent.
pub fn step<'r>(record: &'r flowhost::RunRecord, path: &str) -> &'r flowhost::executor::StepRecord {
    record
        .steps
        .iter()
        .find(|s| s.path == path)
        .unwrap_or_else(|| {
            let paths: Vec<_> = record.steps.iter().map(|s| s.path.as_str()).collect();
            panic!("no step `{path}` in the record; steps: {paths:?}")
        })
}

/// `plugins/dist` after building the plugins of every language once for this
/// test run (`plugins/build-all.sh`: Rust, then `js/`, `python/`, `c/`,
/// installing a missing toolchain first). Then `plugin("js/js-stamp")` works.
pub fn dist_all() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let status = Command::new("bash")
            .arg(root().join("plugins/build-all.sh"))
            .status()
            .expect("run plugins/build-all.sh");
        assert!(status.success(), "plugins/build-all.sh failed");
        root().join("plugins/dist")
    })
}

// ---- HTTP ----

/// An HTTP response, as a client sees it.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from chunks if need be.
    pub body: String,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with
/// hyper's client; a `Some` body is sent as JSON. Panics if the server does
/// not answer within 30 s.
pub async fn http(
    method: &str,
    addr: std::net::SocketAddr,
    path: &str,
    body: Option<&str>,
) -> Response {
    http_with(method, addr, path, body, &[]).await
}

/// [`http`] with extra request headers.
pub async fn http_with(
    method: &str,
    addr: std::net::SocketAddr,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Response {
    use http_body_util::{BodyExt, Full};
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONNECTION, "close");
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        request = request.header(http::header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(bytes::Bytes::from(body.unwrap_or("").to_owned())))
        .expect("a valid request");
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        // Drives the connection; it ends when the exchange is over.
        tokio::spawn(connection);
        let response = sender.send_request(request).await.expect("send");
        let (head, body) = response.into_parts();
        let body = body.collect().await.expect("receive").to_bytes();
        (head, body)
    };
    let (head, body) = tokio::time::timeout(std::time::Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within 30 s"));
    Response {
        status: head.status.as_u16(),
        headers: head
            .headers
            .iter()
            .map(|(n, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.as_str().to_string(), value)
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Like [`plugin`], but first loads of one name that race wait for a single
/// compile: JavaScript and Python components take seconds each.
pub async fn plugin_once(name: &str) -> Plugin {
    type Cells = HashMap<String, std::sync::Arc<tokio::sync::OnceCell<Plugin>>>;
    static CELLS: OnceLock<Mutex<Cells>> = OnceLock::new();
    let cell = CELLS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .clone();
    cell.get_or_init(|| plugin(name)).await.clone()
}

/// Spawns `cmd` (a `flowhost serve`) with its stderr piped, and waits up to
/// 60 s for its `listening on` line: the child, its address, and the rest of
/// its stderr, line by line. Without that line, the child is killed and the
/// test fails with what it printed.
pub fn serve(
    cmd: &mut Command,
) -> (
    Killed,
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<String>,
) {
    let (child, addr, _before, lines) = serve_lines(cmd);
    (child, addr, lines)
}

/// [`serve`], also returning the lines printed before `listening on`.
pub fn serve_lines(
    cmd: &mut Command,
) -> (
    Killed,
    std::net::SocketAddr,
    Vec<String>,
    std::sync::mpsc::Receiver<String>,
) {
    use std::io::BufRead;
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn flowhost serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) => match line.strip_prefix("flowhost: listening on http://") {
                Some(a) => return (Killed(child), a.trim().parse().unwrap(), seen, lines),
                None => seen.push(line),
            },
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no `listening` line ({e}); stderr:\n{}", seen.join("\n"));
            }
        }
    }
}

/// A child process that is killed (and reaped) when dropped, so that a test
/// that fails midway leaves no server running.
pub struct Killed(pub std::process::Child);

impl std::ops::Deref for Killed {
    type Target = std::process::Child;

    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
