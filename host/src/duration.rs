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

/// `d` rounded for people: `750us`, `500ms`, `1.5s`, `2m 30s`. Deadlines
/// measured from a clock are a few microseconds short of what was set;
/// printing them exactly (`499ms 963us 836ns`) only hides the setting.
pub(crate) fn for_people(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        return format!("{}us", d.as_micros());
    }
    let ms = (d.as_secs_f64() * 1e3).round() as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let tenths = (ms + 50) / 100;
        return match tenths % 10 {
            0 => format!("{}s", tenths / 10),
            t => format!("{}.{t}s", tenths / 10),
        };
    }
    let secs = Duration::from_secs((ms + 500) / 1000);
    humantime::format_duration(secs).to_string()
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

    #[test]
    fn durations_are_rounded_for_people() {
        let cases = [
            (Duration::from_nanos(499_963_836), "500ms"),
            (Duration::from_micros(750), "750us"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_micros(999_700), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_millis(1_449), "1.4s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_millis(59_960), "60s"),
            (Duration::from_secs(150), "2m 30s"),
        ];
        for (d, want) in cases {
            assert_eq!(for_people(d), want, "{d:?}");
        }
    }
}
