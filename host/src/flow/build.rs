//! From the position-annotated tree to the checked model, collecting every
//! error on the way.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::expr::{Condition, Expr, TNode, Template, compile_str, unescape};
use super::model::*;
use super::yaml::{Entry, Kind, Node};
use super::{FlowError, Pos};
use crate::{DirGrant, DirMode, Grants};

const FLOW_FIELDS: &[&str] = &[
    "flow",
    "timeout",
    "input_schema",
    "triggers",
    "concurrency",
    "steps",
    "on_error",
];
const STEP_KINDS: &[&str] = &["plugin", "parallel", "switch", "for_each"];
const COMMON_FIELDS: &[&str] = &["id", "input", "if", "timeout", "continue_on_error"];
const PLUGIN_FIELDS: &[&str] = &[
    "plugin",
    "config",
    "retry",
    "circuit_breaker",
    "fallback",
    "allow",
    "limits",
];
const PARALLEL_FIELDS: &[&str] = &["parallel", "fail_fast"];
const SWITCH_FIELDS: &[&str] = &["switch"];
const FOR_EACH_FIELDS: &[&str] = &["for_each", "max_concurrency", "steps"];
const RETRY_FIELDS: &[&str] = &[
    "max_attempts",
    "initial_interval",
    "backoff_coefficient",
    "max_interval",
    "jitter",
    "non_retryable",
    "retry_on",
];
const CALL_FIELDS: &[&str] = &["plugin", "input", "config"];

/// What expressions may read at some point of the flow.
#[derive(Clone, Default)]
struct Scope {
    /// Step ids whose outputs are visible.
    visible: Vec<String>,
    /// Inside a `for_each`: `item` and `index`.
    item: bool,
    /// In a fallback or `on_error`: `error`.
    error: bool,
    /// In `on_error`: any step of the flow.
    any_step: bool,
}

impl Scope {
    fn vars(&self) -> Vec<&'static str> {
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

/// The entries of a mapping whose fields were checked.
struct Fields<'n>(&'n [Entry]);

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.0.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    fn key_pos(&self, key: &str) -> Option<Pos> {
        self.0.iter().find(|e| e.key == key).map(|e| e.key_pos)
    }
}

pub(super) struct Cx<'a> {
    file: &'a Path,
    plugins: Option<&'a dyn Fn(&str) -> bool>,
    pub(super) errors: Vec<FlowError>,
    /// Every step id in the file, for "unknown" versus "not run yet".
    all_ids: HashSet<String>,
    /// Ids seen so far, with where.
    seen: HashMap<String, Pos>,
}

impl<'a> Cx<'a> {
    pub(super) fn new(file: &'a Path, plugins: Option<&'a dyn Fn(&str) -> bool>) -> Self {
        Cx {
            file,
            plugins,
            errors: Vec::new(),
            all_ids: HashSet::new(),
            seen: HashMap::new(),
        }
    }

    pub(super) fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(FlowError {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        });
    }

    /// Checks that `node` is a mapping with only `allowed` fields.
    fn fields<'n>(&mut self, node: &'n Node, what: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let Kind::Map(entries) = &node.kind else {
            self.err(
                node.pos,
                format!("{what} must be a mapping, found {}", node.describe()),
            );
            return None;
        };
        for e in entries {
            if !allowed.contains(&e.key.as_str()) {
                self.err(
                    e.key_pos,
                    format!(
                        "unknown field `{}` in {what}; allowed fields: {}",
                        e.key,
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(Fields(entries))
    }

    fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        key: &str,
        what: &str,
        pos: Pos,
    ) -> Option<&'n Node> {
        let node = fields.get(key);
        if node.is_none() {
            self.err(pos, format!("missing required field `{key}` in {what}"));
        }
        node
    }

    fn wrong_type(&mut self, node: &Node, field: &str, expected: &str) {
        self.err(
            node.pos,
            format!("`{field}` must be {expected}, found {}", node.describe()),
        );
    }

    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.kind {
            Kind::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(node, field, "a string");
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.wrong_type(node, field, "a boolean");
                None
            }
        }
    }

    /// An integer of at least `min`.
    fn integer(&mut self, node: &Node, field: &str, min: i64) -> Option<u64> {
        match node.kind {
            Kind::Int(i) if i >= min => Some(i as u64),
            Kind::Int(_) => {
                self.err(node.pos, format!("`{field}` must be at least {min}"));
                None
            }
            _ => {
                self.wrong_type(node, field, "an integer");
                None
            }
        }
    }

    fn number(&mut self, node: &Node, field: &str) -> Option<f64> {
        match node.kind {
            Kind::Int(i) => Some(i as f64),
            Kind::Float(f) => Some(f),
            _ => {
                self.wrong_type(node, field, "a number");
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let Some(text) = node.scalar_text() else {
            self.wrong_type(node, field, "a duration such as 500ms, 2s or 1m");
            return None;
        };
        match humantime::parse_duration(text.trim()) {
            Ok(d) => Some(d),
            Err(_) => {
                self.err(
                    node.pos,
                    format!(
                        "invalid duration `{text}` for `{field}`: expected a number and a unit, such as 500ms, 2s or 1m"
                    ),
                );
                None
            }
        }
    }

    /// A duration that must not be zero (deadlines).
    fn timeout(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let d = self.duration(node, field)?;
        if d.is_zero() {
            self.err(node.pos, format!("`{field}` must be greater than zero"));
            return None;
        }
        Some(d)
    }

    fn size(&mut self, node: &Node, field: &str) -> Option<u64> {
        match &node.kind {
            Kind::Int(i) if *i >= 0 => return Some(*i as u64),
            Kind::Str(s) => {
                if let Ok(size) = s.trim().parse::<bytesize::ByteSize>() {
                    return Some(size.as_u64());
                }
            }
            Kind::Seq(_) | Kind::Map(_) => {
                self.wrong_type(node, field, "a size such as 64MiB");
                return None;
            }
            _ => {}
        }
        let text = node.scalar_text().unwrap_or_default();
        self.err(
            node.pos,
            format!(
                "invalid size `{text}` for `{field}`: expected a number of bytes, or a number and a unit such as 512KiB, 64MiB or 1GB"
            ),
        );
        None
    }

    fn list<'n>(&mut self, node: &'n Node, field: &str) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            _ => {
                self.wrong_type(node, field, "a list");
                None
            }
        }
    }

    fn strings(&mut self, node: &Node, field: &str) -> Vec<String> {
        let Some(items) = self.list(node, field) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|i| match &i.kind {
                Kind::Str(s) => Some(s.clone()),
                _ => {
                    self.err(
                        i.pos,
                        format!(
                            "`{field}` must be a list of strings, found {}",
                            i.describe()
                        ),
                    );
                    None
                }
            })
            .collect()
    }

    fn plugin_name(&mut self, node: &Node) -> Option<String> {
        let name = self.string(node, "plugin")?;
        if name.is_empty() {
            self.err(node.pos, "`plugin` must not be empty");
            return None;
        }
        if let Some(known) = self.plugins
            && !known(&name)
        {
            self.err(node.pos, format!("unknown plugin `{name}`"));
        }
        Some(name)
    }

    // ---- expressions ----

    fn check_expr(&mut self, pos: Pos, expr: &Expr, scope: &Scope) {
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
            if scope.visible.contains(id) || (scope.any_step && known) {
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

    fn tnode(&mut self, node: &Node, scope: &Scope) -> TNode {
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

    fn template(&mut self, node: &Node, scope: &Scope) -> Template {
        Template::from_node(self.tnode(node, scope))
    }

    fn condition(&mut self, node: &Node, field: &str, scope: &Scope) -> Option<Condition> {
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

    // ---- the flow ----

    pub(super) fn flow(&mut self, root: &Node) -> Option<Flow> {
        let fields = self.fields(root, "the flow", FLOW_FIELDS)?;
        collect_ids(root, false, &mut self.all_ids);

        let name = self
            .required(&fields, "flow", "the flow", root.pos)
            .and_then(|n| self.string(n, "flow"));
        if let (Some(name), Some(node)) = (&name, fields.get("flow"))
            && name.trim().is_empty()
        {
            self.err(node.pos, "`flow` must not be empty");
        }
        let timeout = fields
            .get("timeout")
            .and_then(|n| self.timeout(n, "timeout"));
        let input_schema =
            fields
                .get("input_schema")
                .and_then(|n| match InputSchema::compile_at(&n.to_json()) {
                    Ok(s) => Some(s),
                    Err((pointer, message)) => {
                        let (pos, at) = match pointer.as_str() {
                            "" => (n.pos, String::new()),
                            p => (n.at_pointer(p).pos, format!(" at {p}")),
                        };
                        self.err(pos, format!("invalid `input_schema`{at}: {message}"));
                        None
                    }
                });
        let triggers = fields
            .get("triggers")
            .map(|n| self.triggers(n))
            .unwrap_or_default();
        let concurrency = fields.get("concurrency").and_then(|n| {
            let f = self.fields(n, "`concurrency`", &["limit"])?;
            let limit = self.required(&f, "limit", "`concurrency`", n.pos)?;
            self.integer(limit, "limit", 1)
                .map(|l| l.min(u32::MAX as u64) as u32)
        });
        let steps = self
            .required(&fields, "steps", "the flow", root.pos)
            .map(|n| self.steps(n, "steps", &Scope::default()));
        let on_error = fields.get("on_error").and_then(|n| {
            let scope = Scope {
                error: true,
                any_step: true,
                ..Scope::default()
            };
            self.call(n, "`on_error`", &scope)
        });

        if !self.errors.is_empty() {
            return None;
        }
        Some(Flow {
            name: name?,
            file: self.file.to_path_buf(),
            timeout,
            input_schema,
            triggers,
            concurrency,
            steps: steps?,
            on_error,
        })
    }

    fn triggers(&mut self, node: &Node) -> Vec<Trigger> {
        let Some(items) = self.list(node, "triggers") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let Some(f) = self.fields(item, "a trigger", &["event"]) else {
                continue;
            };
            let Some(event) = self
                .required(&f, "event", "a trigger", item.pos)
                .and_then(|n| self.string(n, "event"))
            else {
                continue;
            };
            if event.is_empty() {
                self.err(item.pos, "`event` must not be empty");
                continue;
            }
            out.push(Trigger {
                event,
                pos: item.pos,
            });
        }
        out
    }

    /// A plugin call: a fallback or `on_error`.
    fn call(&mut self, node: &Node, what: &str, scope: &Scope) -> Option<PluginCall> {
        let f = self.fields(node, what, CALL_FIELDS)?;
        let plugin = self
            .required(&f, "plugin", what, node.pos)
            .and_then(|n| self.plugin_name(n));
        let input = f.get("input").map(|n| self.template(n, scope));
        let config = f.get("config").map(Node::to_json).unwrap_or_default();
        Some(PluginCall {
            plugin: plugin?,
            input,
            config,
            pos: node.pos,
        })
    }

    // ---- steps ----

    /// A sequence of steps: each sees the ones before it.
    fn steps(&mut self, node: &Node, field: &str, scope: &Scope) -> Vec<Step> {
        let Some(items) = self.list(node, field) else {
            return Vec::new();
        };
        if items.is_empty() {
            self.err(node.pos, format!("`{field}` must not be empty"));
        }
        let mut scope = scope.clone();
        let mut out = Vec::new();
        for item in items {
            if let Some(step) = self.step(item, &scope) {
                out.push(step);
            }
            if let Some(id) = step_id(item) {
                scope.visible.push(id.to_string());
            }
        }
        out
    }

    fn step(&mut self, node: &Node, scope: &Scope) -> Option<Step> {
        let Kind::Map(entries) = &node.kind else {
            self.wrong_type(node, "a step", "a mapping");
            return None;
        };
        let all = Fields(entries);

        // The id: required, well formed, unique.
        let id = match all.get("id") {
            None => {
                self.err(node.pos, "missing required field `id` in a step");
                None
            }
            Some(n) => self.string(n, "id").and_then(|id| {
                if !valid_id(&id) {
                    self.err(
                        n.pos,
                        format!(
                            "invalid step id `{id}`: use letters, digits, `_` and `-`, starting with a letter or `_`"
                        ),
                    );
                    return None;
                }
                if let Some(first) = self.seen.get(&id) {
                    let first = *first;
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
            }),
        };
        let what = match &id {
            Some(id) => format!("step `{id}`"),
            None => "a step".to_string(),
        };

        // Exactly one kind.
        let kinds: Vec<&str> = entries
            .iter()
            .map(|e| e.key.as_str())
            .filter(|k| STEP_KINDS.contains(k))
            .collect();
        let kind = match kinds.as_slice() {
            [k] => Some(*k),
            [] => {
                self.err(
                    node.pos,
                    format!(
                        "{what} must have exactly one of `plugin`, `parallel`, `switch` or `for_each`; found none"
                    ),
                );
                None
            }
            [_, second, ..] => {
                let found: Vec<String> = kinds.iter().map(|k| format!("`{k}`")).collect();
                let pos = all.key_pos(second).unwrap_or(node.pos);
                self.err(
                    pos,
                    format!(
                        "{what} must have exactly one of `plugin`, `parallel`, `switch` or `for_each`; found {}",
                        found.join(" and ")
                    ),
                );
                None
            }
        };
        let mut allowed: Vec<&str> = COMMON_FIELDS.to_vec();
        match kind {
            Some("plugin") => allowed.extend(PLUGIN_FIELDS),
            Some("parallel") => allowed.extend(PARALLEL_FIELDS),
            Some("switch") => allowed.extend(SWITCH_FIELDS),
            Some(_) => {
                allowed.retain(|f| *f != "input");
                allowed.extend(FOR_EACH_FIELDS);
            }
            None => {
                for set in [
                    PLUGIN_FIELDS,
                    PARALLEL_FIELDS,
                    SWITCH_FIELDS,
                    FOR_EACH_FIELDS,
                ] {
                    allowed.extend(set);
                }
            }
        }
        let what_kind = match kind {
            Some(k) => format!("{what} (a {k} step)"),
            None => what.clone(),
        };
        let fields = self.fields(node, &what_kind, &allowed)?;

        let input = fields.get("input").map(|n| self.template(n, scope));
        let condition = fields
            .get("if")
            .and_then(|n| self.condition(n, "if", scope));
        let timeout = fields
            .get("timeout")
            .and_then(|n| self.timeout(n, "timeout"));
        let continue_on_error = fields
            .get("continue_on_error")
            .and_then(|n| self.boolean(n, "continue_on_error"))
            .unwrap_or(false);

        let kind = match kind? {
            "plugin" => StepKind::Plugin(Box::new(self.plugin_step(&fields, scope)?)),
            "parallel" => {
                let list = fields.get("parallel")?;
                let items = self.list(list, "parallel")?;
                if items.is_empty() {
                    self.err(list.pos, "`parallel` must not be empty");
                }
                // Branches see what the parallel step sees, not each other.
                let branches: Vec<Step> =
                    items.iter().filter_map(|b| self.step(b, scope)).collect();
                let fail_fast = fields
                    .get("fail_fast")
                    .and_then(|n| self.boolean(n, "fail_fast"))
                    .unwrap_or(true);
                StepKind::Parallel(Parallel {
                    branches,
                    fail_fast,
                })
            }
            "switch" => StepKind::Switch(self.switch(fields.get("switch")?, scope)?),
            _ => {
                let each = fields.get("for_each")?;
                let items = match each.kind {
                    Kind::Str(_) | Kind::Seq(_) => self.template(each, scope),
                    _ => {
                        self.wrong_type(each, "for_each", "a list or an expression");
                        return None;
                    }
                };
                let max_concurrency = fields
                    .get("max_concurrency")
                    .and_then(|n| self.integer(n, "max_concurrency", 1))
                    .map(|n| n as usize)
                    .unwrap_or(ForEach::DEFAULT_MAX_CONCURRENCY);
                let inner = Scope {
                    item: true,
                    ..scope.clone()
                };
                let steps = self
                    .required(&fields, "steps", &what, node.pos)
                    .map(|n| self.steps(n, "steps", &inner))?;
                StepKind::ForEach(ForEach {
                    items,
                    max_concurrency,
                    steps,
                })
            }
        };
        Some(Step {
            id: id?,
            pos: node.pos,
            kind,
            input,
            condition,
            timeout,
            continue_on_error,
        })
    }

    fn plugin_step(&mut self, fields: &Fields<'_>, scope: &Scope) -> Option<PluginStep> {
        let plugin = fields.get("plugin").and_then(|n| self.plugin_name(n));
        let config = fields.get("config").map(Node::to_json).unwrap_or_default();
        let retry = match fields.get("retry") {
            Some(n) => self.retry(n),
            None => Some(RetryPolicy::default()),
        };
        let circuit_breaker = fields.get("circuit_breaker").and_then(|n| {
            let f = self.fields(
                n,
                "`circuit_breaker`",
                &["failure_threshold", "reset_timeout"],
            )?;
            let mut cb = CircuitBreaker::default();
            if let Some(n) = f.get("failure_threshold") {
                cb.failure_threshold = self
                    .integer(n, "failure_threshold", 1)?
                    .min(u32::MAX as u64) as u32;
            }
            if let Some(n) = f.get("reset_timeout") {
                cb.reset_timeout = self.timeout(n, "reset_timeout")?;
            }
            Some(cb)
        });
        let fallback = fields.get("fallback").and_then(|n| {
            let scope = Scope {
                error: true,
                ..scope.clone()
            };
            self.call(n, "`fallback`", &scope)
        });
        let grants = match fields.get("allow") {
            Some(n) => self.grants(n),
            None => Some(Grants::default()),
        };
        let limits = match fields.get("limits") {
            Some(n) => self.limits(n),
            None => Some(LimitOverrides::default()),
        };
        Some(PluginStep {
            plugin: plugin?,
            config,
            retry: retry?,
            circuit_breaker,
            fallback,
            grants: grants?,
            limits: limits?,
        })
    }

    fn retry(&mut self, node: &Node) -> Option<RetryPolicy> {
        let f = self.fields(node, "`retry`", RETRY_FIELDS)?;
        let mut p = RetryPolicy::block_default();
        let mut ok = true;
        if let Some(n) = f.get("max_attempts") {
            match self.integer(n, "max_attempts", 1) {
                Some(v) => p.max_attempts = v.min(u32::MAX as u64) as u32,
                None => ok = false,
            }
        }
        if let Some(n) = f.get("initial_interval") {
            match self.duration(n, "initial_interval") {
                Some(v) => p.initial_interval = v,
                None => ok = false,
            }
        }
        if let Some(n) = f.get("max_interval") {
            match self.duration(n, "max_interval") {
                Some(v) => p.max_interval = v,
                None => ok = false,
            }
        }
        if let Some(n) = f.get("backoff_coefficient") {
            match self.number(n, "backoff_coefficient") {
                Some(v) if v >= 1.0 && v.is_finite() => p.backoff_coefficient = v,
                Some(_) => {
                    self.err(n.pos, "`backoff_coefficient` must be at least 1.0");
                    ok = false;
                }
                None => ok = false,
            }
        }
        if let Some(n) = f.get("jitter") {
            match n.kind {
                Kind::Str(ref s) if s == "none" => p.jitter = Jitter::None,
                Kind::Str(ref s) if s == "full" => p.jitter = Jitter::Full,
                Kind::Str(ref s) if s == "equal" => p.jitter = Jitter::Equal,
                _ => {
                    let text = n.scalar_text().unwrap_or_else(|| n.describe().to_string());
                    self.err(
                        n.pos,
                        format!("invalid jitter `{text}`: expected none, full or equal"),
                    );
                    ok = false;
                }
            }
        }
        for (field, slot) in [("non_retryable", 0), ("retry_on", 1)] {
            let Some(n) = f.get(field) else { continue };
            let Some(items) = self.list(n, field) else {
                ok = false;
                continue;
            };
            let mut kinds = Vec::new();
            for item in items {
                let text = item
                    .scalar_text()
                    .unwrap_or_else(|| item.describe().to_string());
                if matches!(item.kind, Kind::Str(_)) && RETRY_KINDS.contains(&text.as_str()) {
                    kinds.push(text);
                } else {
                    self.err(
                        item.pos,
                        format!(
                            "unknown error kind `{text}` in `{field}`; expected one of: {}",
                            RETRY_KINDS.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
            if slot == 0 {
                p.non_retryable = kinds;
            } else {
                p.retry_on = Some(kinds);
            }
        }
        ok.then_some(p)
    }

    fn grants(&mut self, node: &Node) -> Option<Grants> {
        let f = self.fields(node, "`allow`", &["dirs", "env", "http"])?;
        let mut grants = Grants::default();
        if let Some(n) = f.get("dirs") {
            for item in self.list(n, "dirs")? {
                let Some(d) = self.fields(item, "a directory grant", &["host", "guest", "mode"])
                else {
                    continue;
                };
                let Some(host) = self
                    .required(&d, "host", "a directory grant", item.pos)
                    .and_then(|n| self.string(n, "host"))
                else {
                    continue;
                };
                let guest = d.get("guest").and_then(|n| self.string(n, "guest"));
                let mode = match d.get("mode") {
                    None => DirMode::Ro,
                    Some(n) => match &n.kind {
                        Kind::Str(s) if s == "ro" => DirMode::Ro,
                        Kind::Str(s) if s == "rw" => DirMode::Rw,
                        _ => {
                            let text = n.scalar_text().unwrap_or_else(|| n.describe().to_string());
                            self.err(n.pos, format!("invalid mode `{text}`: expected ro or rw"));
                            continue;
                        }
                    },
                };
                grants.dirs.push(DirGrant {
                    host: host.into(),
                    guest,
                    mode,
                });
            }
        }
        if let Some(n) = f.get("env") {
            grants.env = self.strings(n, "env");
        }
        if let Some(n) = f.get("http") {
            grants.http = self.strings(n, "http");
        }
        Some(grants)
    }

    fn limits(&mut self, node: &Node) -> Option<LimitOverrides> {
        let f = self.fields(node, "`limits`", &["fuel", "memory"])?;
        let mut limits = LimitOverrides::default();
        if let Some(n) = f.get("fuel") {
            limits.fuel = Some(self.integer(n, "fuel", 1)?);
        }
        if let Some(n) = f.get("memory") {
            limits.max_memory = Some(self.size(n, "memory")?);
        }
        Some(limits)
    }

    fn switch(&mut self, node: &Node, scope: &Scope) -> Option<Switch> {
        let items = self.list(node, "switch")?;
        if items.is_empty() {
            self.err(node.pos, "`switch` must not be empty");
        }
        let mut cases = Vec::new();
        let mut default = None;
        for (i, item) in items.iter().enumerate() {
            let is_default =
                matches!(&item.kind, Kind::Map(e) if e.iter().any(|e| e.key == "default"));
            if is_default {
                let Some(f) = self.fields(item, "a default case", &["default"]) else {
                    continue;
                };
                if i + 1 != items.len() {
                    let pos = f.key_pos("default").unwrap_or(item.pos);
                    self.err(pos, "`default` must be the last case of a switch");
                }
                if let Some(n) = f.get("default") {
                    default = Some(self.steps(n, "default", scope));
                }
                continue;
            }
            let Some(f) = self.fields(item, "a switch case", &["when", "steps"]) else {
                continue;
            };
            let when = self
                .required(&f, "when", "a switch case", item.pos)
                .and_then(|n| self.condition(n, "when", scope));
            let steps = self
                .required(&f, "steps", "a switch case", item.pos)
                .map(|n| self.steps(n, "steps", scope));
            if let (Some(when), Some(steps)) = (when, steps) {
                cases.push(SwitchCase {
                    when,
                    steps,
                    pos: item.pos,
                });
            }
        }
        Some(Switch { cases, default })
    }
}

/// The id of a step node, if it has a string one.
fn step_id(node: &Node) -> Option<&str> {
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
fn collect_ids(node: &Node, is_step: bool, ids: &mut HashSet<String>) {
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

/// Letters, digits, `_` and `-`, starting with a letter or `_`.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
