//! From the position-annotated tree to the checked model, collecting every
//! error on the way.
//!
//! Here: the context of a pass, the flow's top-level fields and plugin calls.
//! `fields.rs` reads scalar fields (strings, durations, sizes...), `exprs.rs`
//! compiles expressions and checks what they read, `ids.rs` gathers and
//! validates step ids, `steps.rs` builds the step kinds and `plugin_step.rs`
//! a plugin step's policies.

mod exprs;
mod fields;
mod ids;
mod plugin_step;
mod steps;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;

use super::model::{Flow, InputSchema, PluginCall, Trigger};
use super::yaml::{Entry, Node};
use super::{FlowError, Pos};
use exprs::Scope;
use ids::Ids;

const FLOW_FIELDS: &[&str] = &[
    "flow",
    "timeout",
    "input_schema",
    "triggers",
    "concurrency",
    "steps",
    "on_error",
];
const CALL_FIELDS: &[&str] = &["plugin", "input", "config"];

/// The entries of a mapping whose fields were checked.
struct Fields<'n>(&'n [Entry]);

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.0.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    fn key_pos(&self, key: &str) -> Option<Pos> {
        self.0.iter().find(|e| e.key == key).map(|e| e.key_pos)
    }
}

/// The context of one pass: the file, the known plugins and the errors.
pub(super) struct Cx<'a> {
    file: &'a Path,
    plugins: Option<&'a dyn Fn(&str) -> bool>,
    pub(super) errors: Vec<FlowError>,
    /// Every step id in the file, for "unknown" versus "not run yet", and
    /// where each nested one is.
    ids: Ids,
    /// Ids seen so far, with where.
    seen: HashMap<String, Pos>,
    /// Step ids whose outputs are visible at this point of the pass, each
    /// with how many times it is shown (a duplicate id may be). Kept here,
    /// not copied into every scope, so a pass is linear in the steps.
    visible: HashMap<String, u32>,
    /// The visible ids in the order they were shown, so that a sequence
    /// hides its own steps when it ends.
    shown: Vec<String>,
}

impl<'a> Cx<'a> {
    pub(super) fn new(file: &'a Path, plugins: Option<&'a dyn Fn(&str) -> bool>) -> Self {
        Cx {
            file,
            plugins,
            errors: Vec::new(),
            ids: Ids::default(),
            seen: HashMap::new(),
            visible: HashMap::new(),
            shown: Vec::new(),
        }
    }

    /// Makes a step's output visible to what follows it.
    fn show(&mut self, id: &str) {
        *self.visible.entry(id.to_string()).or_default() += 1;
        self.shown.push(id.to_string());
    }

    /// Hides the steps shown since `mark` (the length of `shown` then).
    fn hide_since(&mut self, mark: usize) {
        for id in self.shown.drain(mark..) {
            if let Some(n) = self.visible.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    self.visible.remove(&id);
                }
            }
        }
    }

    pub(super) fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(FlowError {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        });
    }

    /// A warning about the file, which still loads: logged with its position.
    fn warn(&self, pos: Pos, message: &str) {
        tracing::warn!("{}:{pos}: {message}", self.file.display());
    }

    /// Checks that `node` is a mapping with only `allowed` fields.
    fn fields<'n>(&mut self, node: &'n Node, what: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        node.fields(what, allowed, &mut |pos, message| self.err(pos, message))
            .map(Fields)
    }

    fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        key: &str,
        what: &str,
        pos: Pos,
    ) -> Option<&'n Node> {
        let node = fields.get(key);
        if node.is_none() {
            self.err(pos, format!("missing required field `{key}` in {what}"));
        }
        node
    }

    fn wrong_type(&mut self, node: &Node, field: &str, expected: &str) {
        self.err(
            node.pos,
            format!("`{field}` must be {expected}, found {}", node.describe()),
        );
    }

    pub(super) fn flow(&mut self, root: &Node) -> Option<Flow> {
        let fields = self.fields(root, "the flow", FLOW_FIELDS)?;
        self.ids.collect(root, false, None);

        let name = self
            .required(&fields, "flow", "the flow", root.pos)
            .and_then(|n| self.string(n, "flow"));
        if let (Some(name), Some(node)) = (&name, fields.get("flow"))
            && name.trim().is_empty()
        {
            self.err(node.pos, "`flow` must not be empty");
        }
        let timeout = fields
            .get("timeout")
            .and_then(|n| self.timeout(n, "timeout"));
        let input_schema =
            fields
                .get("input_schema")
                .and_then(|n| match InputSchema::compile_at(&n.to_json()) {
                    Ok(s) => Some(s),
                    Err(problems) => {
                        for (pointer, message) in problems {
                            let (pos, at) = match pointer.as_str() {
                                "" => (n.pos, String::new()),
                                p => (n.at_pointer(p).pos, format!(" at {p}")),
                            };
                            self.err(pos, format!("invalid `input_schema`{at}: {message}"));
                        }
                        None
                    }
                });
        let triggers = fields
            .get("triggers")
            .map(|n| self.triggers(n))
            .unwrap_or_default();
        let concurrency = fields.get("concurrency").and_then(|n| {
            let f = self.fields(n, "`concurrency`", &["limit"])?;
            let limit = self.required(&f, "limit", "`concurrency`", n.pos)?;
            self.integer(limit, "limit", 1)
                .map(|l| l.min(u32::MAX as u64) as u32)
        });
        let steps = self
            .required(&fields, "steps", "the flow", root.pos)
            .map(|n| self.steps(n, "steps", Scope::default()));
        let on_error = fields.get("on_error").and_then(|n| {
            let scope = Scope {
                error: true,
                any_step: true,
                ..Scope::default()
            };
            self.call(n, "`on_error`", scope)
        });

        if !self.errors.is_empty() {
            return None;
        }
        Some(Flow {
            name: name?,
            file: self.file.to_path_buf(),
            timeout,
            input_schema,
            triggers,
            concurrency,
            steps: steps?,
            on_error,
            source: Default::default(),
        })
    }

    fn triggers(&mut self, node: &Node) -> Vec<Trigger> {
        let Some(items) = self.list(node, "triggers") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let Some(f) = self.fields(item, "a trigger", &["event"]) else {
                continue;
            };
            let Some(event) = self
                .required(&f, "event", "a trigger", item.pos)
                .and_then(|n| self.string(n, "event"))
            else {
                continue;
            };
            if event.is_empty() {
                self.err(item.pos, "`event` must not be empty");
                continue;
            }
            out.push(Trigger {
                event,
                pos: item.pos,
            });
        }
        out
    }

    /// A plugin call: a fallback or `on_error`.
    fn call(&mut self, node: &Node, what: &str, scope: Scope) -> Option<PluginCall> {
        let f = self.fields(node, what, CALL_FIELDS)?;
        let plugin = self
            .required(&f, "plugin", what, node.pos)
            .and_then(|n| self.plugin_name(n));
        let input = f.get("input").map(|n| self.template(n, scope));
        let config = f.get("config").map(Node::to_json).unwrap_or_default();
        Some(PluginCall {
            plugin: plugin?,
            input,
            config,
        })
    }
}
