//! Flow engine overhead, fan-out throughput and parallel speed-up.
//!
//! Run with `cargo bench -p flowhost --bench flow` (plugins are built first).
//! Each figure is printed beside its baseline from the same run.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{input_1k, median, ms, us};
use flowhost::flow::parse_flow;
use flowhost::{Config, Context, Executor, Host, PluginSet, RunInput, RunOptions, RunStatus};
use serde_json::json;
use serde_json::value::RawValue;

fn main() {
    let dist = common::build_plugins("build.sh").join("testing");
    common::runtime().block_on(async {
        let host = Host::new(Config::default()).unwrap();
        let echo = host.load(dist.join("echo.wasm")).await.unwrap();
        let sleep = host.load(dist.join("sleep.wasm")).await.unwrap();
        let plugins = PluginSet::new([echo.clone(), sleep]);
        let exec = Executor::new(host.clone());
        overhead(&host, &exec, &plugins, &echo).await;
        fan_out(&exec, &plugins).await;
        parallel(&exec, &plugins).await;
    });
}

fn flow(text: &str) -> flowhost::flow::Flow {
    parse_flow(Path::new("bench.yaml"), text, None).unwrap_or_else(|e| panic!("{e:?}"))
}

async fn overhead(host: &Host, exec: &Executor, plugins: &PluginSet, echo: &flowhost::Plugin) {
    let steps: String = (0..10)
        .map(|i| format!("  - {{id: s{i}, plugin: echo}}\n"))
        .collect();
    let ten = flow(&format!("flow: ten\nsteps:\n{steps}"));
    let one = flow("flow: one\nsteps:\n  - {id: s0, plugin: echo}\n");
    let input = input_1k();
    let text = input.to_string();
    let ctx = Context::direct("echo");
    let n = 300;
    for _ in 0..30 {
        let input = RunInput::parse(text.clone(), "the input").unwrap();
        exec.run_input(&ten, plugins, input, RunOptions::default())
            .await;
    }
    // Times `calls` direct calls against a flow of as many steps. Both take
    // the input as JSON text; the flow's copy is made before the clock
    // starts, as a caller (a request body, a file) would already own it.
    let measure = async |flow: &flowhost::flow::Flow, calls: usize| {
        let (mut direct, mut flows) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let t = Instant::now();
            for _ in 0..calls {
                host.call(echo, &ctx, &text).await.unwrap();
            }
            direct.push(t.elapsed());
            let owned = text.clone();
            let t = Instant::now();
            // Read once, as an entry point does: one scan, no parse.
            let input = RunInput::parse(owned, "the input").unwrap();
            let r = exec
                .run_input(flow, plugins, input, RunOptions::default())
                .await;
            flows.push(t.elapsed());
            assert_eq!(r.status, RunStatus::Succeeded);
        }
        (median(direct), median(flows))
    };
    let (d, f) = measure(&ten, 10).await;
    let (d1, f1) = measure(&one, 1).await;
    println!("== engine overhead: 10-step sequential echo flow, 1 KB JSON, {n} runs ==");
    println!("10 direct calls (baseline)   {:>8.3} ms", ms(d));
    println!(
        "10-step flow                 {:>8.3} ms   overhead {:+.1}%",
        ms(f),
        (ms(f) / ms(d) - 1.0) * 100.0
    );
    println!(
        "1 direct call / 1-step flow  {:>8.3} ms / {:.3} ms: {:.1} µs a run, {:.1} µs a step",
        ms(d1),
        ms(f1),
        (ms(f1) - ms(d1)) * 1e3,
        ((ms(f) - ms(d)) - (ms(f1) - ms(d1))) * 1e3 / 9.0
    );
    // Every call checks that its output is JSON, direct or in a flow: part
    // of both sides above, shown so the engine's own share is plain.
    let out = host.call(echo, &ctx, &text).await.unwrap();
    let t = Instant::now();
    for _ in 0..10_000 {
        std::hint::black_box(serde_json::from_str::<&RawValue>(&out).unwrap());
    }
    println!(
        "output JSON check in each call (both sides) {:.2} µs",
        us(t.elapsed() / 10_000)
    );
}

async fn fan_out(exec: &Executor, plugins: &PluginSet) {
    let each = flow(
        "flow: fan\nsteps:\n  - id: each\n    for_each: \"${input.items}\"\n    max_concurrency: 16\n    steps:\n      - {id: e, plugin: echo, input: {n: \"${item}\"}}\n",
    );
    let items: Vec<u32> = (0..1000).collect();
    let input = json!({ "items": items });
    exec.run(&each, plugins, input.clone(), RunOptions::default())
        .await;
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let r = exec
            .run(&each, plugins, input.clone(), RunOptions::default())
            .await;
        times.push(t.elapsed());
        assert_eq!(r.status, RunStatus::Succeeded);
    }
    let t = median(times);
    println!("== fan-out: for_each over 1,000 items, max_concurrency 16, echo ==");
    println!(
        "{:>8.1} ms per run   {:>9.0} items/s",
        ms(t),
        1000.0 / t.as_secs_f64()
    );
}

async fn parallel(exec: &Executor, plugins: &PluginSet) {
    let branches = |n: usize| -> String {
        let b: String = (0..n)
            .map(|i| format!("      - {{id: b{i}, plugin: sleep, config: {{ms: 100}}}}\n"))
            .collect();
        format!("flow: par\nsteps:\n  - id: p\n    parallel:\n{b}")
    };
    let one = flow(&branches(1));
    let sixteen = flow(&branches(16));
    let mut t1 = Vec::new();
    let mut t16 = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        exec.run(&one, plugins, json!({}), RunOptions::default())
            .await;
        t1.push(t.elapsed());
        let t = Instant::now();
        let r = exec
            .run(&sixteen, plugins, json!({}), RunOptions::default())
            .await;
        t16.push(t.elapsed());
        assert_eq!(r.status, RunStatus::Succeeded);
    }
    let (a, b) = (median(t1), median(t16));
    println!("== parallel: sleeping branches of 100 ms ==");
    println!("1 branch (baseline)   {:>8.1} ms", ms(a));
    println!(
        "16 branches           {:>8.1} ms   {:.2}x the single branch",
        ms(b),
        ms(b) / ms(a)
    );
}
