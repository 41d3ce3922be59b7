//! Every hostile plugin is contained: it gets its error kind and the host lives on.

use std::time::{Duration, Instant};

use flowhost::{CallError, CallOptions, CallReport, DirGrant, DirMode, ErrorKind, Grants, Limits};
use serde_json::Value;

use crate::support::{call, limited};

/// Limits with this deadline and this fuel cap (`None`: no cap, so the
/// deadline must stop the call), the rest by default.
fn quick(timeout_ms: u64, fuel: Option<u64>) -> Limits {
    Limits {
        timeout: Duration::from_millis(timeout_ms),
        fuel,
        ..Limits::default()
    }
}

/// A check beyond the kind and the message.
type Check = fn(&CallReport) -> Result<(), String>;

/// One hostile call and how it must end.
struct Case {
    plugin: &'static str,
    limits: Limits,
    kind: ErrorKind,
    /// A part of the error message ("" for any).
    message: &'static str,
    /// A generous upper bound on the call's wall time, where it matters.
    within: Option<Duration>,
    /// Anything else the report must show.
    check: Option<Check>,
}

impl Case {
    fn new(plugin: &'static str, limits: Limits, kind: ErrorKind, message: &'static str) -> Case {
        Case {
            plugin,
            limits,
            kind,
            message,
            within: None,
            check: None,
        }
    }

    fn within(self, bound: Duration) -> Case {
        Case {
            within: Some(bound),
            ..self
        }
    }

    fn check(self, check: Check) -> Case {
        Case {
            check: Some(check),
            ..self
        }
    }

    /// What is wrong with how the call ended, if anything.
    async fn run(&self) -> Result<(), String> {
        let started = Instant::now();
        let report = call(self.plugin, "{}", "{}", limited(self.limits.clone())).await;
        let elapsed = started.elapsed();
        let err = match &report.result {
            Ok(out) => return Err(format!("succeeded with {out:.80}")),
            Err(err) => err,
        };
        if err.kind() != self.kind {
            return Err(format!("{:?}, expected {:?}: {err}", err.kind(), self.kind));
        }
        if !err.message().contains(self.message) {
            return Err(format!("the message lacks `{}`: {err}", self.message));
        }
        if let Some(bound) = self.within
            && elapsed > bound
        {
            return Err(format!("took {elapsed:?}, more than {bound:?}"));
        }
        self.check.map_or(Ok(()), |check| check(&report))
    }
}

fn used_all_its_fuel(r: &CallReport) -> Result<(), String> {
    if r.fuel_used >= 200_000_000 {
        Ok(())
    } else {
        Err(format!("fuel used: {}", r.fuel_used))
    }
}

fn has_a_wasm_backtrace(r: &CallReport) -> Result<(), String> {
    match &r.result {
        Err(CallError::Trap {
            backtrace: Some(bt),
            ..
        }) if bt.contains("wasm backtrace") => Ok(()),
        other => Err(format!("no wasm backtrace: {other:?}")),
    }
}

fn dropped_log_lines(r: &CallReport) -> Result<(), String> {
    if r.logs_dropped > 100 {
        Ok(())
    } else {
        Err(format!("dropped {} log lines", r.logs_dropped))
    }
}

/// Every hostile plugin under the limits that must stop it.
fn cases() -> Vec<Case> {
    use ErrorKind::*;
    let default = Limits::default;
    let secs = Duration::from_secs;
    let memory = |max_memory| Limits {
        max_memory,
        ..default()
    };
    vec![
        Case::new(
            "hostile/busy-loop",
            quick(10_000, Some(200_000_000)),
            Fuel,
            "",
        )
        .check(used_all_its_fuel),
        Case::new("hostile/busy-loop", quick(300, None), Deadline, "").within(secs(3)),
        Case::new(
            "hostile/sleep-forever",
            quick(300, Some(1_000_000_000)),
            Deadline,
            "",
        )
        .within(secs(3)),
        Case::new(
            "hostile/memory-hog",
            memory(32 << 20),
            Memory,
            "limit of 32.0 MiB",
        ),
        Case::new("hostile/deep-recursion", default(), Trap, "stack overflow"),
        Case::new("hostile/panic", default(), Trap, "hostile panic").check(has_a_wasm_backtrace),
        Case::new(
            "hostile/huge-output",
            Limits {
                max_output: 1 << 20,
                ..memory(1 << 30)
            },
            OutputTooLarge,
            "",
        ),
        // Within the default memory, the memory cap comes first.
        Case::new("hostile/huge-output", default(), Memory, ""),
        Case::new(
            "hostile/not-json",
            default(),
            Permanent,
            "the step returned invalid JSON: key must be a string at line 1 column 15",
        ),
        // Its logs are capped, then the deadline stops it.
        Case::new(
            "hostile/log-flood",
            Limits {
                max_log: 16 << 10,
                ..quick(500, None)
            },
            Deadline,
            "",
        )
        .check(dropped_log_lines),
    ]
}

#[tokio::test]
async fn every_hostile_plugin_fails_with_its_kind() {
    let mut failures = Vec::new();
    for (row, case) in cases().iter().enumerate() {
        if let Err(why) = case.run().await {
            failures.push(format!("row {row}, {}: {why}", case.plugin));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn json_nested_100k_deep_is_still_json_to_a_direct_call() {
    let out = call(
        "hostile/unreadable-json",
        "{}",
        r#"{"shape":"deep"}"#,
        CallOptions::default(),
    )
    .await
    .result
    .unwrap();
    assert_eq!(out.len(), 200_000);
}

#[tokio::test]
async fn fs_escape_reaches_nothing_outside_its_mount() {
    let mount = tempfile::tempdir().unwrap();
    let outside = mount.path().parent().unwrap().join(format!(
        "escape-{}",
        mount.path().file_name().unwrap().to_string_lossy()
    ));
    let options = CallOptions {
        grants: Grants {
            dirs: vec![DirGrant {
                host: mount.path().to_path_buf(),
                guest: Some("/data".into()),
                mode: DirMode::Rw,
            }],
            ..Grants::default()
        },
        ..CallOptions::default()
    };
    let out = call("hostile/fs-escape", "{}", "{}", options)
        .await
        .result
        .unwrap();
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(!out.contains("root:x:0:0"), "read /etc/passwd: {report}");
    assert!(!outside.exists());
    assert!(!std::path::Path::new("/tmp/flowhost-escape").exists());
    // Nothing but what the guest may legitimately write inside /data.
    for entry in std::fs::read_dir(mount.path().parent().unwrap()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains("escape"), "file escaped the mount: {name}");
    }
}

#[test]
fn host_stays_responsive_beside_hostile_neighbours() {
    // One worker thread: the hostile calls must yield for the echo calls to run at all.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let limits = quick(3_000, None);
        let busy = tokio::spawn(call(
            "hostile/busy-loop",
            "{}",
            "{}",
            limited(limits.clone()),
        ));
        let sleepy = tokio::spawn(call("hostile/sleep-forever", "{}", "{}", limited(limits)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        for i in 0..20 {
            let input = format!("{{\"i\":{i}}}");
            let out = call("testing/echo", &input, "{}", CallOptions::default())
                .await
                .result
                .unwrap();
            assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["i"], i);
        }
        let echo_time = started.elapsed();
        assert!(
            !busy.is_finished() && !sleepy.is_finished(),
            "echo calls waited for the hostile ones"
        );
        assert!(
            echo_time < Duration::from_secs(2),
            "20 echo calls took {echo_time:?}"
        );
        assert_eq!(
            busy.await.unwrap().result.unwrap_err().kind(),
            ErrorKind::Deadline
        );
        assert_eq!(
            sleepy.await.unwrap().result.unwrap_err().kind(),
            ErrorKind::Deadline
        );
    });
}
