//! Steps: sequences, the common fields, and the plugin, parallel, switch and
//! for_each kinds.

use super::exprs::Scope;
use super::ids::{step_id, valid_id};
use super::{Cx, Fields};
use crate::flow::model::{ForEach, Parallel, Step, StepKind, Switch, SwitchCase};
use crate::flow::yaml::{Kind, Node};

const STEP_KINDS: &[&str] = &["plugin", "parallel", "switch", "for_each"];
const COMMON_FIELDS: &[&str] = &["id", "input", "if", "timeout", "continue_on_error"];
const PLUGIN_FIELDS: &[&str] = &[
    "plugin",
    "config",
    "retry",
    "circuit_breaker",
    "fallback",
    "allow",
    "limits",
];
const PARALLEL_FIELDS: &[&str] = &["parallel", "fail_fast"];
const SWITCH_FIELDS: &[&str] = &["switch"];
const FOR_EACH_FIELDS: &[&str] = &["for_each", "max_concurrency", "steps"];

impl Cx<'_> {
    /// A sequence of steps: each sees the ones before it.
    pub(super) fn steps(&mut self, node: &Node, field: &str, scope: &Scope) -> Vec<Step> {
        let Some(items) = self.list(node, field) else {
            return Vec::new();
        };
        if items.is_empty() {
            self.err(node.pos, format!("`{field}` must not be empty"));
        }
        let mut scope = scope.clone();
        let mut out = Vec::new();
        for item in items {
            if let Some(step) = self.step(item, &scope) {
                out.push(step);
            }
            if let Some(id) = step_id(item) {
                scope.visible.push(id.to_string());
            }
        }
        out
    }

    pub(super) fn step(&mut self, node: &Node, scope: &Scope) -> Option<Step> {
        let Kind::Map(entries) = &node.kind else {
            self.wrong_type(node, "a step", "a mapping");
            return None;
        };
        let all = Fields(entries);

        // The id: required, well formed, unique.
        let id = match all.get("id") {
            None => {
                self.err(node.pos, "missing required field `id` in a step");
                None
            }
            Some(n) => self.string(n, "id").and_then(|id| {
                if !valid_id(&id) {
                    self.err(
                        n.pos,
                        format!(
                            "invalid step id `{id}`: use letters, digits, `_` and `-`, starting with a letter or `_`"
                        ),
                    );
                    return None;
                }
                if let Some(first) = self.seen.get(&id) {
                    let first = *first;
                    self.err(
                        n.pos,
                        format!(
                            "duplicate step id `{id}` (first defined at line {}, column {})",
                            first.line, first.column
                        ),
                    );
                } else {
                    self.seen.insert(id.clone(), n.pos);
                }
                Some(id)
            }),
        };
        let what = match &id {
            Some(id) => format!("step `{id}`"),
            None => "a step".to_string(),
        };

        // Exactly one kind.
        let kinds: Vec<&str> = entries
            .iter()
            .map(|e| e.key.as_str())
            .filter(|k| STEP_KINDS.contains(k))
            .collect();
        let kind = match kinds.as_slice() {
            [k] => Some(*k),
            [] => {
                self.err(
                    node.pos,
                    format!(
                        "{what} must have exactly one of `plugin`, `parallel`, `switch` or `for_each`; found none"
                    ),
                );
                None
            }
            [_, second, ..] => {
                let found: Vec<String> = kinds.iter().map(|k| format!("`{k}`")).collect();
                let pos = all.key_pos(second).unwrap_or(node.pos);
                self.err(
                    pos,
                    format!(
                        "{what} must have exactly one of `plugin`, `parallel`, `switch` or `for_each`; found {}",
                        found.join(" and ")
                    ),
                );
                None
            }
        };
        let mut allowed: Vec<&str> = COMMON_FIELDS.to_vec();
        match kind {
            Some("plugin") => allowed.extend(PLUGIN_FIELDS),
            Some("parallel") => allowed.extend(PARALLEL_FIELDS),
            Some("switch") => allowed.extend(SWITCH_FIELDS),
            Some(_) => {
                allowed.retain(|f| *f != "input");
                allowed.extend(FOR_EACH_FIELDS);
            }
            None => {
                for set in [
                    PLUGIN_FIELDS,
                    PARALLEL_FIELDS,
                    SWITCH_FIELDS,
                    FOR_EACH_FIELDS,
                ] {
                    allowed.extend(set);
                }
            }
        }
        let what_kind = match kind {
            Some(k) => format!("{what} (a {k} step)"),
            None => what.clone(),
        };
        let fields = self.fields(node, &what_kind, &allowed)?;

        let input = fields.get("input").map(|n| self.template(n, scope));
        let condition = fields
            .get("if")
            .and_then(|n| self.condition(n, "if", scope));
        let timeout = fields
            .get("timeout")
            .and_then(|n| self.timeout(n, "timeout"));
        let continue_on_error = fields
            .get("continue_on_error")
            .and_then(|n| self.boolean(n, "continue_on_error"))
            .unwrap_or(false);

        let kind = match kind? {
            "plugin" => StepKind::Plugin(Box::new(self.plugin_step(&fields, scope)?)),
            "parallel" => {
                let list = fields.get("parallel")?;
                let items = self.list(list, "parallel")?;
                if items.is_empty() {
                    self.err(list.pos, "`parallel` must not be empty");
                }
                // Branches see what the parallel step sees, not each other.
                let branches: Vec<Step> =
                    items.iter().filter_map(|b| self.step(b, scope)).collect();
                let fail_fast = fields
                    .get("fail_fast")
                    .and_then(|n| self.boolean(n, "fail_fast"))
                    .unwrap_or(true);
                StepKind::Parallel(Parallel {
                    branches,
                    fail_fast,
                })
            }
            "switch" => StepKind::Switch(self.switch(fields.get("switch")?, scope)?),
            _ => {
                let each = fields.get("for_each")?;
                let items = match each.kind {
                    Kind::Str(_) | Kind::Seq(_) => self.template(each, scope),
                    _ => {
                        self.wrong_type(each, "for_each", "a list or an expression");
                        return None;
                    }
                };
                let max_concurrency = fields
                    .get("max_concurrency")
                    .and_then(|n| self.integer(n, "max_concurrency", 1))
                    .map(|n| n as usize)
                    .unwrap_or(ForEach::DEFAULT_MAX_CONCURRENCY);
                let inner = Scope {
                    item: true,
                    ..scope.clone()
                };
                let steps = self
                    .required(&fields, "steps", &what, node.pos)
                    .map(|n| self.steps(n, "steps", &inner))?;
                StepKind::ForEach(ForEach {
                    items,
                    max_concurrency,
                    steps,
                })
            }
        };
        Some(Step {
            id: id?,
            pos: node.pos,
            kind,
            input,
            condition,
            timeout,
            continue_on_error,
        })
    }

    pub(super) fn switch(&mut self, node: &Node, scope: &Scope) -> Option<Switch> {
        let items = self.list(node, "switch")?;
        if items.is_empty() {
            self.err(node.pos, "`switch` must not be empty");
        }
        let mut cases = Vec::new();
        let mut default = None;
        for (i, item) in items.iter().enumerate() {
            let is_default =
                matches!(&item.kind, Kind::Map(e) if e.iter().any(|e| e.key == "default"));
            if is_default {
                let Some(f) = self.fields(item, "a default case", &["default"]) else {
                    continue;
                };
                if i + 1 != items.len() {
                    let pos = f.key_pos("default").unwrap_or(item.pos);
                    self.err(pos, "`default` must be the last case of a switch");
                }
                if let Some(n) = f.get("default") {
                    default = Some(self.steps(n, "default", scope));
                }
                continue;
            }
            let Some(f) = self.fields(item, "a switch case", &["when", "steps"]) else {
                continue;
            };
            let when = self
                .required(&f, "when", "a switch case", item.pos)
                .and_then(|n| self.condition(n, "when", scope));
            let steps = self
                .required(&f, "steps", "a switch case", item.pos)
                .map(|n| self.steps(n, "steps", scope));
            if let (Some(when), Some(steps)) = (when, steps) {
                cases.push(SwitchCase {
                    when,
                    steps,
                    pos: item.pos,
                });
            }
        }
        Some(Switch { cases, default })
    }
}
