//! `${...}` expressions: compiled once at load, evaluated against a JSON
//! scope. See the [module docs](super) for the language.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{Expr as Ast, IdedExpr, LiteralValue};
use cel::objects::{Key, Map};
use cel::{Context, Env, Program, Value as Cel};
use serde_json::Value;

use super::expr_limits::{compile_bounded, excerpt};

/// An expression failed to compile or to evaluate. The message names the
/// expression's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// The expression's text, without `${` and `}`.
    pub expr: String,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expression `{}`: {}", self.expr, self.message)
    }
}

impl std::error::Error for ExprError {}

/// The standard CEL library with the strings, math and lists extensions,
/// built once and shared by every evaluation.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .and_then(|()| env.add_extension(cel::extensions::math))
        .and_then(|()| env.add_extension(cel::extensions::lists))
        .expect("the CEL extensions register once, without conflicts");
    Arc::new(env)
});

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
    fn merge(&mut self, other: &Refs) {
        self.vars.extend(other.vars.iter().cloned());
        self.steps.extend(other.steps.iter().cloned());
        self.all_steps |= other.all_steps;
    }
}

/// One compiled expression.
pub(crate) struct Expr {
    source: String,
    program: Program,
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
        let mut refs = Refs::default();
        walk(program.expression(), &mut Vec::new(), &mut refs);
        Ok(Expr {
            source: source.to_string(),
            program,
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

    fn eval(&self, vars: &Vars) -> Result<Cel, ExprError> {
        let mut ctx = Context::with_env(ENV.clone());
        for (name, value) in &vars.0 {
            ctx.add_variable_from_value(name.as_str(), value.clone());
        }
        self.program
            .execute(&ctx)
            .map_err(|e| self.error(e.to_string()))
    }

    fn eval_json(&self, vars: &Vars) -> Result<Value, ExprError> {
        let value = self.eval(vars)?;
        to_json(&value).map_err(|m| self.error(m))
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
                    cel::common::ast::EntryExpr::MapEntry(m) => {
                        walk(&m.key, bound, refs);
                        walk(&m.value, bound, refs);
                    }
                    cel::common::ast::EntryExpr::StructField(f) => walk(&f.value, bound, refs),
                }
            }
        }
        Ast::Struct(s) => {
            for entry in &s.entries {
                if let cel::common::ast::EntryExpr::StructField(f) = &entry.expr {
                    walk(&f.value, bound, refs);
                }
            }
        }
        Ast::Literal(_) | Ast::Unspecified => {}
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
    /// Every step that ran, for `steps` read as a whole (`steps[name]`).
    fn step_ids(&self) -> Vec<&str>;
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
}

/// Variables bound for one evaluation, converted once and shared by every
/// expression of a template. Only what the expressions read is converted.
struct Vars(Vec<(String, Cel)>);

impl Vars {
    /// # Errors
    /// The message when a variable read cannot be parsed into a value.
    fn new(scope: &dyn Bindings, refs: &Refs) -> Result<Vars, String> {
        let mut vars = Vec::new();
        for name in &refs.vars {
            if name == "steps" {
                let ids = if refs.all_steps {
                    scope.step_ids()
                } else {
                    refs.steps.iter().map(String::as_str).collect()
                };
                let mut map = HashMap::new();
                for id in ids {
                    let out = scope
                        .output(id)
                        .map_err(|e| format!("cannot read `steps.{id}.output`: {e}"))?;
                    if let Some(out) = out {
                        let entry = HashMap::from([(Key::from("output"), to_cel(out))]);
                        map.insert(
                            Key::from(id),
                            Cel::Map(Map {
                                map: Arc::new(entry),
                            }),
                        );
                    }
                }
                vars.push((name.clone(), Cel::Map(Map { map: Arc::new(map) })));
            } else if let Some(value) = scope
                .var(name)
                .map_err(|e| format!("cannot read `{name}`: {e}"))?
            {
                vars.push((name.clone(), to_cel(&value)));
            }
        }
        Ok(Vars(vars))
    }
}

/// JSON to CEL: integers become `int` (or `uint` above `i64`), other numbers
/// `double`.
fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Cel::Int(i)
            } else if let Some(u) = n.as_u64() {
                Cel::UInt(u)
            } else {
                Cel::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(obj) => {
            let map: HashMap<Key, Cel> = obj
                .iter()
                .map(|(k, v)| (Key::from(k.as_str()), to_cel(v)))
                .collect();
            Cel::Map(Map { map: Arc::new(map) })
        }
    }
}

/// CEL to JSON. Fails for values JSON cannot hold.
fn to_json(value: &Cel) -> Result<Value, String> {
    Ok(match value {
        Cel::Null => Value::Null,
        Cel::Bool(b) => Value::Bool(*b),
        Cel::Int(i) => Value::from(*i),
        Cel::UInt(u) => Value::from(*u),
        Cel::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("the result {f} is not a finite number"))?,
        Cel::String(s) => Value::String(s.to_string()),
        Cel::List(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Cel::Map(map) => {
            let mut obj = serde_json::Map::new();
            for (k, v) in map.map.iter() {
                let key = match k {
                    Key::String(s) => s.to_string(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                obj.insert(key, to_json(v)?);
            }
            Value::Object(obj)
        }
        other => {
            return Err(format!(
                "the result is of type `{}`, which has no JSON form",
                other.type_of()
            ));
        }
    })
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

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
/// ```
/// use flowhost::flow::Template;
/// use serde_json::json;
/// let t = Template::compile(&json!({"n": "${input.n + 1}", "s": "n=${input.n}"})).unwrap();
/// let out = t.render(&json!({"input": {"n": 1}})).unwrap();
/// assert_eq!(out, json!({"n": 2, "s": "n=1"}));
/// ```
#[derive(Debug, Clone)]
pub struct Template {
    root: TNode,
    refs: Refs,
}

impl Template {
    /// Compiles a mapping.
    ///
    /// # Errors
    /// An [`ExprError`] for the first expression that does not compile.
    pub fn compile(value: &Value) -> Result<Template, ExprError> {
        Ok(Template::from_node(TNode::compile(value)?))
    }

    pub(crate) fn from_node(root: TNode) -> Template {
        let mut exprs = Vec::new();
        root.collect(&mut exprs);
        let mut refs = Refs::default();
        for e in exprs {
            refs.merge(e.refs());
        }
        Template { root, refs }
    }

    /// Renders the mapping. `scope` is a JSON object such as
    /// `{"input": ..., "steps": {"<id>": {"output": ...}}, "item": ..., "index": ..., "run": ...}`.
    ///
    /// # Errors
    /// An [`ExprError`] naming the expression that failed, for example on a
    /// missing field.
    pub fn render(&self, scope: &Value) -> Result<Value, ExprError> {
        self.render_in(scope)
    }

    pub(crate) fn render_in(&self, scope: &dyn Bindings) -> Result<Value, ExprError> {
        if let TNode::Literal(v) = &self.root {
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

    /// Whether the mapping holds no expression (renders to a constant).
    pub fn is_constant(&self) -> bool {
        matches!(self.root, TNode::Literal(_))
    }

    /// The step ids the mapping's expressions read (`steps.<id>...` or
    /// `steps['<id>']`), sorted.
    pub fn step_refs(&self) -> Vec<String> {
        self.refs.steps.iter().cloned().collect()
    }

    /// The expressions' texts, in document order.
    pub fn sources(&self) -> Vec<String> {
        let mut exprs = Vec::new();
        self.root.collect(&mut exprs);
        exprs.into_iter().map(|e| e.source().to_string()).collect()
    }
}

/// A boolean expression, for `if` and `when`.
///
/// Written `"${input.amount > 0}"`, or as a bare expression, or as a YAML
/// boolean (a constant).
#[derive(Debug, Clone)]
pub struct Condition {
    expr: Option<Arc<Expr>>,
    constant: bool,
}

impl Condition {
    /// Compiles a condition from its text: `${...}`, or a bare expression.
    ///
    /// # Errors
    /// An [`ExprError`] when it does not compile, or mixes text and
    /// expressions.
    pub fn compile(text: &str) -> Result<Condition, ExprError> {
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
    pub fn constant(value: bool) -> Condition {
        Condition {
            expr: None,
            constant: value,
        }
    }

    pub(crate) fn expr(&self) -> Option<&Expr> {
        self.expr.as_deref()
    }

    /// The expression's text (`true`/`false` for a constant).
    pub fn source(&self) -> String {
        match &self.expr {
            Some(e) => e.source().to_string(),
            None => self.constant.to_string(),
        }
    }

    /// Evaluates the condition against a scope (see [`Template::render`]).
    ///
    /// # Errors
    /// An [`ExprError`] when evaluation fails or the result is not a boolean.
    pub fn eval_bool(&self, scope: &Value) -> Result<bool, ExprError> {
        self.eval_bool_in(scope)
    }

    pub(crate) fn eval_bool_in(&self, scope: &dyn Bindings) -> Result<bool, ExprError> {
        let Some(expr) = &self.expr else {
            return Ok(self.constant);
        };
        let vars = Vars::new(scope, expr.refs()).map_err(|m| expr.error(m))?;
        match expr.eval_json(&vars)? {
            Value::Bool(b) => Ok(b),
            other => Err(expr.error(format!("expected a boolean, got {}", describe(&other)))),
        }
    }

    /// The step ids the condition reads.
    pub fn step_refs(&self) -> Vec<String> {
        match &self.expr {
            Some(e) => e.refs().steps.iter().cloned().collect(),
            None => Vec::new(),
        }
    }
}

/// The step ids an expression text reads (`steps.<id>...` or
/// `steps['<id>']`), sorted; the text may be a bare expression or hold
/// `${...}` parts.
///
/// # Errors
/// An [`ExprError`] when it does not compile.
pub fn referenced_steps(text: &str) -> Result<Vec<String>, ExprError> {
    let mut refs = Refs::default();
    match compile_str(text)? {
        Some(t) => t.exprs().iter().for_each(|e| refs.merge(e.refs())),
        None => refs.merge(Expr::compile(text.trim())?.refs()),
    }
    Ok(refs.steps.into_iter().collect())
}
