//! Malformed plugin files and inputs get clear errors that name the file.

use flowhost::LoadErrorReason;

use crate::support::{flowhost, host, run, wasm};

async fn load_err(name: &str, bytes: Vec<u8>) -> flowhost::LoadError {
    host()
        .load_bytes(name, bytes)
        .await
        .expect_err("must not load")
}

#[tokio::test]
async fn truncated_component_is_rejected() {
    let bytes = std::fs::read(wasm("testing/echo")).unwrap();
    let half = bytes[..bytes.len() / 2].to_vec();
    let err = load_err("half.wasm", half).await;
    assert!(matches!(err.reason, LoadErrorReason::Compile(_)), "{err}");
    assert!(
        err.to_string().starts_with("half.wasm: invalid component:"),
        "{err}"
    );
}

#[tokio::test]
async fn core_module_is_rejected() {
    let core = wat::parse_str("(module (func (export \"run\")))").unwrap();
    let err = load_err("core.wasm", core).await;
    assert!(matches!(err.reason, LoadErrorReason::CoreModule), "{err}");
    assert!(
        err.to_string()
            .contains("core WebAssembly module, not a component")
    );
}

#[tokio::test]
async fn wrong_world_is_rejected_naming_the_missing_export() {
    let empty = wat::parse_str("(component)").unwrap();
    let err = load_err("empty.wasm", empty).await;
    assert_eq!(
        err.to_string(),
        "empty.wasm: missing export `describe`: a step exports `describe` and `run` (world flowhost:step/step)"
    );
}

#[tokio::test]
async fn wrong_signature_is_rejected() {
    let wrong = wat::parse_str(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (export "describe" (func $f))
            (export "run" (func $f)))"#,
    )
    .unwrap();
    let err = load_err("wrong.wasm", wrong).await;
    assert!(
        matches!(err.reason, LoadErrorReason::WrongSignature(_)),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_import_is_rejected() {
    let importer = wat::parse_str(
        r#"(component
            (import "acme:missiles/launch" (instance (export "fire" (func))))
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (export "describe" (func $f))
            (export "run" (func $f)))"#,
    )
    .unwrap();
    let err = load_err("importer.wasm", importer).await;
    assert!(
        matches!(err.reason, LoadErrorReason::UnknownImport(_)),
        "{err}"
    );
    assert!(err.to_string().contains("acme:missiles/launch"), "{err}");
}

#[test]
fn cli_reports_malformed_files_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "not wasm at all").unwrap();
    let (code, _, err) = run(flowhost().args(["call", junk.to_str().unwrap()]));
    assert_eq!(code, 2);
    assert!(err.contains("junk.wasm: not a WebAssembly file"), "{err}");

    let (code, _, err) = run(flowhost().args(["call", "no-such-plugin.wasm"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("no-such-plugin.wasm: cannot read the file"),
        "{err}"
    );
}

#[test]
fn cli_reports_bad_json_with_status_2() {
    let echo = wasm("testing/echo");
    let (code, _, err) = run(flowhost().args(["call", echo.to_str().unwrap(), "--input", "{oops"]));
    assert_eq!(code, 2);
    assert!(err.contains("--input is not valid JSON"), "{err}");
    let (code, _, err) =
        run(flowhost().args(["call", echo.to_str().unwrap(), "--timeout", "soon"]));
    assert_eq!(code, 2);
    assert!(err.contains("soon"), "{err}");
}
