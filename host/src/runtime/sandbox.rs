//! Capabilities: the WASI context of one call, built from its [`Grants`].
//!
//! Deny by default: no preopened directories, no environment, no sockets
//! (every address is refused and logged), no name lookups; stdout and stderr
//! go to the host log. Each grant opens exactly what it names.

use std::sync::Arc;

use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::config::{DirMode, Grants};
use crate::error::CallError;
use crate::runtime::Context;
use crate::runtime::logs::{GuestStdio, LogSink, Stream};

pub(crate) fn wasi_ctx(
    grants: &Grants,
    logs: &Arc<LogSink>,
    ctx: &Arc<Context>,
) -> Result<WasiCtx, CallError> {
    let mut b = WasiCtxBuilder::new();
    b.stdout(GuestStdio::new(logs.clone(), Stream::Stdout))
        .stderr(GuestStdio::new(logs.clone(), Stream::Stderr));
    for dir in &grants.dirs {
        let perms = match dir.mode {
            DirMode::Ro => FsPerms::ReadOnly,
            DirMode::Rw => FsPerms::ReadWrite,
        };
        b.preopened_dir(&dir.host, dir.guest_path(), perms)
            .map_err(|e| {
                CallError::Host(format!(
                    "cannot mount {} into the guest: {e:#}",
                    dir.host.display()
                ))
            })?;
    }
    for name in &grants.env {
        if let Ok(value) = std::env::var(name) {
            b.env(name, value);
        }
    }
    // TCP and UDP stay switched on so that every socket use reaches the
    // address check below, which refuses it and logs the attempt.
    b.allow_tcp(true).allow_udp(true);
    let ctx = ctx.clone();
    b.socket_addr_check(move |addr, usage| {
        tracing::warn!(target: "flowhost::sandbox", step = %ctx.step_id, %addr, ?usage,
            "denied socket access: steps get no sockets (use an `http` grant for outbound HTTP)");
        Box::pin(async { false })
    });
    Ok(b.build())
}
