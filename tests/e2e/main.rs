//! End-to-end tests: one binary, a module per feature. They drive the built
//! `flowhost` binary and the library against real components from `plugins/`.

mod support;

mod call_cli;
mod embed;
mod grants;
mod hostile;
mod malformed;
