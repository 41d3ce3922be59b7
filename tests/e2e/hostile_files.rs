//! Hostile flow files: an alias bomb, deep nesting and endless files are
//! refused with an error naming the file and the position, by `flowhost
//! check` and by a served flows folder, whose last good flows keep serving.

use std::path::Path;
use std::time::Duration;

use flowhost::flow::{MAX_DEPTH, load_flow};
use flowhost::{LiveFlows, RunOptions, RunStatus, WatchOptions};
use serde_json::json;

use crate::support::{dist, executor, flowhost, plugin_set, poll_until, run, write_atomic};

const WAIT: Duration = Duration::from_secs(30);
const GOOD: &str = "flow: good\nsteps:\n  - id: a\n    plugin: echo\n";

/// `levels` levels of `&aN [*aN-1, ... ten times]` in a step's input; the
/// tree holds 10^levels nodes. The `*a4` aliases are on line 11.
fn alias_bomb(levels: usize) -> String {
    let mut text = String::from("flow: bomb\nsteps:\n  - id: a\n    plugin: echo\n    input:\n");
    text.push_str("      l0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for n in 1..levels {
        let aliases = vec![format!("*a{}", n - 1); 10].join(", ");
        text.push_str(&format!("      l{n}: &a{n} [{aliases}]\n"));
    }
    text
}

/// Where the alias that crosses 1,000,000 nodes is: the 7th `*a4`.
fn crossing_alias(bomb: &str) -> String {
    let line = bomb.lines().nth(10).unwrap();
    let (at, _) = line.match_indices("*a4").nth(6).unwrap();
    format!("11:{}", at + 1)
}

/// `levels` parallel steps in block style, each inside the one before, an
/// echo step innermost.
fn nested_parallels(levels: usize) -> String {
    nested("parallel", levels).0
}

/// `levels` steps of `kind` in block style, each inside the one before, an
/// echo step innermost; and the indentation of the echo step.
fn nested(kind: &str, levels: usize) -> (String, String) {
    let mut text = String::from("flow: deep\nsteps:\n");
    let mut indent = String::from("  ");
    for n in 0..levels {
        text.push_str(&format!("{indent}- id: s{n}\n"));
        match kind {
            "parallel" => text.push_str(&format!("{indent}  parallel:\n")),
            "for_each" => text.push_str(&format!("{indent}  for_each: [1]\n{indent}  steps:\n")),
            _ => {
                text.push_str(&format!("{indent}  switch:\n{indent}    - when: true\n"));
                text.push_str(&format!("{indent}      steps:\n"));
                indent.push_str("    ");
            }
        }
        indent.push_str("    ");
    }
    text.push_str(&format!("{indent}- id: leaf\n{indent}  plugin: echo\n"));
    (text, indent)
}

fn check(flow: &Path) -> (i32, String, String) {
    let plugins = dist().to_string_lossy().into_owned();
    run(flowhost().args(["check", flow.to_str().unwrap(), "--plugins", &plugins]))
}

#[test]
fn check_refuses_an_alias_bomb_at_the_alias_that_crosses_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    for levels in [7, 8] {
        let file = tmp.path().join(format!("bomb{levels}.yaml"));
        let bomb = alias_bomb(levels);
        std::fs::write(&file, &bomb).unwrap();
        let (code, out, err) = check(&file);
        assert_eq!(code, 2, "{out}{err}");
        let want = format!(
            "bomb{levels}.yaml:{}: this YAML alias expands the flow file past 1000000 nodes, the limit for a flow file",
            crossing_alias(&bomb)
        );
        assert!(err.contains(&want), "{err}");
    }
}

/// Where nesting crosses the depth limit in `nested_parallels`: the step
/// mapping at depth 65, as `line:column`.
fn crossing_step() -> String {
    let past = (MAX_DEPTH - 3) / 2 + 1;
    format!("{}:{}", 2 + 2 * past + 1, 2 + 4 * past + 3)
}

#[test]
fn check_refuses_deep_nesting_with_its_position() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("deep.yaml");
    std::fs::write(&file, nested_parallels(800)).unwrap();
    let (code, _, err) = check(&file);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "deep.yaml:{}: lists and mappings are nested deeper than 64 levels, the limit for a flow file",
            crossing_step()
        )),
        "{err}"
    );

    // 3,000 levels (which overflowed `check`'s stack) are past the size
    // limit, and said so.
    std::fs::write(&file, nested_parallels(3_000)).unwrap();
    let (code, _, err) = check(&file);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("deep.yaml: the flow file is larger than 4.0 MiB, the limit for a flow file"),
        "{err}"
    );
}

async fn error_of(flows: &LiveFlows, name: &str) -> Option<String> {
    flows
        .statuses()
        .await
        .into_iter()
        .find(|s| s.name == name)
        .and_then(|s| s.error)
}

/// Reload parses on a 2 MiB blocking thread, as a server does: the bomb,
/// 800 nested levels and an endless file are each an error, and the last
/// good version keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_folder_refuses_hostile_files_and_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("flows");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("f.yaml");
    std::fs::write(&file, GOOD).unwrap();
    let flows = LiveFlows::open(&dir, WatchOptions::default())
        .await
        .unwrap();
    assert_eq!(flows.get("f").unwrap().name(), "good");

    let bomb = alias_bomb(8);
    let deep = nested_parallels(800);
    let crossing = crossing_alias(&bomb);
    let cases = [
        (bomb, format!("f.yaml:{crossing}: this YAML alias expands")),
        (
            deep,
            format!(
                "f.yaml:{}: lists and mappings are nested deeper than 64 levels",
                crossing_step()
            ),
        ),
    ];
    for (text, want) in cases {
        let before = error_of(&flows, "f").await;
        write_atomic(&file, text.as_bytes());
        poll_until(WAIT, "the reload error", || async {
            let now = error_of(&flows, "f").await;
            now.is_some() && now != before
        })
        .await;
        let error = error_of(&flows, "f").await.unwrap();
        assert!(error.contains(&want), "{error}");
        assert_eq!(
            flows.get("f").unwrap().name(),
            "good",
            "the last good flow serves"
        );
    }

    // A device or a FIFO is refused without being read (a FIFO's open would
    // block until a writer came, stalling every reload after it).
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.yaml")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        dir.join("pipe.yaml"),
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    flows.rescan().await;
    for name in ["zero", "pipe"] {
        poll_until(WAIT, "the special file's error", || async {
            error_of(&flows, name).await.is_some()
        })
        .await;
        let error = error_of(&flows, name).await.unwrap();
        assert!(
            error.contains(&format!(
                "{name}.yaml: cannot read the file: not a regular file"
            )),
            "{error}"
        );
    }
    // And reloads go on after them.
    write_atomic(&file, GOOD.replace("good", "good2").as_bytes());
    poll_until(WAIT, "the next good version", || async {
        flows.get("f").is_some_and(|f| f.name() == "good2")
    })
    .await;
}

/// Flows just under the depth limit, their innermost step's input an
/// expression just under its own limit, load and run on a thread with a
/// 2 MiB stack (a runtime worker's): parallel and for_each steps nest 2
/// levels each, switch steps 4.
#[test]
fn flows_just_under_the_limits_run_on_a_small_stack() {
    let tmp = tempfile::tempdir().unwrap();
    let deepest = [
        ("parallel", (MAX_DEPTH - 4) / 2),
        ("for_each", (MAX_DEPTH - 4) / 2),
        ("switch", (MAX_DEPTH - 4) / 4),
    ];
    for (kind, levels) in deepest {
        let (mut text, indent) = nested(kind, levels);
        // 15 nested lists in an expression: 31 levels.
        let expr = format!("{}input.n{}", "[".repeat(15), "]".repeat(15));
        text.push_str(&format!("{indent}  input: {{v: \"${{{expr}}}\"}}\n"));
        let file = tmp.path().join(format!("{kind}.yaml"));
        std::fs::write(&file, text).unwrap();

        let record = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let flow = load_flow(&file, None).await.expect("the flow loads");
                    let plugins = plugin_set(&flow).await;
                    executor()
                        .run(&flow, &plugins, json!({"n": 7}), RunOptions::default())
                        .await
                })
            })
            .unwrap()
            .join()
            .expect("the run fits a 2 MiB stack");
        assert_eq!(
            record.status,
            RunStatus::Succeeded,
            "{kind}: {:?}",
            record.error
        );
        let output = record.output.unwrap();
        let value = format!("{{\"v\":{}7{}}}", "[".repeat(15), "]".repeat(15));
        assert!(output.get().contains(&value), "{kind}: {}", output.get());
    }
}
