//! Steps: sequences, the common fields, and the plugin, parallel, switch and
//! for_each kinds, one function each.

use std::time::Duration;

use super::exprs::Scope;
use super::ids::step_id;
use super::{Cx, Fields};
use crate::flow::Pos;
use crate::flow::expr::{Condition, Template};
use crate::flow::model::{ForEach, Parallel, Step, StepKind, Switch, SwitchCase};
use crate::flow::yaml::{Entry, Kind, Node};

const COMMON_FIELDS: &[&str] = &["id", "input", "if", "timeout", "continue_on_error"];
const PLUGIN_FIELDS: &[&str] = &[
    "plugin",
    "config",
    "retry",
    "circuit_breaker",
    "fallback",
    "allow",
    "limits",
    "replay",
];
const PARALLEL_FIELDS: &[&str] = &["parallel", "fail_fast"];
const SWITCH_FIELDS: &[&str] = &["switch"];
const FOR_EACH_FIELDS: &[&str] = &["for_each", "max_concurrency", "steps"];

/// Which kind a step is, named by the one field that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Plugin,
    Parallel,
    Switch,
    ForEach,
}

impl Shape {
    const ALL: [Shape; 4] = [
        Shape::Plugin,
        Shape::Parallel,
        Shape::Switch,
        Shape::ForEach,
    ];

    /// The field that makes a step this kind.
    fn key(self) -> &'static str {
        match self {
            Shape::Plugin => "plugin",
            Shape::Parallel => "parallel",
            Shape::Switch => "switch",
            Shape::ForEach => "for_each",
        }
    }

    fn of_key(key: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|s| s.key() == key)
    }

    /// The fields this kind takes besides the common ones.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Shape::Plugin => PLUGIN_FIELDS,
            Shape::Parallel => PARALLEL_FIELDS,
            Shape::Switch => SWITCH_FIELDS,
            Shape::ForEach => FOR_EACH_FIELDS,
        }
    }

    /// Every field a step of this kind may have; with no kind known, every
    /// field of any kind (so only truly unknown fields are reported).
    fn allowed(shape: Option<Shape>) -> Vec<&'static str> {
        let mut allowed = COMMON_FIELDS.to_vec();
        match shape {
            // A for_each's items are its input.
            Some(Shape::ForEach) => {
                allowed.retain(|f| *f != "input");
                allowed.extend(FOR_EACH_FIELDS);
            }
            Some(shape) => allowed.extend(shape.fields()),
            None => Shape::ALL
                .into_iter()
                .for_each(|s| allowed.extend(s.fields())),
        }
        allowed
    }
}

/// The fields every kind of step takes.
struct Common {
    input: Option<Template>,
    condition: Option<Condition>,
    timeout: Option<Duration>,
    continue_on_error: bool,
}

impl Cx<'_> {
    /// A sequence of steps: each sees the ones before it, which are hidden
    /// again when the sequence ends.
    pub(super) fn steps(&mut self, node: &Node, field: &str, scope: Scope) -> Vec<Step> {
        let Some(items) = self.list(node, field) else {
            return Vec::new();
        };
        if items.is_empty() {
            self.err(node.pos, format!("`{field}` must not be empty"));
        }
        let mark = self.shown.len();
        let mut out = Vec::new();
        for item in items {
            if let Some(step) = self.step(item, scope) {
                out.push(step);
            }
            if let Some(id) = step_id(item) {
                self.show(id);
            }
        }
        self.hide_since(mark);
        out
    }

    /// One step: its id, its kind, the fields its kind allows, then the
    /// common fields and the kind's own.
    pub(super) fn step(&mut self, node: &Node, scope: Scope) -> Option<Step> {
        let Kind::Map(entries) = &node.kind else {
            self.wrong_type(node, "a step", "a mapping");
            return None;
        };
        let id = self.declare_id(&Fields(entries), node.pos);
        let what = match &id {
            Some(id) => format!("step `{id}`"),
            None => "a step".to_string(),
        };
        let shape = self.shape(entries, node.pos, &what);
        let what_kind = match shape {
            Some(s) => format!("{what} (a {} step)", s.key()),
            None => what.clone(),
        };
        let fields = self.fields(node, &what_kind, &Shape::allowed(shape))?;
        let common = self.common(&fields, scope);
        let kind = match shape? {
            Shape::Plugin => StepKind::Plugin(Box::new(self.plugin_step(&fields, scope)?)),
            Shape::Parallel => StepKind::Parallel(self.parallel(&fields, scope)?),
            Shape::Switch => StepKind::Switch(self.switch(fields.get("switch")?, scope)?),
            Shape::ForEach => StepKind::ForEach(self.for_each(&fields, node.pos, &what, scope)?),
        };
        Some(Step {
            id: id?,
            kind,
            input: common.input,
            condition: common.condition,
            timeout: common.timeout,
            continue_on_error: common.continue_on_error,
        })
    }

    /// The step's kind: exactly one of the kind fields.
    fn shape(&mut self, entries: &[Entry], pos: Pos, what: &str) -> Option<Shape> {
        let found: Vec<(Shape, Pos)> = entries
            .iter()
            .filter_map(|e| Some((Shape::of_key(&e.key)?, e.key_pos)))
            .collect();
        let expected = "must have exactly one of `plugin`, `parallel`, `switch` or `for_each`";
        match found.as_slice() {
            [(shape, _)] => Some(*shape),
            [] => {
                self.err(pos, format!("{what} {expected}; found none"));
                None
            }
            [_, (_, second), ..] => {
                let names: Vec<String> = found
                    .iter()
                    .map(|(s, _)| format!("`{}`", s.key()))
                    .collect();
                self.err(
                    *second,
                    format!("{what} {expected}; found {}", names.join(" and ")),
                );
                None
            }
        }
    }

    fn common(&mut self, fields: &Fields<'_>, scope: Scope) -> Common {
        Common {
            input: fields.get("input").map(|n| self.template(n, scope)),
            condition: fields
                .get("if")
                .and_then(|n| self.condition(n, "if", scope)),
            timeout: fields
                .get("timeout")
                .and_then(|n| self.timeout(n, "timeout")),
            continue_on_error: fields
                .get("continue_on_error")
                .and_then(|n| self.boolean(n, "continue_on_error"))
                .unwrap_or(false),
        }
    }

    fn parallel(&mut self, fields: &Fields<'_>, scope: Scope) -> Option<Parallel> {
        let list = fields.get("parallel")?;
        let items = self.list(list, "parallel")?;
        if items.is_empty() {
            self.err(list.pos, "`parallel` must not be empty");
        }
        // Branches see what the parallel step sees, not each other.
        let branches = items.iter().filter_map(|b| self.step(b, scope)).collect();
        let fail_fast = fields
            .get("fail_fast")
            .and_then(|n| self.boolean(n, "fail_fast"))
            .unwrap_or(true);
        Some(Parallel {
            branches,
            fail_fast,
        })
    }

    fn switch(&mut self, node: &Node, scope: Scope) -> Option<Switch> {
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
                cases.push(SwitchCase { when, steps });
            }
        }
        Some(Switch { cases, default })
    }

    /// A for_each step: its items, its bound, and its pipeline, whose steps
    /// also see `item` and `index`.
    fn for_each(
        &mut self,
        fields: &Fields<'_>,
        pos: Pos,
        what: &str,
        scope: Scope,
    ) -> Option<ForEach> {
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
            ..scope
        };
        let steps = self
            .required(fields, "steps", what, pos)
            .map(|n| self.steps(n, "steps", inner))?;
        Some(ForEach {
            items,
            max_concurrency,
            steps,
        })
    }
}
