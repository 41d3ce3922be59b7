//! What expressions can see: the flow input, earlier step outputs, the
//! for_each item and index, the run, and (in fallbacks and `on_error`) the
//! error. Cloning a scope is cheap: step outputs form a shared list, which
//! also keeps the steps that left none (skipped or continued), to say so.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Value, json};

use super::data::Doc;
use crate::flow::{Bindings, NoOutput};

#[derive(Clone)]
pub(crate) struct Scope {
    input: Doc,
    run: Arc<Value>,
    item: Option<(Doc, usize)>,
    error: Option<Arc<Value>>,
    steps: Option<Arc<Entry>>,
}

struct Entry {
    id: String,
    outcome: Outcome,
    next: Option<Arc<Entry>>,
}

/// What a step that ended left for the steps after it.
pub(crate) enum Outcome {
    Output(Doc),
    /// Its `if` was false.
    Skipped,
    /// It failed under `continue_on_error`.
    Continued,
}

impl Outcome {
    pub(crate) fn output(&self) -> Option<&Doc> {
        match self {
            Outcome::Output(d) => Some(d),
            Outcome::Skipped | Outcome::Continued => None,
        }
    }
}

impl Scope {
    pub(crate) fn new(input: Doc, run_id: &str, flow: &str) -> Self {
        Scope {
            input,
            run: Arc::new(json!({"id": run_id, "flow": flow, "attempt": 1})),
            item: None,
            error: None,
            steps: None,
        }
    }

    /// The scope of one for_each item.
    pub(crate) fn with_item(&self, item: Doc, index: usize) -> Self {
        Scope {
            item: Some((item, index)),
            ..self.clone()
        }
    }

    /// The scope of a fallback or `on_error`.
    pub(crate) fn with_error(&self, error: Value) -> Self {
        Scope {
            error: Some(Arc::new(error)),
            ..self.clone()
        }
    }

    /// The scope of a retry: `run.attempt` is `attempt`.
    pub(crate) fn with_attempt(&self, attempt: u32) -> Self {
        let mut run = (*self.run).clone();
        run["attempt"] = json!(attempt);
        Scope {
            run: Arc::new(run),
            ..self.clone()
        }
    }

    /// Records how a step ended, visible to the steps after it.
    pub(crate) fn push(&mut self, id: &str, outcome: Outcome) {
        self.steps = Some(Arc::new(Entry {
            id: id.to_string(),
            outcome,
            next: self.steps.take(),
        }));
    }

    fn outcome(&self, id: &str) -> Option<&Outcome> {
        let mut cur = self.steps.as_deref();
        while let Some(e) = cur {
            if e.id == id {
                return Some(&e.outcome);
            }
            cur = e.next.as_deref();
        }
        None
    }
}

/// Expressions read the scope's documents in place: nothing is copied to
/// evaluate, however large the input (a for_each item reads only its item).
impl Bindings for Scope {
    fn var(&self, name: &str) -> Result<Option<Cow<'_, Value>>, String> {
        Ok(match name {
            "input" => Some(Cow::Borrowed(self.input.value()?)),
            "run" => Some(Cow::Borrowed(&*self.run)),
            "item" => match &self.item {
                Some((d, _)) => Some(Cow::Borrowed(d.value()?)),
                None => None,
            },
            "index" => self.item.as_ref().map(|(_, i)| Cow::Owned(json!(i))),
            "error" => self.error.as_deref().map(Cow::Borrowed),
            _ => None,
        })
    }

    fn output(&self, id: &str) -> Result<Option<&Value>, String> {
        self.outcome(id)
            .and_then(Outcome::output)
            .map(|d| d.value())
            .transpose()
    }

    fn step_ids(&self) -> Vec<&str> {
        let mut ids = Vec::new();
        let mut cur = self.steps.as_deref();
        while let Some(e) = cur {
            ids.push(e.id.as_str());
            cur = e.next.as_deref();
        }
        ids
    }

    fn no_output(&self, id: &str) -> Option<NoOutput> {
        match self.outcome(id) {
            Some(Outcome::Output(_)) => None,
            Some(Outcome::Skipped) => Some(NoOutput::Skipped),
            Some(Outcome::Continued) => Some(NoOutput::Continued),
            // Checked at load, a step read and not in the scope can only be
            // one `on_error` reads: it failed, or never ran.
            None => self.error.as_ref().map(|_| NoOutput::Unfinished),
        }
    }
}
