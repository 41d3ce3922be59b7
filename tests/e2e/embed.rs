//! The library API as an embedder uses it.

use flowhost::{CallOptions, Config, Context, ErrorKind, Host};
use serde_json::json;

use crate::support::{call, host, plugin, wasm};

#[tokio::test]
async fn three_line_embedding() {
    let host = Host::new(Config::default()).unwrap();
    let echo = host.load(wasm("testing/echo")).await.unwrap();
    let out = host
        .call(&echo, &Context::direct("echo"), r#"{"hi":1}"#)
        .await
        .unwrap();
    assert_eq!(out, r#"{"hi":1}"#);
}

#[tokio::test]
async fn every_call_gets_a_fresh_instance() {
    for _ in 0..3 {
        let out = call("testing/counter", "{}", "{}", CallOptions::default())
            .await
            .result
            .unwrap();
        assert_eq!(out, r#"{"calls":1}"#, "state leaked between calls");
    }
}

#[tokio::test]
async fn context_reaches_the_step() {
    let p = plugin("testing/flaky").await;
    let ctx = Context {
        attempt: 3,
        config: json!({"fail_until": 3}).to_string(),
        ..Context::direct("flaky")
    };
    let out = host().call(&p, &ctx, "{}").await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["attempt"],
        3
    );
    let early = Context { attempt: 2, ..ctx };
    let err = host().call(&p, &early, "{}").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
}

#[tokio::test]
async fn describe_returns_metadata() {
    let p = plugin("validate-order").await;
    let meta = host().describe(&p).await.unwrap();
    assert_eq!(meta.name, "validate-order");
    assert!(!meta.description.is_empty());
}

#[tokio::test]
async fn fuel_used_is_reported() {
    let config = json!({"iterations": 1000}).to_string();
    let small = call("testing/spin", "{}", &config, CallOptions::default()).await;
    let config = json!({"iterations": 100000}).to_string();
    let big = call("testing/spin", "{}", &config, CallOptions::default()).await;
    small.result.unwrap();
    big.result.unwrap();
    assert!(
        big.fuel_used > small.fuel_used * 10,
        "{} vs {}",
        big.fuel_used,
        small.fuel_used
    );
}

#[tokio::test]
async fn peak_memory_is_reported() {
    let small = call("testing/echo", "{}", "{}", CallOptions::default()).await;
    let big_input = json!({ "blob": "x".repeat(4 << 20) }).to_string();
    let big = call("testing/echo", &big_input, "{}", CallOptions::default()).await;
    small.result.unwrap();
    big.result.unwrap();
    assert!(small.peak_memory >= 64 << 10, "{}", small.peak_memory);
    assert!(
        big.peak_memory > small.peak_memory + (4 << 20),
        "{} vs {}",
        big.peak_memory,
        small.peak_memory
    );
}
