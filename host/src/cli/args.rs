//! Parsing of flag values shared by commands: JSON inputs, sizes, grants.

use std::path::PathBuf;
use std::time::Duration;

use flowhost::{DirGrant, DirMode, HttpGrant, Limits, parse_duration};

use super::Failure;

/// `JSON`, `@FILE` or `@-` (stdin): returns the text, checked to be JSON.
pub(crate) async fn json_arg(flag: &str, value: &str) -> Result<String, Failure> {
    let (text, origin) = text_arg(flag, value).await?;
    serde_json::from_str::<serde::de::IgnoredAny>(&text)
        .map_err(|e| Failure::usage(format!("{origin} is not valid JSON: {e}")))?;
    Ok(text)
}

/// `TEXT`, `@FILE` or `@-` (stdin): returns the text, and where it came
/// from for messages (`--input`, `--input @in.json`, `--input @- (stdin)`).
pub(crate) async fn text_arg(flag: &str, value: &str) -> Result<(String, String), Failure> {
    match value.strip_prefix('@') {
        Some("-") => {
            let mut s = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut s)
                .await
                .map_err(|e| Failure::usage(format!("{flag}: cannot read stdin: {e}")))?;
            Ok((s, format!("{flag} @- (stdin)")))
        }
        Some(path) => match tokio::fs::read_to_string(path).await {
            Ok(s) => Ok((s, format!("{flag} @{path}"))),
            Err(e) => Err(Failure::usage(format!("{flag}: cannot read {path}: {e}"))),
        },
        None => Ok((value.to_string(), flag.to_string())),
    }
}

// The value parsers below answer with the reason alone: the one-line usage
// error names the flag and the value (`invalid value `5x` for --timeout: ...`).

/// A deadline: a duration as flow files write it (`500ms`, `2s`, `1h 30m`),
/// greater than zero and at most [`MAX_DURATION`](flowhost::MAX_DURATION),
/// as a flow's `timeout` is.
pub(crate) fn timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d.is_zero() => Err("a deadline must be greater than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// A size as flow files write it: bytes (`1048576`) or a number and a unit
/// (`64MiB`).
pub(crate) fn size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| {
            "expected a number of bytes, or a number and a unit such as 512KiB, 64MiB or 1GB"
                .to_string()
        })
}

/// A memory cap: a size of at least [`Limits::MIN_MEMORY`] (64 KiB).
pub(crate) fn memory(s: &str) -> Result<u64, String> {
    let bytes = size(s)?;
    if bytes < Limits::MIN_MEMORY {
        return Err("it must be at least 64KiB (one WebAssembly page)".into());
    }
    Ok(bytes)
}

/// A fuel cap: an integer of at least 1.
pub(crate) fn fuel(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("the cap must be at least 1 (0 would stop every call at once)".into()),
        Ok(fuel) => Ok(fuel),
        Err(_) => Err("expected a whole number of fuel units".into()),
    }
}

/// Warns about each `--allow-http` grant that opens every loopback service.
pub(crate) fn warn_open_grants(grants: &[HttpGrant]) {
    for warning in grants.iter().filter_map(HttpGrant::loopback_warning) {
        tracing::warn!("--allow-http: {warning}");
    }
}

/// `HOST[:GUEST[:ro|rw]]`; the host directory must exist.
pub(crate) fn dir_grant(s: &str) -> Result<DirGrant, String> {
    let mut parts = s.splitn(3, ':');
    let host = PathBuf::from(parts.next().unwrap_or_default());
    let guest = parts.next().filter(|g| !g.is_empty()).map(str::to_string);
    let mode = match parts.next() {
        None | Some("ro") => DirMode::Ro,
        Some("rw") => DirMode::Rw,
        Some(other) => return Err(format!("the mode must be ro or rw, not `{other}`")),
    };
    if !host.is_dir() {
        return Err(format!("{} is not a directory", host.display()));
    }
    Ok(DirGrant { host, guest, mode })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_and_grants() {
        assert_eq!(size("64MiB"), Ok(64 << 20));
        assert_eq!(size("1024"), Ok(1024));
        assert_eq!(timeout("1y"), Ok(flowhost::MAX_DURATION));
        assert!(timeout("18446744073709551615s").is_err());
        assert_eq!(timeout("2s"), Ok(Duration::from_secs(2)));
        assert!(timeout("0s").is_err() && timeout("5x").is_err());
        assert_eq!(size(" 64MiB "), Ok(64 << 20));
        assert!(size("lots").is_err());
        assert_eq!(memory("64KiB"), Ok(64 << 10));
        assert!(memory("0").is_err() && memory("65535").is_err());
        assert_eq!(fuel("1"), Ok(1));
        assert!(fuel("0").is_err() && fuel("-1").is_err() && fuel("x").is_err());
        let g = dir_grant(".:/data:rw").unwrap();
        assert_eq!((g.guest.as_deref(), g.mode), (Some("/data"), DirMode::Rw));
        assert!(dir_grant(".:/data:rx").is_err());
        assert!(dir_grant("/no/such/dir").is_err());
    }
}
