//! The database at start and going away while serving.

use super::*;
use crate::support::fleet::Fleet;
use crate::support::flowhost;

#[test]
fn a_server_on_an_unreachable_database_exits_2_naming_it_without_its_password() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://flowhost:s3cret-pw@127.0.0.1:{port}/runs");
    let mut child = flowhost()
        .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
        .arg(dir.path())
        .arg("--flows")
        .arg(dir.path())
        .args(["--store", &url])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "flowhost serve on {url} kept running: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("flowhost@127.0.0.1:{port}/runs")),
        "the error does not name the database: {stderr}"
    );
    assert!(
        !stderr.contains("s3cret-pw"),
        "the error shows the password: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_the_database_is_away_and_the_accepted_runs_finish_once_it_is_back() {
    let mut fleet = Fleet::new(&["testing/append", "testing/sleep"]);
    fleet.flow(
        "slow",
        &format!(
            "flow: slow\nsteps:\n{}{}{}",
            fleet.append("a", ""),
            nap("nap", 8000),
            fleet.append("b", "")
        ),
    );
    // The nap outlasts the outage, so no last step is in flight in it.
    let server = fleet.serve();
    let r = server.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(server.submit("slow", "{}").await);
    }
    until("every run's first step", || {
        let calls = fleet.calls();
        ids.iter().all(|id| calls.contains_key(&format!("{id} a")))
    })
    .await;

    fleet.db().go_away();
    let deadline = Instant::now() + SETTLE;
    loop {
        let r = server.get("/readyz").await;
        if r.status == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} is still ready {SETTLE:?} after its database went away: {} {}",
            server.name,
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fleet.db().come_back();
    let deadline = Instant::now() + SETTLE + SETTLE;
    loop {
        let r = server.get("/readyz").await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} is not ready again after its database came back: {} {}\n{}",
            server.name,
            r.status,
            r.body,
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records = server.wait_finished(&ids, SETTLE + SETTLE).await;
    let calls = fleet.calls();
    for (id, record) in ids.iter().zip(&records) {
        assert_eq!(record["status"], "succeeded", "run {id}: {record}");
        let b = calls.get(&format!("{id} b")).copied().unwrap_or(0);
        assert_eq!(b, 1, "the last step of run {id} ran {b} times: {record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_commands_read_and_cancel_on_the_shared_database_while_servers_run() {
    let mut fleet = Fleet::new(&["testing/echo", "testing/sleep"]);
    fleet.flow(
        "greet",
        "flow: greet\nsteps:\n  - id: hello\n    plugin: echo\n",
    );
    fleet.flow(
        "block",
        &format!("flow: block\nsteps:\n{}", nap("nap", 30_000)),
    );
    let server = fleet.serve_with(crate::support::fleet::Settings {
        workers: 1,
        ..Default::default()
    });
    let done = server.post("/flows/greet/runs", r#"{"n": 1}"#).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let done = done.json()["run_id"].as_str().unwrap().to_string();
    let busy = server.submit("block", "{}").await;
    server
        .wait_status(&busy, "running", Duration::from_secs(20))
        .await;
    // The one worker is held: this run waits in the database.
    let waiting = server.submit("greet", "{}").await;
    let url = fleet.db().url().to_string();
    let runs = |args: &[&str]| {
        let mut cmd = flowhost();
        cmd.arg("runs").args(args).args(["--store", &url]);
        crate::support::run(&mut cmd)
    };

    let (code, out, err) = runs(&["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    for id in [&done, &busy, &waiting] {
        assert!(out.contains(id.as_str()), "`runs list` lacks {id}: {out}");
    }
    let (code, out, err) = runs(&["show", &done]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hello"), "{out}");

    // A waiting run is recorded cancelled at once; a running one is asked.
    let (code, out, err) = runs(&["cancel", &waiting]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(server.record(&waiting).await["status"], "cancelled");
    let (code, out, err) = runs(&["cancel", &busy]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cancelling"), "{out}");
    let record = server
        .wait_status(&busy, "cancelled", Duration::from_secs(5))
        .await;
    assert_eq!(record["error"]["kind"], "cancelled", "{record}");
    let (code, _, err) = runs(&["cancel", &done]);
    assert_eq!(code, 1, "a finished run is not cancelled: {err}");
}
