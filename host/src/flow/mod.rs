//! Flows: the flow file, its `${...}` expressions, and the checks made when
//! it is loaded.
//!
//! A flow file is YAML (or JSON: by the `.json` extension, or by content) and
//! is parsed into a [`Flow`]. Every problem found is reported with its file,
//! line and column ([`FlowError`]), all of them at once where possible:
//! unknown and missing fields, wrong types, bad durations and sizes,
//! duplicate step ids, unknown plugins, expression syntax errors, references
//! to steps that are unknown or have not run yet, and an invalid
//! `input_schema`.
//!
//! A flow file holds at most [`MAX_FLOW_FILE_BYTES`] bytes,
//! [`MAX_DEPTH`] levels of nested lists and mappings and [`MAX_NODES`]
//! nodes with YAML aliases expanded; past any of these it is refused.
//!
//! ```yaml
//! flow: orders
//! timeout: 30s
//! steps:
//!   - id: validate
//!     plugin: validate-order
//!     retry: {max_attempts: 4, initial_interval: 50ms}
//!   - id: notify
//!     plugin: notify
//!     if: "${steps.validate.output.ok}"
//!     input: {order: "${steps.validate.output}", note: "total ${input.total}"}
//! ```
//!
//! # Steps
//!
//! A step has an `id` (letters, digits, `_` and `-`, starting with a letter
//! or `_`; unique in the whole flow, nested steps included) and exactly one
//! of `plugin`, `parallel`, `switch` or `for_each` (with `steps`). Every step
//! may have `input`, `if`, `timeout` and `continue_on_error`, except that a
//! `for_each` step takes no `input` (its `for_each` is its input). Only plugin
//! steps take `config`, `retry`, `circuit_breaker`, `fallback`, `allow` and
//! `limits`; only parallel steps take `fail_fast` (default true); only
//! for_each steps take `max_concurrency` (default 16). Any other field is an
//! error that lists the allowed ones.
//!
//! Without `input`, a step receives the previous step's output in its
//! sequence; the first step of the flow receives the flow input, the first
//! step of a parallel branch or switch case receives the parallel or switch
//! step's input, and the first step of a for_each pipeline receives its item.
//!
//! # Expressions
//!
//! Strings in `input`, `if`, `when`, `for_each` and a fallback's or
//! `on_error`'s `input` may hold `${...}` expressions in the Common
//! Expression Language (CEL), compiled once when the flow is loaded:
//!
//! - values: `input`, `steps.<id>.output` (or `steps['<id>'].output` for ids
//!   with `-`), `run` (`{id, flow, attempt}`), and inside a for_each pipeline
//!   `item` and `index`; in a fallback and in `on_error`, `error` too (the
//!   error record). Any other name is an error at load.
//! - literals: numbers, `true`, `false`, `null`, strings in single or double
//!   quotes (`'high'`), lists `[1, 2]` and maps `{'a': 1}`.
//! - operators: `== != < <= > >=`, `&& || !`, `+ - * / %`, `? :`, `in`,
//!   field access `a.b`, indexing `a[0]`, `a['k']`.
//! - functions: `size`, `has(a.b)`, `int`, `uint`, `double`, `string`,
//!   `type`, `contains`, `startsWith`, `endsWith`, `matches` (regex), the
//!   macros `all`, `exists`, `exists_one`, `map`, `filter`; the strings
//!   extension (`lowerAscii`, `upperAscii`, `trim`, `replace`, `split`,
//!   `join`, `substring`, `indexOf`, `format`, ...), `math.greatest`,
//!   `math.least`, `math.ceil`, ... and `lists.range`.
//!
//! JSON integers are CEL `int`s, other numbers `double`s; CEL compares them
//! across types, but arithmetic mixing them needs `double(...)`.
//!
//! A string that is exactly one `${...}` becomes the expression's value with
//! its JSON type (`"${item}"` over `[1, 2]` gives numbers). An expression
//! inside a longer string is interpolated as text: strings without quotes,
//! other values as compact JSON. `$${` is a literal `${`. Object keys are
//! never evaluated, nor is `config`.
//!
//! `if` and `when` take `"${...}"`, a bare expression, or a YAML boolean;
//! they must evaluate to a boolean.
//!
//! # Which steps an expression may read
//!
//! A step's expressions (`input`, `if`, a for_each's items, a switch's
//! `when`s, a fallback's `input`) see the outputs of the steps before it in
//! its own sequence and in every enclosing sequence: for a step nested in a
//! parallel, switch or for_each step, that is the steps before it in its
//! branch, case or pipeline, plus everything the enclosing step sees. The
//! enclosing step itself is not visible (it has not finished), sibling
//! parallel branches are not visible to each other, and steps nested inside
//! an earlier composite step are not visible outside it (read them through
//! the composite's output: `steps.enrich.output.user`; the load error says
//! how). `on_error` may read any top-level step of the flow (one that did not
//! run has no output, and reading it says why).

mod expr;
mod lower;
mod model;
#[cfg(test)]
mod tests;
pub(crate) mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

pub use expr::MAX_EXPR_DEPTH;
pub(crate) use expr::{Bindings, Bounds, EvalError, NoOutput, describe_json};
pub use model::Flow;
pub(crate) use model::{
    CircuitBreaker, ForEach, LimitOverrides, Parallel, PluginCall, PluginStep, SchemaId, Step,
    StepKind, Switch,
};
pub use yaml::{MAX_DEPTH, MAX_NODES};

/// The largest flow file read: 4 MiB, hundreds of times a real flow. A
/// larger file is refused without being read whole.
pub const MAX_FLOW_FILE_BYTES: u64 = 4 << 20;

/// A position in a flow file: line and column, both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Pos {
    /// The line, from 1.
    pub(crate) line: usize,
    /// The column, from 1, in characters.
    pub(crate) column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A problem in a flow file, shown as `file:line:column: message` (or
/// `file: message` when it has no position, `line` 0, as when the file
/// cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowError {
    /// The flow file.
    pub file: PathBuf,
    /// The line, from 1 (0: no position).
    pub line: usize,
    /// The column, from 1 (0: no position).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl FlowError {
    /// An error about the whole file (it cannot be read), with no position.
    pub(crate) fn whole_file(file: &Path, message: String) -> FlowError {
        FlowError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message,
        }
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for FlowError {}

/// Parses and checks a flow file's text. `path` names the file in errors and
/// picks JSON by its `.json` extension. With `plugins`, every plugin name the
/// flow uses must satisfy it.
///
/// # Errors
/// Every problem found, in file order.
pub fn parse_flow(
    path: &Path,
    text: &str,
    plugins: Option<&dyn Fn(&str) -> bool>,
) -> Result<Flow, Vec<FlowError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let error = |pos: Pos, message: String| FlowError {
        file: path.to_path_buf(),
        line: pos.line,
        column: pos.column,
        message,
    };
    if text.len() as u64 > MAX_FLOW_FILE_BYTES {
        return Err(vec![error(Pos::default(), too_large())]);
    }

    let json_ext = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if json_ext {
        // JSON syntax errors in JSON's words; the tree (with positions) is
        // then read by the YAML parser, as JSON is YAML.
        if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(at) => message[..at].to_string(),
                None => message,
            };
            let pos = Pos {
                line: e.line().max(1),
                column: e.column().max(1),
            };
            let mut message = format!("JSON syntax error: {message}");
            if looks_like_yaml(text) {
                let yaml = path.with_extension("yaml");
                let name = yaml.file_name().unwrap_or_default().to_string_lossy();
                message.push_str(&format!(
                    "; the file holds YAML, not JSON: rename it to `{name}`"
                ));
            }
            return Err(vec![error(pos, message)]);
        }
    }

    let (root, problems) = yaml::parse(text).map_err(|e| vec![error(e.pos, e.message)])?;
    let mut cx = lower::Cx::new(path, plugins);
    for p in problems {
        cx.err(p.pos, p.message);
    }
    let flow = cx.flow(&root);
    let mut errors = cx.errors;
    match flow {
        Some(mut flow) if errors.is_empty() => {
            flow.source = model::Source::of(text);
            Ok(flow)
        }
        _ => {
            errors.sort_by_key(|e| (e.line, e.column));
            errors.dedup();
            Err(errors)
        }
    }
}

/// Whether `text`, which is not JSON, is YAML that does not even start like
/// JSON (a flow written in YAML but named `.json`).
fn looks_like_yaml(text: &str) -> bool {
    !text.trim_start().starts_with(['{', '[']) && yaml::parse(text).is_ok()
}

/// Reads a flow file with tokio, at most [`MAX_FLOW_FILE_BYTES`] of it, and
/// parses it ([`parse_flow`]).
///
/// # Errors
/// As [`parse_flow`], or one error without a position when the file cannot
/// be read or is too large.
pub async fn load_flow(
    path: impl AsRef<Path>,
    plugins: Option<&(dyn Fn(&str) -> bool + Sync)>,
) -> Result<Flow, Vec<FlowError>> {
    let path = path.as_ref();
    let unreadable = |message: String| vec![FlowError::whole_file(path, message)];
    let bytes = match crate::bounded_read::read_capped(path, MAX_FLOW_FILE_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            return Err(unreadable(too_large()));
        }
        Err(e) => return Err(unreadable(format!("cannot read the flow file: {e}"))),
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| unreadable("cannot read the flow file: not UTF-8 text".into()))?;
    parse_flow(path, &text, plugins.map(|p| p as &dyn Fn(&str) -> bool))
}

fn too_large() -> String {
    format!(
        "the flow file is larger than {}, the limit for a flow file",
        bytesize::ByteSize(MAX_FLOW_FILE_BYTES).display().iec()
    )
}
