//! `${...}` expressions: compiled once at load, evaluated against a JSON
//! scope. See the [module docs](super) for the language.
//!
//! Here: one compiled CEL expression, the scope it is evaluated against, and
//! conditions. `template.rs` holds strings and mappings with `${...}` parts,
//! `refs.rs` finds what an expression reads, `json.rs` converts values
//! between JSON and CEL, `limits.rs` bounds an expression's depth at load,
//! `messages.rs` words evaluation errors in CEL's terms.
//!
//! Every evaluation is bounded: `rewrite.rs` makes a compiled expression
//! charge a meter (`meter.rs`: comprehension steps, bytes built, time,
//! cancel) through the functions of `funcs.rs`, and `bounded.rs` runs an
//! evaluation inline, or on the blocking pool once it takes longer.

mod bounded;
mod funcs;
mod json;
mod limits;
mod messages;
mod meter;
mod refs;
mod rewrite;
mod template;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, IdedExpr, Program, Value as Cel};
use serde_json::Value;

pub(crate) use bounded::EvalError;
use bounded::Job;
pub(crate) use json::describe_json;
use json::{to_cel, to_json};
pub use limits::MAX_EXPR_DEPTH;
use limits::{check_eval_depth, compile_bounded, excerpt};
#[cfg(test)]
pub(crate) use messages::{MAX_LITERAL, describe, literal};
pub(crate) use messages::{NoOutput, is_ident};
pub(crate) use meter::Bounds;
#[cfg(test)]
pub(crate) use meter::{MAX_BYTES, MAX_STEPS};
pub(crate) use refs::Refs;
#[cfg(test)]
pub(crate) use refs::referenced_steps;
pub(crate) use template::Template;
pub(crate) use template::{StrTemplate, TNode, compile_str, unescape};

/// An expression failed to compile or to evaluate. The message names the
/// expression's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExprError {
    /// The expression's text, without `${` and `}`.
    pub(crate) expr: String,
    /// What went wrong.
    pub(crate) message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expression `{}`: {}", self.expr, self.message)
    }
}

impl std::error::Error for ExprError {}

/// The standard CEL library with the strings, math and lists extensions,
/// and the functions that bound an evaluation, built once and shared by
/// every evaluation.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .and_then(|()| env.add_extension(cel::extensions::math))
        .and_then(|()| env.add_extension(cel::extensions::lists))
        .and_then(|()| env.add_extension(funcs::register))
        .expect("the CEL extensions register once, without conflicts");
    Arc::new(env)
});

/// Metered levels past which an expression is not evaluated inline.
const INLINE_DEPTH: usize = 16;

/// One compiled expression.
pub(crate) struct Expr {
    source: String,
    /// The program, rewritten to charge the meter (`rewrite.rs`).
    bounded: IdedExpr,
    /// The levels of `bounded`, which the interpreter recurses through.
    depth: usize,
    refs: Refs,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}}}", self.source)
    }
}

impl Expr {
    pub(crate) fn compile(source: &str) -> Result<Expr, ExprError> {
        let err = |message: String| ExprError {
            expr: excerpt(source),
            message,
        };
        if source.trim().is_empty() {
            return Err(err("empty expression".into()));
        }
        let parse = |source: &str| {
            ENV.compile(source).map_err(|e| {
                let msgs: Vec<String> = e
                    .errors
                    .iter()
                    .map(|e| format!("{} (at column {} of the expression)", e.msg, e.pos.1))
                    .collect();
                msgs.join("; ")
            })
        };
        let program = compile_bounded(source, parse, Program::expression).map_err(err)?;
        let refs = Refs::of(program.expression());
        let mut bounded = program.expression().clone();
        rewrite::bound(&mut bounded);
        let depth = check_eval_depth(&bounded).map_err(err)?;
        Ok(Expr {
            source: source.to_string(),
            bounded,
            depth,
            refs,
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn refs(&self) -> &Refs {
        &self.refs
    }

    fn error(&self, message: impl Into<String>) -> ExprError {
        ExprError {
            expr: self.source.clone(),
            message: message.into(),
        }
    }

    /// Evaluates under the meter installed on this thread. Once the meter
    /// has stopped, the evaluation fails with its message, whatever CEL made
    /// of the error it raised (`error || true` is `true`).
    fn eval(&self, vars: &Vars) -> Result<Cel, ExprError> {
        // A deep expression recurses deep in the interpreter: it runs on a
        // fresh stack of the blocking pool, not on an async worker whose
        // stack the run's own nesting of steps already uses.
        if self.depth > INLINE_DEPTH && meter::inline() {
            meter::admit(u64::MAX).map_err(|stop| self.error(stop.message()))?;
        }
        let mut ctx = Context::with_env(ENV.clone());
        for (name, value) in &vars.vars {
            ctx.add_variable_from_value(name.as_str(), value.clone());
        }
        let result = Cel::resolve(&self.bounded, &ctx);
        if let Some(stop) = meter::stopped() {
            return Err(self.error(stop.message()));
        }
        result.map_err(|e| {
            let no_output = match &e {
                ExecutionError::NoSuchKey(key) => vars.no_output(key),
                _ => None,
            };
            self.error(no_output.unwrap_or_else(|| messages::describe(&e)))
        })
    }

    pub(super) fn eval_json(&self, vars: &Vars) -> Result<Value, ExprError> {
        let value = self.eval(vars)?;
        to_json(&value).map_err(|m| self.error(m))
    }
}

/// What expressions read: a JSON object of the scope ([`Template::render`]),
/// or the executor's scope, which lends its documents without copying them.
/// An `Err` is a document that exists but cannot be read as a value.
pub(crate) trait Bindings {
    /// A top-level variable other than `steps` (`input`, `item`, ...).
    fn var(&self, name: &str) -> Result<Option<Cow<'_, Value>>, String>;
    /// The output of the step `id`, if it ran.
    fn output(&self, id: &str) -> Result<Option<&Value>, String>;
    /// Every step that ran, for `steps` read as a whole (`steps[name]`);
    /// steps without an output may be among them.
    fn step_ids(&self) -> Vec<&str>;
    /// Why the step `id` has no output, when the scope knows.
    fn no_output(&self, _id: &str) -> Option<NoOutput> {
        None
    }
}

/// A JSON scope: `{"input": ..., "steps": {"<id>": {"output": ...}}, ...}`.
impl Bindings for Value {
    fn var(&self, name: &str) -> Result<Option<Cow<'_, Value>>, String> {
        Ok(self.get(name).map(Cow::Borrowed))
    }

    fn output(&self, id: &str) -> Result<Option<&Value>, String> {
        Ok(self
            .get("steps")
            .and_then(|s| s.get(id))
            .and_then(|s| s.get("output")))
    }

    fn step_ids(&self) -> Vec<&str> {
        match self.get("steps") {
            Some(Value::Object(steps)) => steps.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// A JSON scope with an `error` is `on_error`'s when the run failed
    /// before any step ended: the steps it reads failed or never ran.
    fn no_output(&self, _id: &str) -> Option<NoOutput> {
        self.get("error").map(|_| NoOutput::Unfinished)
    }
}

/// Variables bound for one evaluation, converted once and shared by every
/// expression of a template. Only what the expressions read is converted.
pub(super) struct Vars {
    vars: Vec<(String, Cel)>,
    /// The steps read that have no output, with why: the message when an
    /// evaluation fails for want of one.
    missing: Vec<(String, NoOutput)>,
}

impl Vars {
    /// # Errors
    /// The message when a variable read cannot be parsed into a value, or
    /// when the variables are too large to read on an async worker (the
    /// evaluation then runs again off it).
    pub(super) fn new(scope: &dyn Bindings, refs: &Refs) -> Result<Vars, String> {
        if meter::inline() {
            meter::admit(Vars::weight(scope, refs)).map_err(|s| s.message())?;
        }
        let mut vars = Vec::new();
        let mut missing = Vec::new();
        for name in &refs.vars {
            if name == "steps" {
                let ids = refs.step_ids(scope);
                let mut map = HashMap::new();
                for id in ids {
                    let out = scope
                        .output(id)
                        .map_err(|e| format!("cannot read `steps.{id}.output`: {e}"))?;
                    let Some(out) = out else {
                        if let Some(why) = scope.no_output(id) {
                            missing.push((id.to_string(), why));
                        }
                        continue;
                    };
                    let entry = HashMap::from([(Key::from("output"), to_cel(out))]);
                    map.insert(
                        Key::from(id),
                        Cel::Map(Map {
                            map: Arc::new(entry),
                        }),
                    );
                }
                vars.push((name.clone(), Cel::Map(Map { map: Arc::new(map) })));
            } else if let Some(value) = scope
                .var(name)
                .map_err(|e| format!("cannot read `{name}`: {e}"))?
            {
                vars.push((name.clone(), to_cel(&value)));
            }
        }
        Ok(Vars { vars, missing })
    }

    /// Why the step `id`, read and missing, has no output.
    fn no_output(&self, id: &str) -> Option<String> {
        self.missing
            .iter()
            .find(|(m, _)| m == id)
            .map(|(_, why)| why.message(id))
    }

    /// How heavy the variables `refs` reads are ([`json::weight`]). One
    /// that cannot be read weighs nothing: reading it fails in [`Vars::new`].
    fn weight(scope: &dyn Bindings, refs: &Refs) -> u64 {
        let mut weight = 0u64;
        for name in &refs.vars {
            if name == "steps" {
                let ids = refs.step_ids(scope);
                for id in ids {
                    if let Ok(Some(out)) = scope.output(id) {
                        weight = weight.saturating_add(json::weight(out));
                    }
                }
            } else if let Ok(Some(value)) = scope.var(name) {
                weight = weight.saturating_add(json::weight(&value));
            }
        }
        weight
    }
}

/// A boolean expression, for `if` and `when`.
///
/// Written `"${input.amount > 0}"`, or as a bare expression, or as a YAML
/// boolean (a constant).
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    expr: Option<Arc<Expr>>,
    constant: bool,
}

impl Condition {
    /// Compiles a condition from its text: `${...}`, or a bare expression.
    ///
    /// # Errors
    /// An [`ExprError`] when it does not compile, or mixes text and
    /// expressions.
    pub(crate) fn compile(text: &str) -> Result<Condition, ExprError> {
        match compile_str(text)? {
            Some(StrTemplate::Whole(e)) => Ok(Condition {
                expr: Some(e),
                constant: false,
            }),
            Some(StrTemplate::Parts(_)) => Err(ExprError {
                expr: text.to_string(),
                message: "a condition must be one `${...}` expression, with no text around it"
                    .into(),
            }),
            None => Ok(Condition {
                expr: Some(Arc::new(Expr::compile(text.trim())?)),
                constant: false,
            }),
        }
    }

    /// A condition that is always `value`.
    pub(crate) fn constant(value: bool) -> Condition {
        Condition {
            expr: None,
            constant: value,
        }
    }

    pub(crate) fn expr(&self) -> Option<&Expr> {
        self.expr.as_deref()
    }

    #[cfg(test)]
    /// Evaluates the condition against a scope (see [`Template::render`]).
    ///
    /// # Errors
    /// An [`ExprError`] when evaluation fails or the result is not a boolean.
    pub(crate) fn eval_bool(&self, scope: &Value) -> Result<bool, ExprError> {
        bounded::eval_here(self, scope, &Bounds::default()).map_err(|e| e.error)
    }

    /// Evaluates the condition under `bounds`, off the async workers if it
    /// takes long (see `bounded.rs`).
    ///
    /// # Errors
    /// An [`EvalError`] when evaluation fails, is stopped, or the result is
    /// not a boolean.
    pub(crate) async fn eval_bounded<B: Bindings + Send + 'static>(
        &self,
        scope: B,
        bounds: &Bounds,
    ) -> Result<bool, EvalError> {
        if self.expr.is_none() {
            return Ok(self.constant);
        }
        bounded::eval(self, scope, bounds).await
    }

    fn eval_bool_in(&self, scope: &dyn Bindings) -> Result<bool, ExprError> {
        let Some(expr) = &self.expr else {
            return Ok(self.constant);
        };
        let vars = Vars::new(scope, expr.refs()).map_err(|m| expr.error(m))?;
        match expr.eval_json(&vars)? {
            Value::Bool(b) => Ok(b),
            other => Err(expr.error(format!("expected a boolean, got {}", describe_json(&other)))),
        }
    }
}

impl Job for Condition {
    type Output = bool;

    fn eval(&self, scope: &dyn Bindings) -> Result<bool, ExprError> {
        self.eval_bool_in(scope)
    }

    fn source(&self) -> String {
        self.expr
            .as_ref()
            .map(|e| e.source.clone())
            .unwrap_or_default()
    }
}
