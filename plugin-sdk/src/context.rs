//! What the host tells a step about the current call.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;

use crate::StepError;

/// The call's context: where the step runs and with which config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    flow: String,
    run_id: String,
    step_id: String,
    attempt: u32,
    config: String,
    /// Asked of the host on first use (most steps never ask).
    execution_key: OnceLock<String>,
}

impl Context {
    /// Builds a context by hand, e.g. to unit-test a step natively.
    /// `config` is a JSON document.
    pub fn new(
        flow: impl Into<String>,
        run_id: impl Into<String>,
        step_id: impl Into<String>,
        attempt: u32,
        config: impl Into<String>,
    ) -> Self {
        Self {
            flow: flow.into(),
            run_id: run_id.into(),
            step_id: step_id.into(),
            attempt,
            config: config.into(),
            execution_key: OnceLock::new(),
        }
    }

    /// The same context with `key` as its [`execution_key`](Self::execution_key),
    /// e.g. to unit-test a step natively.
    pub fn with_execution_key(self, key: impl Into<String>) -> Self {
        Self {
            execution_key: OnceLock::from(key.into()),
            ..self
        }
    }

    /// The flow's name; empty when the step is called directly.
    pub fn flow(&self) -> &str {
        &self.flow
    }

    /// The run's correlation id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The step's id in its flow (the plugin name when called directly).
    pub fn step_id(&self) -> &str {
        &self.step_id
    }

    /// 1 for the first try, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A key for this execution of this step, the same on every attempt and
    /// after a restart of the host: `<run id>/<step path>` (for example
    /// `8f1c.../lines[3].price`), or the plugin name when the step is called
    /// directly. A step that was in flight when the host stopped runs again
    /// when the run resumes, so use this key to make side effects
    /// idempotent (an idempotency key for a payment, a file name, ...).
    ///
    /// Outside WebAssembly (native unit tests) it is the one set with
    /// [`with_execution_key`](Self::with_execution_key), else
    /// `<run id>/<step id>`, the key of a top-level step.
    pub fn execution_key(&self) -> &str {
        self.execution_key.get_or_init(|| self.host_execution_key())
    }

    #[cfg(target_arch = "wasm32")]
    fn host_execution_key(&self) -> String {
        crate::bindings::flowhost::step::host::execution_key()
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn host_execution_key(&self) -> String {
        format!("{}/{}", self.run_id, self.step_id)
    }

    /// The step's config as the JSON text the host passed (`"{}"` when none).
    pub fn raw_config(&self) -> &str {
        &self.config
    }

    /// The step's config parsed into `T`. A config that does not fit `T` is
    /// an [`StepError::InvalidInput`] naming the problem, so `?` is enough.
    /// An empty config string reads as `{}`.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        let text = if self.config.trim().is_empty() {
            "{}"
        } else {
            &self.config
        };
        serde_json::from_str(text)
            .map_err(|e| StepError::invalid_input(format!("invalid config for this step: {e}")))
    }
}
