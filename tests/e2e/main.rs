#![allow(unreachable_pub)]
//! End-to-end tests: one binary, a module per feature. They drive the built
//! `flowhost` binary and the library against real components from `plugins/`.

mod support;

mod bench_cli;
mod cache;
mod call_cli;
mod contract_versions;
mod dev_cli;
mod durable;
mod embed;
mod examples;
mod expr_bounds;
mod fleet;
mod flows;
mod flowtest;
mod grants;
mod history;
mod hostile;
mod hostile_files;
mod http_pool;
mod kv;
mod languages;
mod malformed;
mod newcomer;
mod reload;
mod replay;
mod run_cli;
mod runs_cli;
mod server;
mod sql;
mod ui;
