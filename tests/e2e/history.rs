//! What a server keeps of finished runs, and what one run may cost: the cap
//! on steps per run through the API, and the run history bounded in bytes,
//! with large outputs left out of what is kept (never out of the answer
//! the waiting client gets).

use std::path::Path;
use std::time::{Duration, Instant};

use flowhost::server::{Server, ServerConfig};
use flowhost::{Config, Host};
use serde_json::{Value, json};

use crate::support::{Response, http, wasm};

/// A server on a temporary folder with `echo` and the flows given.
struct Served {
    server: Server,
    _dirs: tempfile::TempDir,
}

impl Served {
    async fn start(flows: &[(&str, &str)], config: ServerConfig) -> Served {
        let dirs = tempfile::tempdir().unwrap();
        let (plugins, flows_dir) = (dirs.path().join("plugins"), dirs.path().join("flows"));
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::create_dir_all(&flows_dir).unwrap();
        std::fs::copy(wasm("testing/echo"), plugins.join("echo.wasm")).unwrap();
        for (stem, yaml) in flows {
            std::fs::write(flows_dir.join(format!("{stem}.yaml")), yaml).unwrap();
        }
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-history-compile-cache");
        let host = Host::new(Config::default().cache(Some(cache))).expect("host");
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            drain_timeout: Duration::from_secs(2),
            ..config
        };
        let server = Server::start(host, &plugins, &flows_dir, config)
            .await
            .expect("server starts");
        Served {
            server,
            _dirs: dirs,
        }
    }

    async fn get(&self, path: &str) -> Response {
        http("GET", self.server.addr(), path, None).await
    }

    async fn post(&self, path: &str, body: &str) -> Response {
        http("POST", self.server.addr(), path, Some(body)).await
    }

    /// The value of the metric `name` (a series without labels).
    async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").await.body;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no metric {name}:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }
}

const EACH: &str = r#"
flow: each
steps:
  - id: each
    for_each: "${input.items}"
    steps:
      - id: echo
        plugin: echo
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_for_each_of_a_million_items_fails_fast_through_the_api() {
    let s = Served::start(&[("each", EACH)], ServerConfig::default()).await;
    // 2 MB: a million items, within the 2 MiB body limit.
    let body = serde_json::to_string(&json!({"items": vec![1; 1_000_000]})).unwrap();
    let started = Instant::now();
    let r = s.post("/flows/each/runs", &body).await;
    let elapsed = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = r.json();
    assert_eq!(answer["status"], "failed", "{answer}");
    assert_eq!(
        answer["error"]["kind"], "too-many-steps",
        "{}",
        answer["error"]
    );
    assert_eq!(answer["error"]["step"], "each");
    assert_eq!(
        answer["error"]["message"],
        "for_each over 1000000 items would start 1000000 steps (1 per item), past the cap \
         of 10000 steps a run may start (1 started already)"
    );
    // Reading and rendering the list is the only work (debug build, generous bound).
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let id = answer["run_id"].as_str().unwrap();
    let record = s.get(&format!("/runs/{id}")).await.json();
    let paths: Vec<_> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["each"], "no item ran");
    s.server.shutdown().await;

    // `max_steps_per_run` sets the cap.
    let config = ServerConfig {
        max_steps_per_run: 5,
        ..ServerConfig::default()
    };
    let s = Served::start(&[("each", EACH)], config).await;
    let r = s
        .post("/flows/each/runs", r#"{"items": [1, 2, 3, 4]}"#)
        .await;
    assert_eq!(r.json()["status"], "succeeded", "{}", r.body);
    let r = s
        .post("/flows/each/runs", r#"{"items": [1, 2, 3, 4, 5]}"#)
        .await;
    let error = &r.json()["error"];
    assert_eq!(error["kind"], "too-many-steps", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("would start 5 steps (1 per item), past the cap of 5 steps"),
        "{error}"
    );
    s.server.shutdown().await;
}

const ECHO: &str = "flow: echo\nsteps:\n  - id: echo\n    plugin: echo\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_history_stays_within_its_byte_budget() {
    const BUDGET: u64 = 8 << 10;
    let config = ServerConfig {
        run_history_bytes: BUDGET,
        ..ServerConfig::default()
    };
    let s = Served::start(&[("echo", ECHO)], config).await;
    let mut ids = Vec::new();
    let mut input = String::new();
    for i in 0..20 {
        // 200 KB outputs: past the 64 KiB kept whole.
        input = serde_json::to_string(&json!({"i": i, "pad": "x".repeat(200_000)})).unwrap();
        let r = s.post("/flows/echo/runs", &input).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let answer = r.json();
        assert_eq!(answer["status"], "succeeded", "{answer}");
        // The waiting client gets the whole output.
        let expected: Value = serde_json::from_str(&input).unwrap();
        assert_eq!(answer["output"], expected);
        ids.push(answer["run_id"].as_str().unwrap().to_string());
    }
    let bytes = s.metric("flowhost_run_history_bytes").await;
    let kept = s.metric("flowhost_run_history_runs").await;
    assert!(bytes > 0.0 && bytes <= BUDGET as f64, "{bytes} bytes kept");
    assert!((1.0..20.0).contains(&kept), "{kept} runs kept");

    // The newest is kept, its output left out and marked with its size.
    let newest = s.get(&format!("/runs/{}", ids[19])).await;
    assert_eq!(newest.status, 200, "{}", newest.body);
    let record = newest.json();
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record.get("output"), None, "{record}");
    assert_eq!(record["output_trimmed"], json!({"bytes": input.len()}));
    assert_eq!(record["steps"][0]["status"], "succeeded");
    // The oldest are forgotten.
    let oldest = s.get(&format!("/runs/{}", ids[0])).await;
    assert_eq!(oldest.status, 404, "{}", oldest.body);
    assert_eq!(oldest.json()["error"]["kind"], "not-found");

    // A small output is kept whole.
    let r = s.post("/flows/echo/runs", r#"{"small": true}"#).await;
    let id = r.json()["run_id"].as_str().unwrap().to_string();
    let record = s.get(&format!("/runs/{id}")).await.json();
    assert_eq!(record["output"], json!({"small": true}));
    assert_eq!(record.get("output_trimmed"), None, "{record}");
    s.server.shutdown().await;
}
