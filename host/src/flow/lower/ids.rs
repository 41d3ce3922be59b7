//! Step ids: gathered before the real pass, and checked for their form and
//! uniqueness.

use std::collections::HashSet;

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

/// Gathers every step id in the file, before the real pass.
pub(super) fn collect_ids(node: &Node, is_step: bool, ids: &mut HashSet<String>) {
    match &node.kind {
        Kind::Seq(items) => items.iter().for_each(|i| collect_ids(i, is_step, ids)),
        Kind::Map(entries) => {
            if is_step && let Some(id) = step_id(node) {
                ids.insert(id.to_string());
            }
            for e in entries {
                match e.key.as_str() {
                    "steps" | "parallel" | "default" => collect_ids(&e.value, true, ids),
                    "switch" if is_step => collect_ids(&e.value, false, ids),
                    _ => {}
                }
            }
        }
        _ => {}
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
