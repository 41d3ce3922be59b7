//! Expressions: compiled once, and checked against what their scope may read.

use super::Cx;
use crate::flow::Pos;
use crate::flow::expr::{Condition, Expr, TNode, Template, compile_str, unescape};
use crate::flow::yaml::{Kind, Node};

/// What expressions may read at some point of the flow, besides the step
/// outputs visible there (kept by [`Cx`], which shows and hides them as the
/// pass enters and leaves sequences).
#[derive(Clone, Copy, Default)]
pub(super) struct Scope {
    /// Inside a `for_each`: `item` and `index`.
    pub(super) item: bool,
    /// In a fallback or `on_error`: `error`.
    pub(super) error: bool,
    /// In `on_error`: any step of the flow.
    pub(super) any_step: bool,
}

impl Scope {
    pub(super) fn vars(&self) -> Vec<&'static str> {
        let mut vars = vec!["input", "steps", "run"];
        if self.item {
            vars.extend(["item", "index"]);
        }
        if self.error {
            vars.push("error");
        }
        vars
    }
}

impl Cx<'_> {
    pub(super) fn check_expr(&mut self, pos: Pos, expr: &Expr, scope: Scope) {
        if let Some(id) = self.hyphenated_step(expr.source()) {
            // CEL reads `steps.my-step` as `steps.my - step`: one error that
            // says so, not one for `step` and one for `my`.
            self.err(
                pos,
                format!(
                    "expression `{}` reads `steps.{id}` as a subtraction (`-`); \
                     write `steps['{id}']` for a step id with a hyphen",
                    expr.source()
                ),
            );
            return;
        }
        let vars = scope.vars();
        for v in &expr.refs().vars {
            if !vars.contains(&v.as_str()) {
                self.err(
                    pos,
                    format!(
                        "unknown variable `{v}` in expression `{}`; available here: {}",
                        expr.source(),
                        vars.join(", ")
                    ),
                );
            }
        }
        for id in &expr.refs().steps {
            let known = self.all_ids.contains(id);
            if self.visible.contains_key(id) || (scope.any_step && known) {
                continue;
            }
            if known {
                self.err(
                    pos,
                    format!(
                        "expression `{}` refers to step `{id}`, which has not run yet at this point",
                        expr.source()
                    ),
                );
            } else {
                self.err(
                    pos,
                    format!(
                        "expression `{}` refers to unknown step `{id}`",
                        expr.source()
                    ),
                );
            }
        }
    }

    /// The id in a `steps.a-b` of `src` that is a step of the flow, or whose
    /// first part is not: a hyphenated id written as a field.
    fn hyphenated_step(&self, src: &str) -> Option<String> {
        let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let mut rest = src;
        while let Some(at) = rest.find("steps.") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "steps.".len()..];
            if before.is_some_and(|c| ident(c) || c == '.') {
                continue;
            }
            let len = rest
                .find(|c: char| !ident(c) && c != '-')
                .unwrap_or(rest.len());
            let id = rest[..len].trim_end_matches('-');
            let Some((first, _)) = id.split_once('-') else {
                continue;
            };
            if !first.is_empty() && (self.all_ids.contains(id) || !self.all_ids.contains(first)) {
                return Some(id.to_string());
            }
        }
        None
    }

    pub(super) fn tnode(&mut self, node: &Node, scope: Scope) -> TNode {
        match &node.kind {
            Kind::Str(s) => match compile_str(s) {
                Ok(Some(t)) => {
                    for e in t.exprs() {
                        self.check_expr(node.pos, e, scope);
                    }
                    TNode::Str(t)
                }
                Ok(None) => TNode::Literal(serde_json::Value::String(unescape(s))),
                Err(e) => {
                    self.err(
                        node.pos,
                        format!("invalid expression `{}`: {}", e.expr, e.message),
                    );
                    TNode::Literal(serde_json::Value::Null)
                }
            },
            Kind::Seq(items) => TNode::array(items.iter().map(|i| self.tnode(i, scope)).collect()),
            Kind::Map(entries) => TNode::object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), self.tnode(&e.value, scope)))
                    .collect(),
            ),
            _ => TNode::Literal(node.to_json()),
        }
    }

    pub(super) fn template(&mut self, node: &Node, scope: Scope) -> Template {
        Template::from_node(self.tnode(node, scope))
    }

    pub(super) fn condition(
        &mut self,
        node: &Node,
        field: &str,
        scope: Scope,
    ) -> Option<Condition> {
        match &node.kind {
            Kind::Bool(b) => Some(Condition::constant(*b)),
            Kind::Str(s) => match Condition::compile(s) {
                Ok(c) => {
                    if let Some(e) = c.expr() {
                        self.check_expr(node.pos, e, scope);
                    }
                    Some(c)
                }
                Err(e) => {
                    self.err(
                        node.pos,
                        format!("invalid expression `{}`: {}", e.expr, e.message),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(node, field, "a boolean or an expression");
                None
            }
        }
    }
}
