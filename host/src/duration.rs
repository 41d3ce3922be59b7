//! Durations that users give (flow files, flags, `flowhost.toml`): how they
//! are written, the longest one accepted, and instants after a duration,
//! computed so that no duration can overflow them.

use std::time::{Duration, Instant};

/// The longest duration any setting accepts: one year (`1y`, 365.25 days).
///
/// A flow's or step's `timeout`, retry intervals, a circuit breaker's
/// `reset_timeout`, `--timeout`, and `drain_timeout`, `probe_timeout` and
/// `[limits] timeout` in `flowhost.toml` are refused past it where they are
/// read. Nothing needs longer, and deadlines stay far from where an
/// `Instant` overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// A duration as a flow file or a flag writes it: a number and a unit
/// (`500ms`, `2s`, `1m`, `1h 30m`; humantime's units, surrounding spaces
/// ignored), at most [`MAX_DURATION`]. Flow files and the `flowhost` flags
/// read durations through this one function, so they accept the same text.
///
/// # Errors
/// [`DurationError`]: not a duration, or longer than [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let d = humantime::parse_duration(text.trim()).map_err(|_| DurationError::NotADuration)?;
    if d > MAX_DURATION {
        return Err(DurationError::TooLong);
    }
    Ok(d)
}

/// Why a text is not a duration [`parse_duration`] accepts; it displays as
/// the reason alone (the caller names the text and where it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not a number and a unit.
    #[error("expected a number and a unit, such as 500ms, 2s or 1m")]
    NotADuration,
    /// Longer than [`MAX_DURATION`].
    #[error("it is longer than the maximum of 1year (365.25 days)")]
    TooLong,
}

/// Why `d` is refused, if it is longer than [`MAX_DURATION`].
pub(crate) fn too_long(d: Duration) -> Option<String> {
    (d > MAX_DURATION).then(|| DurationError::TooLong.to_string())
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

/// As [`after`], on tokio's clock, which the executor keeps so that a
/// paused clock (`flowhost test`) makes its sleeps and records virtual.
pub(crate) fn after_tokio(start: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(after(start.into_std(), d))
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
            DurationError::TooLong.to_string()
        );
        assert_eq!(
            too_long(MAX_DURATION + Duration::from_nanos(1)).unwrap(),
            "it is longer than the maximum of 1year (365.25 days)"
        );
    }

    #[test]
    fn durations_are_parsed_as_flow_files_write_them() {
        assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1y"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("5x"), Err(DurationError::NotADuration));
        assert_eq!(parse_duration("2"), Err(DurationError::NotADuration));
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Err(DurationError::TooLong)
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
