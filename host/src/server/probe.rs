//! The readiness probe's step: a tiny component, written here in the
//! component text format, that echoes its input. Running it end to end
//! through the executor proves the engine, the instance pool and the
//! executor all work, whatever plugins are loaded.

use std::path::Path;

use crate::error::LoadError;
use crate::host::Host;
use crate::plugin::Plugin;

const PROBE_WAT: &str = r#"
(component
  (type $ctx (record (field "flow" string) (field "run-id" string) (field "step-id" string)
                     (field "attempt" u32) (field "config" string)))
  (type $err (variant (case "transient" string) (case "permanent" string) (case "invalid-input" string)))
  (type $meta (record (field "name" string) (field "version" string) (field "description" string)))
  (import "flowhost:step/types@0.1.0" (instance $types
    (export "context" (type (eq $ctx)))
    (export "step-error" (type (eq $err)))
    (export "metadata" (type (eq $meta)))))
  (alias export $types "context" (type $context))
  (alias export $types "step-error" (type $step-error))
  (alias export $types "metadata" (type $metadata))
  (core module $m
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 4096))
    ;; A bump allocator: every call gets a fresh instance.
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $ptr i32)
      (local.set $ptr (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
        (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
      (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
      (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
        (then (drop (memory.grow (i32.add (i32.shr_u (local.get 3) (i32.const 16)) (i32.const 1))))))
      (local.get $ptr))
    (data (i32.const 16) "probe0.1.0readiness probe")
    (data (i32.const 64) "\10\00\00\00\05\00\00\00\15\00\00\00\05\00\00\00\1a\00\00\00\0f\00\00\00")
    (func (export "describe") (result i32) (i32.const 64))
    ;; run(ctx, input) -> ok(input): the result lives at 128.
    (func (export "run") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (i32.store8 (i32.const 128) (i32.const 0))
      (i32.store (i32.const 132) (local.get 9))
      (i32.store (i32.const 136) (local.get 10))
      (i32.const 128)))
  (core instance $i (instantiate $m))
  (func $describe (result $metadata)
    (canon lift (core func $i "describe") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func $run (param "ctx" $context) (param "input" string) (result (result string (error $step-error)))
    (canon lift (core func $i "run") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (export "describe" (func $describe))
  (export "run" (func $run)))
"#;

/// The name the probe plugin goes by.
pub(crate) const PROBE: &str = "flowhost-probe";

/// Compiles the probe step.
pub(crate) async fn load(host: &Host) -> Result<Plugin, LoadError> {
    let bytes = wat::parse_str(PROBE_WAT).map_err(|e| LoadError {
        path: PROBE.into(),
        reason: crate::error::LoadErrorReason::Compile(e.to_string()),
    })?;
    host.load_bytes(Path::new(&format!("{PROBE}.wasm")), bytes)
        .await
}

#[cfg(test)]
mod tests {
    use crate::{Config, Context, Host};

    #[tokio::test]
    async fn probe_echoes_and_describes_itself() {
        let host = Host::new(Config::default()).unwrap();
        let probe = super::load(&host).await.unwrap();
        let out = host
            .call(&probe, &Context::direct("probe"), r#"{"ping":1}"#)
            .await
            .unwrap();
        assert_eq!(out, r#"{"ping":1}"#);
        assert_eq!(host.describe(&probe).await.unwrap().name, "probe");
    }
}
