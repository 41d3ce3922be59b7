//! Retry policies: backoff and which errors are retried.

use std::time::Duration;

use crate::flow::model::*;

#[test]
fn backoff_is_exponential_capped_and_jittered() {
    let mut p = RetryPolicy {
        max_attempts: 10,
        initial_interval: Duration::from_millis(100),
        backoff_coefficient: 2.0,
        max_interval: Duration::from_secs(1),
        jitter: Jitter::None,
        ..RetryPolicy::default()
    };
    let ms = |p: &RetryPolicy, attempt, rng| p.backoff(attempt, rng).as_millis();
    assert_eq!(ms(&p, 1, 0.5), 100);
    assert_eq!(ms(&p, 2, 0.5), 200);
    assert_eq!(ms(&p, 3, 0.5), 400);
    assert_eq!(ms(&p, 4, 0.5), 800);
    assert_eq!(ms(&p, 5, 0.5), 1000);
    assert_eq!(ms(&p, 60, 0.5), 1000);
    assert_eq!(ms(&p, 0, 0.5), 100);
    p.jitter = Jitter::Full;
    assert_eq!(ms(&p, 3, 0.5), 200);
    assert_eq!(ms(&p, 3, 0.0), 0);
    assert_eq!(ms(&p, 5, 0.25), 250);
    p.jitter = Jitter::Equal;
    assert_eq!(ms(&p, 3, 0.5), 300);
    assert_eq!(ms(&p, 3, 0.0), 200);
    assert_eq!(ms(&p, 5, 0.5), 750);
    p.backoff_coefficient = 1.0;
    p.jitter = Jitter::None;
    assert_eq!(ms(&p, 7, 0.9), 100);
}

#[test]
fn which_errors_are_retried() {
    use crate::ErrorKind::{self, *};
    let default = RetryPolicy::block_default();
    for kind in [Transient, Deadline, Host] {
        assert!(default.should_retry(kind), "{kind}");
    }
    for kind in [
        Permanent,
        InvalidInput,
        Trap,
        Fuel,
        Memory,
        OutputTooLarge,
        CircuitOpen,
    ] {
        assert!(!default.should_retry(kind), "{kind}");
    }
    let p = RetryPolicy {
        non_retryable: vec![Deadline],
        ..RetryPolicy::block_default()
    };
    assert!(!p.should_retry(Deadline));
    assert!(p.should_retry(Transient));
    let p = RetryPolicy {
        retry_on: Some(vec![Trap, Transient]),
        non_retryable: vec![Transient],
        ..RetryPolicy::block_default()
    };
    assert!(p.should_retry(Trap));
    assert!(!p.should_retry(Transient));
    assert!(!p.should_retry(Host));
    // Every kind a call fails with is a valid retry kind; of the flow's, only circuit-open.
    let accepted: Vec<_> = ErrorKind::ALL
        .iter()
        .copied()
        .filter(|k| RetryPolicy::accepts(*k))
        .collect();
    assert_eq!(accepted[..9], ErrorKind::ALL[..9]);
    assert_eq!(accepted[9..], [CircuitOpen]);
}
