//! `GET /openapi.json`, and the API fuzzed against it by schemathesis: no
//! `5xx`, no crash, every answer as the document says (status, headers,
//! content type, body).

use std::process::Stdio;

use super::*;

/// Where `.ci/install-schemathesis` (run by the README's setup command and
/// by CI) installs schemathesis.
fn schemathesis() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    repo.join("target/venv-schemathesis/bin/schemathesis")
}

/// A flow whose input is checked (`422`), started by events.
const GREET_ON_EVENT: &str = "\
flow: greet
input_schema:
  type: object
  required: [name]
  properties:
    name: {type: string}
triggers:
  - event: \"greet.*\"
steps:
  - id: hello
    plugin: echo
";

/// A flow with a fan-out, started by every event.
const FAN: &str = "\
flow: fan
triggers:
  - event: \"*\"
steps:
  - id: first
    plugin: echo
  - id: each
    for_each: \"${[1, 2, 3]}\"
    steps:
      - id: item
        plugin: echo
";

async fn served() -> Served {
    Served::start(
        &["testing/echo", "testing/fail"],
        &[("greet", GREET_ON_EVENT), ("broken", BROKEN), ("fan", FAN)],
        config(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_describes_the_api() {
    let s = served().await;
    let r = s.get("/openapi.json").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");

    let start = &doc["paths"]["/flows/{flow}/runs"]["post"];
    let params: Vec<&str> = start["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["flow", "wait", "Idempotency-Key"]);
    let statuses: Vec<&String> = start["responses"].as_object().unwrap().keys().collect();
    assert_eq!(
        statuses,
        [
            "200", "202", "400", "401", "404", "413", "422", "429", "503"
        ]
    );
    assert!(
        start["responses"]["200"]["headers"]["x-flowhost-run-id"].is_object(),
        "{start}"
    );
    assert!(
        start["responses"]["429"]["headers"]["Retry-After"].is_object(),
        "{start}"
    );
    let error = &doc["components"]["schemas"]["ErrorDetail"];
    let mut fields: Vec<&String> = error["properties"].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["kind", "message", "step"]);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Open without a token: no 401, no security requirement.
    assert!(doc["paths"]["/healthz"]["get"]["responses"]["401"].is_null());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_its_document_says_under_schemathesis() {
    let st = schemathesis();
    assert!(
        st.exists(),
        "schemathesis is not installed at {}: run `bash .ci/install-schemathesis` (part of the README's setup command)",
        st.display()
    );
    let s = served().await;
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let run = tokio::process::Command::new(&st)
        .arg("run")
        .arg(format!("http://{}/openapi.json", s.addr))
        // One worker: hypothesis's caches are not safe across threads (a
        // second worker fails now and then inside schemathesis itself).
        .args(["--max-examples", "150", "--seed", "15", "--workers", "1"])
        .args(["--checks", "all"])
        // A flow's `input_schema`, and a rerun's `input` wanting its `from`,
        // refuse requests the API's schema alone cannot tell apart.
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--request-timeout", "20"])
        .current_dir(work.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .expect("schemathesis finishes within 150 s")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "schemathesis ran in {:.1}s:\n{stdout}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "schemathesis found answers that break the document ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("passed"), "{stdout}");
    // The server is still up and answers.
    let r = s.get("/healthz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.shutdown().await;
}
