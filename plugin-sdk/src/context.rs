//! What the host tells a step about the current call.

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
