//! Reference analysis: which variables and which steps' outputs an
//! expression reads, found in its syntax tree. The loader checks them against
//! what a step may see; evaluation binds only them.

use std::collections::BTreeSet;

use cel::common::ast::{EntryExpr, Expr as Ast, IdedExpr, LiteralValue};

use super::Bindings;
#[cfg(test)]
use super::template::compile_str;
#[cfg(test)]
use super::{Expr, ExprError};

/// Namespaces of extension functions (`math.greatest(...)`): not variables.
const NAMESPACES: &[&str] = &["math", "lists"];
/// Type names usable as values (`type(x) == int`): not variables.
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

/// What an expression reads from the scope.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refs {
    /// Top-level variables read (`input`, `steps`, `item`, ...).
    pub(crate) vars: BTreeSet<String>,
    /// Step ids read as `steps.<id>` or `steps['<id>']`.
    pub(crate) steps: BTreeSet<String>,
    /// `steps` is used in another way (for example `steps[name]`), so all of
    /// it must be bound.
    pub(crate) all_steps: bool,
}

impl Refs {
    /// The ids of the steps to bind from `scope`: those read, or every step
    /// that ran when `steps` is read as a whole.
    pub(super) fn step_ids<'s>(&'s self, scope: &'s dyn Bindings) -> Vec<&'s str> {
        if self.all_steps {
            scope.step_ids()
        } else {
            self.steps.iter().map(String::as_str).collect()
        }
    }

    /// What a compiled expression reads.
    pub(super) fn of(e: &IdedExpr) -> Refs {
        let mut refs = Refs::default();
        walk(e, &mut Vec::new(), &mut refs);
        refs
    }

    pub(super) fn merge(&mut self, other: &Refs) {
        self.vars.extend(other.vars.iter().cloned());
        self.steps.extend(other.steps.iter().cloned());
        self.all_steps |= other.all_steps;
    }
}

/// Finds the free variables and the step ids an expression reads.
fn walk(e: &IdedExpr, bound: &mut Vec<String>, refs: &mut Refs) {
    let free = |name: &str, bound: &Vec<String>| !bound.iter().any(|b| b == name);
    match &e.expr {
        Ast::Ident(name) => {
            if free(name, bound) && !TYPE_NAMES.contains(&name.as_str()) {
                refs.vars.insert(name.clone());
                if name == "steps" {
                    refs.all_steps = true;
                }
            }
        }
        Ast::Select(sel) => match &sel.operand.expr {
            Ast::Ident(name) if name == "steps" && free(name, bound) => {
                refs.vars.insert(name.clone());
                refs.steps.insert(sel.field.clone());
            }
            _ => walk(&sel.operand, bound, refs),
        },
        Ast::Call(call) => {
            let index = call.func_name == "_[_]" || call.func_name == "_[?_]";
            if index
                && call.target.is_none()
                && call.args.len() == 2
                && matches!(&call.args[0].expr, Ast::Ident(n) if n == "steps" && free(n, bound))
                && let Ast::Literal(LiteralValue::String(id)) = &call.args[1].expr
            {
                refs.vars.insert("steps".into());
                refs.steps.insert(id.inner().to_string());
                return;
            }
            if let Some(target) = &call.target {
                let namespace = matches!(&target.expr,
                    Ast::Ident(n) if NAMESPACES.contains(&n.as_str()) && free(n, bound));
                if !namespace {
                    walk(target, bound, refs);
                }
            }
            for arg in &call.args {
                walk(arg, bound, refs);
            }
        }
        Ast::Comprehension(c) => {
            walk(&c.iter_range, bound, refs);
            walk(&c.accu_init, bound, refs);
            let depth = bound.len();
            bound.push(c.iter_var.clone());
            if let Some(v) = &c.iter_var2 {
                bound.push(v.clone());
            }
            bound.push(c.accu_var.clone());
            walk(&c.loop_cond, bound, refs);
            walk(&c.loop_step, bound, refs);
            walk(&c.result, bound, refs);
            bound.truncate(depth);
        }
        Ast::List(list) => {
            for item in &list.elements {
                walk(item, bound, refs);
            }
        }
        Ast::Map(map) => {
            for entry in &map.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(m) => {
                        walk(&m.key, bound, refs);
                        walk(&m.value, bound, refs);
                    }
                    EntryExpr::StructField(f) => walk(&f.value, bound, refs),
                }
            }
        }
        Ast::Struct(s) => {
            for entry in &s.entries {
                if let EntryExpr::StructField(f) = &entry.expr {
                    walk(&f.value, bound, refs);
                }
            }
        }
        Ast::Literal(_) | Ast::Unspecified => {}
    }
}

#[cfg(test)]
/// The step ids an expression text reads (`steps.<id>...` or
/// `steps['<id>']`), sorted; the text may be a bare expression or hold
/// `${...}` parts.
///
/// # Errors
/// An [`ExprError`] when it does not compile.
pub(crate) fn referenced_steps(text: &str) -> Result<Vec<String>, ExprError> {
    let mut refs = Refs::default();
    match compile_str(text)? {
        Some(t) => t.exprs().iter().for_each(|e| refs.merge(e.refs())),
        None => refs.merge(Expr::compile(text.trim())?.refs()),
    }
    Ok(refs.steps.into_iter().collect())
}
