//! What expressions can see: the flow input, earlier step outputs, the
//! for_each item and index, the run, and (in fallbacks and `on_error`) the
//! error. Cloning a scope is cheap: step outputs form a shared list.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::data::Doc;

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
    output: Doc,
    next: Option<Arc<Entry>>,
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

    /// Records a step's output, visible to the steps after it.
    pub(crate) fn push(&mut self, id: &str, output: Doc) {
        self.steps = Some(Arc::new(Entry {
            id: id.to_string(),
            output,
            next: self.steps.take(),
        }));
    }

    fn output(&self, id: &str) -> Option<&Doc> {
        let mut cur = self.steps.as_deref();
        while let Some(e) = cur {
            if e.id == id {
                return Some(&e.output);
            }
            cur = e.next.as_deref();
        }
        None
    }

    /// The scope as JSON, with only the steps in `refs`.
    pub(crate) fn to_json(&self, refs: &[String]) -> Value {
        let mut steps = Map::new();
        for id in refs {
            if let Some(out) = self.output(id) {
                steps.insert(id.clone(), json!({"output": out.value()}));
            }
        }
        let mut scope = Map::new();
        scope.insert("input".into(), self.input.value().clone());
        scope.insert("run".into(), (*self.run).clone());
        scope.insert("steps".into(), Value::Object(steps));
        if let Some((item, index)) = &self.item {
            scope.insert("item".into(), item.value().clone());
            scope.insert("index".into(), json!(index));
        }
        if let Some(error) = &self.error {
            scope.insert("error".into(), (**error).clone());
        }
        Value::Object(scope)
    }
}
