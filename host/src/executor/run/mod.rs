//! One run in progress, one file per concern; each builds on the ones
//! before it:
//!
//! - `records`: where step records go, and a step's record in progress;
//! - `ctx`: [`RunCtx`], what every part reads (flow, plugins, clock, limits);
//! - `call`: one guest call, inline or on its own task, and its attempt record;
//! - `plugin`: plugin steps (attempts, breakers, retries, fallbacks);
//! - `steps`: sequences and the composite patterns;
//! - `flow`: the whole run (input, deadline) and `on_error`.

mod call;
mod ctx;
mod flow;
mod plugin;
mod records;
mod steps;

pub(super) use ctx::RunCtx;
