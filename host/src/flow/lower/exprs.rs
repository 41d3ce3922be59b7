//! Expressions: compiled once, and checked against what their scope may read.

use super::Cx;
use super::ids::Composite;
use crate::flow::Pos;
use crate::flow::expr::{Condition, Expr, TNode, Template, compile_str, is_ident, unescape};
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
            let known = self.ids.all.contains(id);
            if self.visible.contains_key(id) || (scope.any_step && self.top_level(id)) {
                continue;
            }
            if known {
                let why = self
                    .nested(id, scope)
                    .unwrap_or_else(|| "has not run yet at this point".into());
                self.err(
                    pos,
                    format!(
                        "expression `{}` refers to step `{id}`, which {why}",
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

    /// Whether `id` is a step of the flow's own sequence.
    fn top_level(&self, id: &str) -> bool {
        self.ids.all.contains(id) && !self.ids.parents.contains_key(id)
    }

    /// For a step `id` nested in a composite step visible here: where it is
    /// and how to read it through the outermost such composite.
    fn nested(&self, id: &str, scope: Scope) -> Option<String> {
        let visible =
            |p: &str| self.visible.contains_key(p) || (scope.any_step && self.top_level(p));
        let mut within = Vec::new();
        let mut child = id;
        // Bounded: each step's parent came before it in the file.
        for _ in 0..=self.ids.parents.len() {
            let parent = self.ids.parents.get(child)?;
            within.push(format!("`{}`", parent.id));
            if visible(&parent.id) {
                let (read, what) = match parent.kind {
                    Composite::Parallel => (
                        format!("{}.output{}", step_ref(&parent.id), field(child)),
                        "a parallel step's output maps each branch to its output",
                    ),
                    Composite::Switch => (
                        format!("{}.output", step_ref(&parent.id)),
                        "a switch step's output is the last output of the case it ran",
                    ),
                    Composite::ForEach => (
                        format!("{}.output", step_ref(&parent.id)),
                        "a for_each step's output lists each item's last output",
                    ),
                };
                return Some(format!(
                    "is inside {} and is not visible here; read it through `{read}` ({what})",
                    within.join(" inside ")
                ));
            }
            child = &parent.id;
        }
        None
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
            if !first.is_empty() && (self.ids.all.contains(id) || !self.ids.all.contains(first)) {
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

/// `steps.<id>`, or `steps['<id>']` for an id CEL cannot spell as a field.
fn step_ref(id: &str) -> String {
    format!("steps{}", field(id))
}

/// `.<name>`, or `['<name>']` for a name CEL cannot spell as a field.
fn field(name: &str) -> String {
    if is_ident(name) {
        format!(".{name}")
    } else {
        format!("['{name}']")
    }
}
