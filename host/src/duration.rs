//! Durations that users give (flow files, flags, `flowhost.toml`): the
//! longest one accepted, and instants after a duration, computed so that no
//! duration can overflow them.

use std::time::{Duration, Instant};

/// The longest duration any setting accepts: one year (`1y`, 365.25 days).
///
/// A flow's or step's `timeout`, retry intervals, a circuit breaker's
/// `reset_timeout`, `--timeout`, and `drain_timeout`, `probe_timeout` and
/// `[limits] timeout` in `flowhost.toml` are refused past it where they are
/// read. Nothing needs longer, and deadlines stay far from where an
/// `Instant` overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// Why `d` is refused, if it is longer than [`MAX_DURATION`].
pub(crate) fn too_long(d: Duration) -> Option<String> {
    (d > MAX_DURATION).then(|| {
        format!(
            "it is longer than the maximum of {} (365.25 days)",
            humantime::format_duration(MAX_DURATION)
        )
    })
}

/// The instant `d` after `start`. Never panics: a `d` past what an
/// `Instant` can hold is cut to [`MAX_DURATION`] (the durations users give
/// are checked against it already, so only library callers get there).
pub(crate) fn after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .or_else(|| start.checked_add(MAX_DURATION))
        .unwrap_or(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_duration_overflows_an_instant() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(2)),
            now + Duration::from_secs(2)
        );
        assert_eq!(after(now, Duration::MAX), now + MAX_DURATION);
        assert_eq!(humantime::parse_duration("1y").unwrap(), MAX_DURATION);
        assert!(too_long(MAX_DURATION).is_none());
        assert_eq!(
            too_long(MAX_DURATION + Duration::from_nanos(1)).unwrap(),
            "it is longer than the maximum of 1year (365.25 days)"
        );
    }
}
