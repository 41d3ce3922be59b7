//! The web UI at `/ui/`: its pages over real HTTP, and browser scenarios in
//! headless Chromium (`tests/browser/ui.mjs`, driven by playwright-core),
//! each saving a screenshot under the target folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowhost::server::{Server, ServerConfig};
use flowhost::store::{NewRun, Store, StoreUrl};
use flowhost::{Config, Host, RunRecord};
use serde_json::json;

use crate::support::{http, root, wasm};

const HELLO: &str = "flow: hello
input_schema:
  type: object
  required: [name]
  properties:
    name: {type: string}
steps:
  - id: greet
    plugin: echo
  - id: pause
    plugin: sleep
    config: {ms: 700}
";

const BROKEN: &str = "flow: broken
steps:
  - id: fetch
    plugin: echo
  - id: deliver
    plugin: fail
    config:
      kind: invalid-input
      message: the parcel is lost
      log: '<script>window.__xss = 1</script>'
";

const SLOW: &str = "flow: slow
steps:
  - id: wait
    plugin: sleep
    config: {ms: 20000}
";

const ORDER: &str = "flow: order
steps:
  - id: receive
    plugin: echo
  - id: validate
    plugin: validate-order
";

const ITEMS: &str = "flow: items
steps:
  - id: each
    for_each: \"${input.n}\"
    max_concurrency: 16
    steps:
      - id: twice
        plugin: echo
";

struct Ui {
    server: Option<Server>,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Ui {
    /// A server on a SQLite store (step inputs and outputs are kept) with
    /// the flows above.
    async fn start() -> Ui {
        Ui::start_with(ServerConfig::default()).await
    }

    /// [`Ui::start`] with these settings (listen and store set here).
    async fn start_with(settings: ServerConfig) -> Ui {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        let flows = dir.path().join("flows");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::create_dir_all(&flows).unwrap();
        for name in [
            "testing/echo",
            "testing/sleep",
            "testing/fail",
            "validate-order",
        ] {
            let stem = Path::new(name).file_name().unwrap().to_string_lossy();
            std::fs::copy(wasm(name), plugins.join(format!("{stem}.wasm"))).unwrap();
        }
        for (stem, yaml) in [
            ("hello", HELLO),
            ("broken", BROKEN),
            ("slow", SLOW),
            ("order", ORDER),
            ("items", ITEMS),
        ] {
            std::fs::write(flows.join(format!("{stem}.yaml")), yaml).unwrap();
        }
        let host = Host::new(Config::default().cache(Some(cache_dir()))).expect("host");
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            drain_timeout: Duration::from_secs(1),
            store: Some(StoreUrl::Sqlite(dir.path().join("runs.db"))),
            ..settings
        };
        let server = Server::start(host, &plugins, &flows, config)
            .await
            .expect("server starts");
        Ui {
            addr: server.addr(),
            server: Some(server),
            _dir: dir,
        }
    }

    /// Runs `flow` with `input` to its end; its id.
    async fn finished_run(&self, flow: &str, input: &str) -> String {
        let r = http(
            "POST",
            self.addr,
            &format!("/flows/{flow}/runs"),
            Some(input),
        )
        .await;
        assert!(r.status == 200, "{}", r.body);
        r.json()["run_id"].as_str().unwrap().to_string()
    }

    /// Runs a browser scenario; its `ok` line.
    fn browser(&self, scenario: &str, args: &[&str]) -> String {
        let out = Command::new("node")
            .arg(root().join("tests/browser/ui.mjs"))
            .arg(scenario)
            .arg(format!("http://{}", self.addr))
            .arg(shots())
            .args(args)
            .output()
            .expect("node runs (the setup command installs it)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(&format!("ok {scenario}")),
            "browser scenario {scenario}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{}", stdout.trim());
        stdout.trim().to_string()
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-ui-compile-cache")
}

/// Where the scenarios' screenshots go.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The browser scenarios need node, the npm packages and Chromium, which
/// the setup command installs.
fn browser_ready() {
    let modules = root().join("tests/browser/node_modules/playwright-core");
    assert!(
        modules.exists() && Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Chromium and playwright-core: apt-get install chromium; (cd tests/browser && npm ci)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_scenarios() {
    browser_ready();
    let ui = Ui::start().await;
    let failed = ui.finished_run("broken", "{}").await;
    let order =
        json!({"id": "A-1", "customer": "", "items": [{"sku": "pen", "qty": 2, "price": 1.5}]});
    let to_fix = ui.finished_run("order", &order.to_string()).await;
    let n: Vec<u32> = (0..1000).collect();
    let items = ui
        .finished_run("items", &json!({ "n": n }).to_string())
        .await;
    // Scenarios that start runs of their own run alongside nothing else.
    ui.browser("start-live", &[]);
    ui.browser("runs-live", &[]);
    ui.browser("failed", &[&failed]);
    ui.browser("cancel", &[]);
    ui.browser("rerun-from", &[&to_fix]);
    let said = ui.browser("items", &[&items]);
    let ms: u64 = said
        .split("interactive in ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("the items scenario says how long it took");
    assert!(
        ms < 1000,
        "a 1,000-item run's page took {ms} ms to be interactive"
    );
    ui.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_escape_what_runs_wrote_and_answer_unknown_runs() {
    let ui = Ui::start().await;
    let failed = ui.finished_run("broken", "{}").await;
    let page = http("GET", ui.addr, &format!("/ui/runs/{failed}"), None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("&lt;script&gt;window.__xss = 1&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>window.__xss"));
    let csp = page
        .headers
        .iter()
        .find(|(k, _)| k == "content-security-policy")
        .map(|(_, v)| v.as_str())
        .expect("a CSP");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    for path in [
        "/ui/",
        "/ui/runs",
        "/ui/flows",
        "/ui/flows/hello",
        "/ui/plugins",
    ] {
        let r = http("GET", ui.addr, path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let r = http("GET", ui.addr, "/ui/runs/no-such-run", None).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("no run `no-such-run`"), "{}", r.body);
    let r = http("GET", ui.addr, "/ui/runs?status=sideways", None).await;
    assert!(r.body.contains("status: expected queued"), "{}", r.body);
    ui.stop().await;
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// 100,000 finished runs in a SQLite store: the runs page and `GET /runs`
/// answer within 200 ms, filtered or not, on any page.
#[tokio::test(flavor = "multi_thread")]
async fn listing_100000_runs_answers_within_200_ms() {
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::Sqlite(dir.path().join("runs.db"));
    let store: Arc<dyn Store> = flowhost::store::open(&url, &Default::default())
        .await
        .unwrap();
    let now = millis(SystemTime::now());
    for batch in 0..100u64 {
        let mut runs = Vec::new();
        let mut records = Vec::new();
        for i in 0..1000u64 {
            let n = batch * 1000 + i;
            let (run_id, flow) = (format!("run-{n:06}"), ["hello", "order"][(n % 2) as usize]);
            let status = ["succeeded", "failed"][(n % 7 == 0) as usize];
            runs.push(
                serde_json::from_value::<NewRun>(json!({
                    "run_id": run_id, "flow": flow, "flow_version": "", "plugins": {},
                    "input": {}, "accepted_at": now - 100_000 + n,
                    "idempotency_key": null, "derived_from": null,
                }))
                .unwrap(),
            );
            records.push(
                serde_json::from_value::<RunRecord>(json!({
                    "run_id": run_id, "flow": flow, "status": status,
                    "started_at": "2026-11-30T06:00:00.000Z", "duration_ms": 1.0, "steps": [],
                }))
                .unwrap(),
            );
        }
        store.accept(runs).await.unwrap();
        let finishing: Vec<_> = records
            .into_iter()
            .map(|r| store.finish(Arc::new(r)))
            .collect();
        for f in finishing {
            f.await.unwrap();
        }
    }
    drop(store);
    let plugins = dir.path().join("plugins");
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&flows).unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: Some(url),
        ..ServerConfig::default()
    };
    let host = Host::new(Config::default().cache(Some(cache_dir()))).unwrap();
    let server = Server::start(host, &plugins, &flows, config)
        .await
        .expect("starts");
    let addr = server.addr();
    let page = http("GET", addr, "/runs?limit=50", None).await;
    let next = page.json()["next"].as_str().unwrap().to_string();
    let older = format!("/ui/runs?cursor={next}");
    for path in [
        "/ui/runs",
        "/ui/runs?flow=order&status=failed",
        older.as_str(),
        "/ui/runs?q=run-000123",
        "/runs?limit=100&status=failed",
    ] {
        let t = Instant::now();
        let r = http("GET", addr, path, None).await;
        let took = t.elapsed();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        println!("{path}: {took:?}");
        assert!(took < Duration::from_millis(200), "{path} took {took:?}");
    }
    let r = http("GET", addr, "/ui/runs?flow=order&status=failed", None).await;
    let rows = r.body.matches("data-run-id=").count();
    assert_eq!(rows, 50, "a page of 50 runs");
    assert!(r.body.contains("data-status=\"failed\""));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_without_the_token_is_asked_for_it() {
    browser_ready();
    let token = "a-long-random-token-for-the-browser-test";
    let ui = Ui::start_with(ServerConfig {
        api_token_hash: Some(flowhost::server::TokenHash::of(token)),
        ..ServerConfig::default()
    })
    .await;
    ui.browser("login", &[token]);
    ui.stop().await;
}
