//! Rewrites a compiled expression so that evaluating it charges the meter
//! (`meter.rs`) through the functions of `funcs.rs`:
//!
//! - every comprehension step calls `@tick`: in the loop condition, or, for
//!   `map` and `filter`, in the guard or the appended element, so that CEL
//!   still appends to their result in place;
//! - `lists.range(n)` counts `n` steps;
//! - a variable's value copied into a list or map being built is counted by
//!   `@copy`, a value an operator or function built by `@built`;
//! - `join`, `replace`, `distinct`, `indexOf` and `lastIndexOf` call their
//!   bounded versions.
//!
//! Values pass through unchanged, so the rewritten expression evaluates to
//! what the original does.

use cel::IdedExpr;
use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, operators};

use super::funcs::{BUILT, COPY, REPLACED, STEPS, TICK};

/// Operators and functions whose result is a number, a boolean or one of
/// their operands: nothing built to count.
const BUILDS_NOTHING: &[&str] = &[
    operators::CONDITIONAL,
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::LOGICAL_NOT,
    operators::SUBSTRACT,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::GREATER_EQUALS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::LESS,
    operators::NEGATE,
    operators::INDEX,
    operators::OPT_INDEX,
    operators::OPT_SELECT,
    operators::NOT_STRICTLY_FALSE,
    operators::IN,
    "size",
    "int",
    "uint",
    "double",
    "bool",
    "type",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
];

/// Rewrites `expr` in place.
pub(super) fn bound(expr: &mut IdedExpr) {
    let wrap_built = match &mut expr.expr {
        Expr::Call(call) => self::call(call),
        Expr::Comprehension(c) => {
            comprehension(c);
            false
        }
        Expr::List(list) => {
            list.elements.iter_mut().for_each(element);
            false
        }
        Expr::Map(map) => {
            for entry in &mut map.entries {
                match &mut entry.expr {
                    EntryExpr::MapEntry(e) => {
                        bound(&mut e.key);
                        element(&mut e.value);
                    }
                    EntryExpr::StructField(f) => bound(&mut f.value),
                }
            }
            false
        }
        Expr::Struct(s) => {
            for entry in &mut s.entries {
                match &mut entry.expr {
                    EntryExpr::MapEntry(e) => {
                        bound(&mut e.key);
                        bound(&mut e.value);
                    }
                    EntryExpr::StructField(f) => bound(&mut f.value),
                }
            }
            false
        }
        Expr::Select(select) => {
            bound(&mut select.operand);
            false
        }
        Expr::Literal(_) | Expr::Ident(_) | Expr::Unspecified => false,
    };
    if wrap_built {
        wrap(expr, BUILT);
    }
}

/// A call's operands, and whether its result is counted by `@built`.
fn call(call: &mut CallExpr) -> bool {
    if let Some(target) = &mut call.target {
        bound(target);
    }
    call.args.iter_mut().for_each(bound);
    if call.func_name == operators::ADD {
        // In a chain `a + b + c` only the whole is counted: each partial sum
        // is smaller and dropped at once, so memory stays within twice what
        // is counted, and the chain nests no deeper than it was written
        // (a wrapper at every level would double the stack it evaluates on).
        call.args.iter_mut().for_each(unwrap_sum);
    }
    let in_lists = matches!(
        call.target.as_deref(),
        Some(IdedExpr { expr: Expr::Ident(n), .. }) if n == "lists"
    );
    if in_lists && call.func_name == "range" && call.args.len() == 1 {
        wrap(&mut call.args[0], STEPS);
    }
    if call.target.is_some()
        && let Some((_, bounded, counted)) = REPLACED.iter().find(|r| r.0 == call.func_name)
    {
        call.func_name = (*bounded).to_string();
        return *counted;
    }
    !BUILDS_NOTHING.contains(&call.func_name.as_str())
}

/// An element of a list or map literal: a copy of a value read is counted.
/// A literal, or a list or map written inline (whose own elements are
/// counted), is not wrapped: nested literals keep their depth.
fn element(e: &mut IdedExpr) {
    bound(e);
    if !matches!(
        e.expr,
        Expr::Literal(_) | Expr::List(_) | Expr::Map(_) | Expr::Struct(_)
    ) {
        wrap(e, COPY);
    }
}

fn comprehension(c: &mut ComprehensionExpr) {
    bound(&mut c.iter_range);
    bound(&mut c.accu_init);
    bound(&mut c.result);
    if !append_step(c) {
        bound(&mut c.loop_cond);
        bound(&mut c.loop_step);
        wrap(&mut c.loop_cond, TICK);
    }
}

/// A `map` or `filter`: the step appends to the result, `@result + [e]` or
/// `guard ? @result + [e] : @result`, with a constant loop condition. CEL
/// appends in place only to a step of that shape, so the step is counted
/// inside it: in the guard, else in `e`. False for any other comprehension.
fn append_step(c: &mut ComprehensionExpr) -> bool {
    let accu = c.accu_var.clone();
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if *n == accu);
    if !is_accu(&c.result) || !matches!(c.loop_cond.expr, Expr::Literal(_)) {
        return false;
    }
    let appends = |e: &IdedExpr| match &e.expr {
        Expr::Call(add) if add.func_name == operators::ADD && add.target.is_none() => {
            matches!(add.args.as_slice(), [a, IdedExpr { expr: Expr::List(l), .. }] if is_accu(a) && !l.elements.is_empty())
        }
        _ => false,
    };
    let step = &mut c.loop_step;
    let guarded = match &step.expr {
        Expr::Call(cond) if cond.func_name == operators::CONDITIONAL && cond.target.is_none() => {
            matches!(cond.args.as_slice(), [_, add, other] if appends(add) && is_accu(other))
        }
        _ => false,
    };
    if !guarded && !appends(step) {
        return false;
    }
    let add = if guarded {
        let Expr::Call(cond) = &mut step.expr else {
            return false;
        };
        bound(&mut cond.args[0]);
        wrap(&mut cond.args[0], TICK);
        &mut cond.args[1]
    } else {
        step
    };
    let Expr::Call(add) = &mut add.expr else {
        return false;
    };
    let Expr::List(list) = &mut add.args[1].expr else {
        return false;
    };
    list.elements.iter_mut().for_each(element);
    if !guarded {
        wrap(&mut list.elements[0], TICK);
    }
    true
}

/// Replaces `e` with `function(e)`.
/// `@built(x + y)` back to `x + y`.
fn unwrap_sum(e: &mut IdedExpr) {
    let Expr::Call(built) = &mut e.expr else {
        return;
    };
    let is_sum = |a: &IdedExpr| matches!(&a.expr, Expr::Call(c) if c.func_name == operators::ADD);
    if built.func_name == BUILT && built.args.len() == 1 && is_sum(&built.args[0]) {
        *e = built.args.pop().expect("one argument");
    }
}

fn wrap(e: &mut IdedExpr, function: &str) {
    let inner = std::mem::take(e);
    *e = IdedExpr {
        id: inner.id,
        expr: Expr::Call(CallExpr {
            func_name: function.to_string(),
            target: None,
            args: vec![inner],
        }),
    };
}
