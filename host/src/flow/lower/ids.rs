//! Step ids: gathered before the real pass, and checked for their form and
//! uniqueness.

use std::collections::{HashMap, HashSet};

use super::{Cx, Fields};
use crate::flow::Pos;
use crate::flow::yaml::{Kind, Node};

/// The id of a step node, if it has a string one.
pub(super) fn step_id(node: &Node) -> Option<&str> {
    match &node.kind {
        Kind::Map(entries) => {
            entries
                .iter()
                .find(|e| e.key == "id")
                .and_then(|e| match &e.value.kind {
                    Kind::Str(s) => Some(s.as_str()),
                    _ => None,
                })
        }
        _ => None,
    }
}

/// The composite step a nested step is in.
#[derive(Debug, Clone)]
pub(super) struct Parent {
    pub(super) id: String,
    pub(super) kind: Composite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Composite {
    Parallel,
    Switch,
    ForEach,
}

/// Every step id in the file and, for a nested step, the composite it is in:
/// gathered before the real pass. A duplicate id keeps its first place.
#[derive(Default)]
pub(super) struct Ids {
    pub(super) all: HashSet<String>,
    pub(super) parents: HashMap<String, Parent>,
}

impl Ids {
    /// Gathers the steps under `node`: steps when `is_step`, nested in `parent`.
    pub(super) fn collect(&mut self, node: &Node, is_step: bool, parent: Option<&Parent>) {
        match &node.kind {
            Kind::Seq(items) => items.iter().for_each(|i| self.collect(i, is_step, parent)),
            Kind::Map(entries) => {
                let id = if is_step { step_id(node) } else { None };
                if let Some(id) = id
                    && self.all.insert(id.to_string())
                    && let Some(p) = parent
                {
                    self.parents.insert(id.to_string(), p.clone());
                }
                // This step, as the parent of the steps it holds.
                let this = |kind| {
                    id.map(|id| Parent {
                        id: id.to_string(),
                        kind,
                    })
                };
                for e in entries {
                    let (inner, steps) = match e.key.as_str() {
                        "steps" if is_step => (this(Composite::ForEach), true),
                        "parallel" if is_step => (this(Composite::Parallel), true),
                        "switch" if is_step => (this(Composite::Switch), false),
                        // The flow's steps, and a switch case's.
                        "steps" | "parallel" | "default" => (parent.cloned(), true),
                        _ => continue,
                    };
                    self.collect(&e.value, steps, inner.as_ref());
                }
            }
            _ => {}
        }
    }
}

impl Cx<'_> {
    /// A step's `id` (at `pos`): required, well formed, and unique in the
    /// file (it is recorded as seen).
    pub(super) fn declare_id(&mut self, fields: &Fields<'_>, pos: Pos) -> Option<String> {
        let Some(n) = fields.get("id") else {
            self.err(pos, "missing required field `id` in a step");
            return None;
        };
        let id = self.string(n, "id")?;
        if !valid_id(&id) {
            self.err(
                n.pos,
                format!(
                    "invalid step id `{id}`: use ASCII letters, digits, `_` and `-`, starting with a letter or `_`"
                ),
            );
            return None;
        }
        if let Some(first) = self.seen.get(&id).copied() {
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
    }
}

/// Letters, digits, `_` and `-`, starting with a letter or `_`.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
