//! Validation is linear in the number of steps.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::flow::parse_flow;

/// A flow of `n` steps, each reading the one before it and with a fallback
/// that reads it too: what a step may read is looked up and scoped per step.
fn chain(n: usize) -> String {
    let mut text = String::from("flow: chain\nsteps:\n  - id: s0\n    plugin: echo\n");
    for i in 1..n {
        let prev = i - 1;
        text.push_str(&format!(
            "  - id: s{i}\n    plugin: echo\n    input: \"${{steps.s{prev}.output}}\"\n    fallback: {{plugin: echo, input: \"${{steps.s{prev}.output}}\"}}\n"
        ));
    }
    text
}

/// The CPU time this thread has used, so that a loaded machine does not
/// count (from the scheduler's statistics, in nanoseconds); the wall clock
/// where those cannot be read.
fn cpu_time(wall: Instant) -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .filter(|ns| *ns > 0)
        .map_or_else(|| wall.elapsed(), Duration::from_nanos)
}

/// The least time of a few validations of `text`.
fn validate_time(text: &str, n: usize) -> Duration {
    let wall = Instant::now();
    let before = cpu_time(wall);
    let flow = parse_flow(Path::new("chain.yaml"), text, None).expect("the chain is valid");
    let time = cpu_time(wall) - before;
    assert_eq!(flow.step_count(), n);
    time
}

#[test]
fn validation_time_grows_linearly_with_the_steps() {
    let (small, large) = (2_000, 8_000);
    let (small_text, large_text) = (chain(small), chain(large));
    // The best of three each, interleaved, so a burst of load hits both.
    let (mut s, mut l) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        s = s.min(validate_time(&small_text, small));
        l = l.min(validate_time(&large_text, large));
    }
    // Linear is about 4 (quadratic was about 12 at these sizes): a bound
    // midway, on CPU time, does not flake.
    let ratio = l.as_secs_f64() / s.as_secs_f64().max(1e-6);
    eprintln!("validation: {large} steps took {l:?}, {small} took {s:?}: {ratio:.1}x");
    assert!(
        ratio < 7.0,
        "{large} steps took {l:?}, {small} took {s:?}: {ratio:.1} times as long"
    );
}
