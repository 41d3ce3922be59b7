//! Mocked steps: answers the executor gives instead of calling a step's
//! plugin, for `flowhost test`. A mocked attempt goes through everything a
//! real one does (breaker, retries, backoff, fallback, record), only the
//! guest call is replaced; its record is marked `mocked`.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::value::RawValue;

use crate::error::ErrorKind;

/// The mocks of one run, by step: a step's path (`each_order[1].price`) or
/// its id (`price`), and `ID.fallback` or `PATH.fallback` for a step's
/// fallback, `on_error` for the flow's handler. A path wins over an id.
#[derive(Debug, Clone, Default)]
pub struct Mocks {
    steps: HashMap<String, Mock>,
}

/// What a mocked step answers, attempt by attempt: attempt `n` gets the
/// `n`th answer, and every attempt past the last gets the last.
#[derive(Debug, Clone)]
pub struct Mock {
    answers: Vec<MockAnswer>,
}

/// One mocked call: after `delay` (virtual time in tests), its result. A
/// delay past the call's timeout fails the call with `deadline` at the
/// timeout, as a slow plugin would.
#[derive(Debug, Clone)]
pub struct MockAnswer {
    /// How long the call takes.
    pub delay: Duration,
    /// What it returns.
    pub result: MockResult,
}

/// The result of a mocked call.
#[derive(Debug, Clone)]
pub enum MockResult {
    /// The call returns this JSON document.
    Output(Box<RawValue>),
    /// The call fails with this kind and message.
    Error {
        /// The error kind.
        kind: ErrorKind,
        /// The message.
        message: String,
    },
    /// The call goes to this plugin instead, which must be in the run's
    /// plugin set.
    Plugin(String),
}

/// Which call of a step asks for its mock.
#[derive(Clone, Copy)]
pub(crate) enum MockRole {
    /// An attempt of the step itself.
    Step,
    /// The step's fallback.
    Fallback,
}

impl Mock {
    /// A mock whose every attempt gets `answer`.
    pub fn always(answer: MockAnswer) -> Self {
        Mock {
            answers: vec![answer],
        }
    }

    /// A mock answering attempt 1 with the first answer, 2 with the second,
    /// and so on; `None` when `answers` is empty.
    pub fn per_attempt(answers: Vec<MockAnswer>) -> Option<Self> {
        (!answers.is_empty()).then_some(Mock { answers })
    }

    fn answer(&self, attempt: u32) -> &MockAnswer {
        let i = (attempt.max(1) as usize - 1).min(self.answers.len() - 1);
        &self.answers[i]
    }
}

impl Mocks {
    /// Mocks `step` (a path, an id, `ID.fallback` or `on_error`) with `mock`.
    pub fn insert(&mut self, step: impl Into<String>, mock: Mock) {
        self.steps.insert(step.into(), mock);
    }

    /// Whether no step is mocked.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Every name a [`MockResult::Plugin`] answer calls.
    pub fn plugins(&self) -> impl Iterator<Item = &str> {
        self.steps
            .values()
            .flat_map(|m| &m.answers)
            .filter_map(|a| match &a.result {
                MockResult::Plugin(name) => Some(name.as_str()),
                _ => None,
            })
    }

    /// The answer for attempt `attempt` of the step at `path` with id `id`
    /// in `role`, if it is mocked.
    pub(crate) fn answer(
        &self,
        path: &str,
        id: &str,
        role: MockRole,
        attempt: u32,
    ) -> Option<MockAnswer> {
        let found = match role {
            MockRole::Step => self.steps.get(path).or_else(|| self.steps.get(id)),
            MockRole::Fallback => self
                .steps
                .get(&format!("{path}.fallback"))
                .or_else(|| self.steps.get(&format!("{id}.fallback"))),
        };
        found.map(|m| m.answer(attempt).clone())
    }
}
