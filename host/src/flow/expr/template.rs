//! Templates: strings with `${...}` parts, and data mappings whose strings
//! hold them, compiled once and rendered against a scope.

use std::sync::Arc;

use serde_json::Value;

use super::bounded::{self, EvalError, Job};
use super::refs::Refs;
use super::{Bindings, Bounds, Expr, ExprError, Vars};

/// A piece of an interpolated string.
#[derive(Debug, Clone)]
pub(crate) enum Part {
    Text(String),
    Expr(Arc<Expr>),
}

/// A string holding expressions.
#[derive(Debug, Clone)]
pub(crate) enum StrTemplate {
    /// Exactly one `${...}`: the result keeps its JSON type.
    Whole(Arc<Expr>),
    /// Text and expressions: the result is a string.
    Parts(Vec<Part>),
}

impl StrTemplate {
    pub(crate) fn exprs(&self) -> Vec<&Expr> {
        match self {
            StrTemplate::Whole(e) => vec![e],
            StrTemplate::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Expr(e) => Some(&**e),
                    Part::Text(_) => None,
                })
                .collect(),
        }
    }

    fn render(&self, vars: &Vars) -> Result<Value, ExprError> {
        match self {
            StrTemplate::Whole(e) => e.eval_json(vars),
            StrTemplate::Parts(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Expr(e) => match e.eval_json(vars)? {
                            Value::String(s) => out.push_str(&s),
                            other => out.push_str(&other.to_string()),
                        },
                    }
                }
                Ok(Value::String(out))
            }
        }
    }
}

/// Splits a string into text and `${...}` expressions, and compiles them.
/// `None` when the string holds no expression (`$${` stands for a literal
/// `${`). Braces and quoted strings inside an expression are skipped over,
/// so `${ {'a': 1}.a }` is one expression.
pub(crate) fn compile_str(s: &str) -> Result<Option<StrTemplate>, ExprError> {
    if !s.contains("${") {
        return Ok(None);
    }
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            // `$${` is an escaped, literal `${`.
            text.push_str(&rest[..at - 1]);
            text.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        text.push_str(&rest[..at]);
        let body = &rest[at + 2..];
        let Some(end) = closing_brace(body) else {
            return Err(ExprError {
                expr: body.to_string(),
                message: "unterminated `${`: no closing `}`".into(),
            });
        };
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(Part::Expr(Arc::new(Expr::compile(body[..end].trim())?)));
        rest = &body[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(Some(match parts.as_slice() {
        [Part::Expr(e)] => StrTemplate::Whole(e.clone()),
        [] | [Part::Text(_)] => return Ok(None),
        _ => StrTemplate::Parts(parts),
    }))
}

/// The index of the `}` closing an expression body, skipping nested braces
/// and quoted strings.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// A node of a compiled template.
#[derive(Debug, Clone)]
pub(crate) enum TNode {
    /// No expression anywhere below: used as is.
    Literal(Value),
    Str(StrTemplate),
    Array(Vec<TNode>),
    Object(Vec<(String, TNode)>),
}

impl TNode {
    /// Builds an array node, folding it to a literal when it has no
    /// expression.
    pub(crate) fn array(items: Vec<TNode>) -> TNode {
        if items.iter().all(|i| matches!(i, TNode::Literal(_))) {
            TNode::Literal(Value::Array(
                items
                    .into_iter()
                    .map(|i| match i {
                        TNode::Literal(v) => v,
                        _ => unreachable!(),
                    })
                    .collect(),
            ))
        } else {
            TNode::Array(items)
        }
    }

    /// Builds an object node, folding it to a literal when it has no
    /// expression.
    pub(crate) fn object(entries: Vec<(String, TNode)>) -> TNode {
        if entries.iter().all(|(_, i)| matches!(i, TNode::Literal(_))) {
            TNode::Literal(Value::Object(
                entries
                    .into_iter()
                    .map(|(k, i)| match i {
                        TNode::Literal(v) => (k, v),
                        _ => unreachable!(),
                    })
                    .collect(),
            ))
        } else {
            TNode::Object(entries)
        }
    }

    #[cfg(test)]
    fn compile(value: &Value) -> Result<TNode, ExprError> {
        Ok(match value {
            Value::String(s) => match compile_str(s)? {
                Some(t) => TNode::Str(t),
                None => TNode::Literal(Value::String(unescape(s))),
            },
            Value::Array(items) => {
                TNode::array(items.iter().map(TNode::compile).collect::<Result<_, _>>()?)
            }
            Value::Object(obj) => TNode::object(
                obj.iter()
                    .map(|(k, v)| Ok((k.clone(), TNode::compile(v)?)))
                    .collect::<Result<_, _>>()?,
            ),
            other => TNode::Literal(other.clone()),
        })
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Expr>) {
        match self {
            TNode::Literal(_) => {}
            TNode::Str(s) => out.extend(s.exprs()),
            TNode::Array(items) => items.iter().for_each(|i| i.collect(out)),
            TNode::Object(entries) => entries.iter().for_each(|(_, i)| i.collect(out)),
        }
    }

    fn render(&self, vars: &Vars) -> Result<Value, ExprError> {
        Ok(match self {
            TNode::Literal(v) => v.clone(),
            TNode::Str(s) => s.render(vars)?,
            TNode::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.render(vars))
                    .collect::<Result<_, _>>()?,
            ),
            TNode::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, i)| Ok((k.clone(), i.render(vars)?)))
                    .collect::<Result<_, ExprError>>()?,
            ),
        })
    }
}

/// A string without expressions, with `$${` turned into `${`.
pub(crate) fn unescape(s: &str) -> String {
    if s.contains("$${") {
        s.replace("$${", "${")
    } else {
        s.to_string()
    }
}

/// A data mapping: any JSON value whose strings may hold `${...}`
/// expressions, compiled once and rendered against a scope.
///
/// A string that is exactly one `${...}` becomes the expression's result with
/// its JSON type (`"${item}"` over `[1, 2]` gives numbers); a `${...}` inside
/// a longer string is interpolated as text (strings without quotes, anything
/// else as compact JSON). Arrays and objects are walked recursively; object
/// keys are taken literally.
///
/// ```text
/// {"n": "${input.n + 1}", "s": "n=${input.n}"}   with input {"n": 1}
/// {"n": 2, "s": "n=1"}
/// ```
///
/// Cloning one is cheap: an evaluation moved off the async workers takes a
/// clone along.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    root: Arc<TNode>,
    refs: Arc<Refs>,
}

impl Template {
    #[cfg(test)]
    /// Compiles a mapping.
    ///
    /// # Errors
    /// An [`ExprError`] for the first expression that does not compile.
    pub(crate) fn compile(value: &Value) -> Result<Template, ExprError> {
        Ok(Template::from_node(TNode::compile(value)?))
    }

    pub(crate) fn from_node(root: TNode) -> Template {
        let mut exprs = Vec::new();
        root.collect(&mut exprs);
        let mut refs = Refs::default();
        for e in exprs {
            refs.merge(e.refs());
        }
        Template {
            root: Arc::new(root),
            refs: Arc::new(refs),
        }
    }

    /// Renders the mapping. `scope` is a JSON object such as
    /// `{"input": ..., "steps": {"<id>": {"output": ...}}, "item": ..., "index": ..., "run": ...}`.
    ///
    /// # Errors
    /// An [`ExprError`] naming the expression that failed, for example on a
    /// missing field.
    #[cfg(test)]
    pub(crate) fn render(&self, scope: &Value) -> Result<Value, ExprError> {
        self.render_here(scope, &Bounds::default())
            .map_err(|e| e.error)
    }

    #[cfg(test)]
    /// Renders the mapping on the calling thread under `bounds`.
    ///
    /// # Errors
    /// An [`EvalError`] naming the expression that failed or was stopped.
    pub(crate) fn render_here(
        &self,
        scope: &dyn Bindings,
        bounds: &Bounds,
    ) -> Result<Value, EvalError> {
        bounded::eval_here(self, scope, bounds)
    }

    /// Renders the mapping under `bounds`, off the async workers if it
    /// takes long (see `bounded.rs`).
    ///
    /// # Errors
    /// An [`EvalError`] naming the expression that failed or was stopped.
    pub(crate) async fn render_bounded<B: Bindings + Send + 'static>(
        &self,
        scope: B,
        bounds: &Bounds,
    ) -> Result<Value, EvalError> {
        if let TNode::Literal(v) = &*self.root {
            return Ok(v.clone());
        }
        bounded::eval(self, scope, bounds).await
    }

    fn render_in(&self, scope: &dyn Bindings) -> Result<Value, ExprError> {
        if let TNode::Literal(v) = &*self.root {
            return Ok(v.clone());
        }
        let vars = Vars::new(scope, &self.refs).map_err(|message| {
            let mut exprs = Vec::new();
            self.root.collect(&mut exprs);
            ExprError {
                expr: exprs
                    .first()
                    .map(|e| e.source().to_string())
                    .unwrap_or_default(),
                message,
            }
        })?;
        self.root.render(&vars)
    }

    /// Whether an expression of the mapping reads the variable `name`.
    pub(crate) fn reads(&self, name: &str) -> bool {
        self.refs.vars.contains(name)
    }

    #[cfg(test)]
    /// Whether the mapping holds no expression (renders to a constant).
    pub(crate) fn is_constant(&self) -> bool {
        matches!(*self.root, TNode::Literal(_))
    }

    #[cfg(test)]
    /// The step ids the mapping's expressions read (`steps.<id>...` or
    /// `steps['<id>']`), sorted.
    pub(crate) fn step_refs(&self) -> Vec<String> {
        self.refs.steps.iter().cloned().collect()
    }
}

impl Job for Template {
    type Output = Value;

    fn eval(&self, scope: &dyn Bindings) -> Result<Value, ExprError> {
        self.render_in(scope)
    }

    fn source(&self) -> String {
        let mut exprs = Vec::new();
        self.root.collect(&mut exprs);
        exprs
            .first()
            .map(|e| e.source().to_string())
            .unwrap_or_default()
    }
}
