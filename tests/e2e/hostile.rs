//! Every hostile plugin is contained: it gets its error kind and the host lives on.

use std::time::{Duration, Instant};

use flowhost::{CallError, CallOptions, DirGrant, DirMode, ErrorKind, Grants, Limits};
use serde_json::Value;

use crate::support::{call, limited};

fn quick(timeout_ms: u64, fuel: u64) -> Limits {
    Limits {
        timeout: Duration::from_millis(timeout_ms),
        fuel: Some(fuel),
        ..Limits::default()
    }
}

#[tokio::test]
async fn busy_loop_runs_out_of_fuel() {
    let r = call(
        "hostile/busy-loop",
        "{}",
        "{}",
        limited(quick(10_000, 200_000_000)),
    )
    .await;
    assert_eq!(r.result.unwrap_err().kind(), ErrorKind::Fuel);
    assert!(r.fuel_used >= 200_000_000, "fuel used: {}", r.fuel_used);
}

#[tokio::test]
async fn busy_loop_is_stopped_by_its_deadline() {
    let started = Instant::now();
    let r = call(
        "hostile/busy-loop",
        "{}",
        "{}",
        limited(quick(300, u64::MAX / 2)),
    )
    .await;
    assert_eq!(r.result.unwrap_err().kind(), ErrorKind::Deadline);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sleep_forever_is_stopped_by_its_deadline() {
    let started = Instant::now();
    let r = call(
        "hostile/sleep-forever",
        "{}",
        "{}",
        limited(quick(300, 1_000_000_000)),
    )
    .await;
    let err = r.result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deadline, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn memory_hog_hits_the_memory_cap() {
    let limits = Limits {
        max_memory: 32 << 20,
        ..Limits::default()
    };
    let err = call("hostile/memory-hog", "{}", "{}", limited(limits))
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Memory, "{err}");
    assert!(err.message().contains("limit of 32.0 MiB"), "{err}");
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_trap() {
    let err = call("hostile/deep-recursion", "{}", "{}", CallOptions::default())
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Trap, "{err}");
    assert!(err.message().contains("stack overflow"), "{err}");
}

#[tokio::test]
async fn panic_is_a_trap_with_the_panic_message_and_backtrace() {
    let err = call("hostile/panic", "{}", "{}", CallOptions::default())
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Trap, "{err}");
    assert!(err.message().contains("hostile panic"), "{err}");
    let CallError::Trap { backtrace, .. } = err else {
        unreachable!()
    };
    assert!(backtrace.is_some_and(|bt| bt.contains("wasm backtrace")));
}

#[tokio::test]
async fn huge_output_is_refused() {
    let limits = Limits {
        max_memory: 1 << 30,
        max_output: 1 << 20,
        ..Limits::default()
    };
    let err = call("hostile/huge-output", "{}", "{}", limited(limits))
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutputTooLarge, "{err}");
}

#[tokio::test]
async fn huge_output_within_default_memory_hits_the_memory_cap() {
    let err = call("hostile/huge-output", "{}", "{}", CallOptions::default())
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Memory, "{err}");
}

#[tokio::test]
async fn output_that_is_not_json_is_the_steps_own_error() {
    let err = call("hostile/not-json", "{}", "{}", CallOptions::default())
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    assert_eq!(
        err.message(),
        "the step returned invalid JSON: key must be a string at line 1 column 15"
    );
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
async fn log_flood_is_capped_and_stopped() {
    let limits = Limits {
        max_log: 16 << 10,
        ..quick(500, u64::MAX / 2)
    };
    let r = call("hostile/log-flood", "{}", "{}", limited(limits)).await;
    assert_eq!(r.result.unwrap_err().kind(), ErrorKind::Deadline);
    assert!(r.logs_dropped > 100, "dropped {}", r.logs_dropped);
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
        let limits = quick(3_000, u64::MAX / 2);
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
