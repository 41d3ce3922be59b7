//! `flowhost serve --config` opens the file's `[databases]` (relative
//! SQLite paths from the file's folder) for the steps its flows grant; a
//! database that cannot be opened stops the start, naming its key.

use serde_json::{Value, json};

use crate::support::{flowhost, http, root, run, serve, served_folder};

/// `flowhost serve` on the served folder `dir` with the config `toml`.
fn serve_with(dir: &std::path::Path, toml: &std::path::Path) -> std::process::Command {
    let mut cmd = flowhost();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        "memory",
        "--config",
    ])
    .arg(toml)
    .arg("--plugins")
    .arg(dir.join("plugins"))
    .arg("--flows")
    .arg(dir.join("flows"));
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_flow_saves_to_the_configs_database() {
    let dir = served_folder(&["validate-order", "save-order", "load-order", "testing/echo"]);
    let example = root().join("flows/examples/orders_db.yaml");
    std::fs::copy(&example, dir.path().join("flows/orders_db.yaml")).unwrap();
    let toml = dir.path().join("flowhost.toml");
    std::fs::write(
        &toml,
        "[databases.orders]\nurl = \"sqlite:data/orders.db\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let (_child, addr, _lines) = serve(
        serve_with(dir.path(), &toml)
            .current_dir(root())
            .stdout(std::process::Stdio::null()),
    );
    let input = std::fs::read_to_string(root().join("flows/data/orders_db.input.json")).unwrap();
    let answer = http("POST", addr, "/flows/orders_db/runs", Some(&input)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(
        body["output"]["saved"],
        json!(["A-1001", "B-2002", "C-3003"])
    );
    assert!(
        dir.path().join("data/orders.db").exists(),
        "the database is beside the config file, not in the working directory"
    );
}

#[test]
fn a_database_that_cannot_be_opened_stops_the_start() {
    let dir = served_folder(&[]);
    let toml = dir.path().join("flowhost.toml");
    std::fs::write(
        &toml,
        "[databases.orders]\nurl = \"sqlite:missing/dir/orders.db\"\n",
    )
    .unwrap();
    let (code, _out, err) = run(&mut serve_with(dir.path(), &toml));
    assert_eq!(code, 2, "{err}");
    let line = err.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("flowhost: database `orders`: ")
            && line.contains("missing/dir/orders.db`: unable to open database file"),
        "{err}"
    );
}
