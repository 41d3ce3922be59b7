//! Turning what wasmtime reports into a typed [`CallError`].

use wasmtime::{Trap, WasmBacktrace};

use crate::config::Limits;
use crate::error::{CallError, Limit};
use crate::runtime::limiter::MemoryLimitExceeded;
use crate::runtime::logs::LogSink;

/// wasmtime's message when a guest-to-host transfer exceeds the hostcall fuel.
const TOO_MUCH_DATA: &str = "too much data is being copied between the host and the guest";

pub(super) fn deadline(limits: &Limits) -> CallError {
    CallError::limit(
        Limit::Deadline,
        format!(
            "the call ran past its deadline of {}",
            crate::duration::for_people(limits.timeout)
        ),
    )
}

pub(super) fn trap(err: wasmtime::Error, limits: &Limits, logs: &LogSink) -> CallError {
    if let Some(e) = err.downcast_ref::<MemoryLimitExceeded>() {
        return CallError::limit(Limit::Memory, e.to_string());
    }
    if err
        .chain()
        .any(|e| e.to_string().starts_with(TOO_MUCH_DATA))
    {
        return CallError::limit(
            Limit::OutputTooLarge,
            format!(
                "the step passed more than {} to the host in one transfer",
                bytesize::ByteSize(limits.max_output).display().iec()
            ),
        );
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return with_stderr(
            format!("the guest exited with status {}", exit.0),
            None,
            logs,
        );
    }
    let backtrace = err.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::limit(
            Limit::Fuel,
            match limits.fuel {
                Some(cap) => format!("the call used all of its {cap} fuel"),
                None => "the call used all the fuel there is".into(),
            },
        ),
        Some(Trap::Interrupt) => deadline(limits),
        Some(Trap::StackOverflow) => with_stderr("stack overflow".into(), backtrace, logs),
        Some(Trap::UnreachableCodeReached) => with_stderr(
            "wasm `unreachable` executed (a panic or abort in the guest)".into(),
            backtrace,
            logs,
        ),
        Some(trap) => with_stderr(trap.to_string(), backtrace, logs),
        None if backtrace.is_some() => with_stderr(root_message(&err), backtrace, logs),
        None => CallError::Host(format!("{err:#}")),
    }
}

fn root_message(err: &wasmtime::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .find(|m| !m.starts_with("error while executing at wasm backtrace"))
        .unwrap_or_else(|| err.to_string())
}

fn with_stderr(mut message: String, backtrace: Option<String>, logs: &LogSink) -> CallError {
    let tail = logs.stderr_tail();
    if !tail.is_empty() {
        message.push_str("; guest stderr: ");
        message.push_str(&tail.join(" | "));
    }
    CallError::Trap { message, backtrace }
}
