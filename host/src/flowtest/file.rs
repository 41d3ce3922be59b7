//! Test files (`NAME.test.yaml`): parsed with positions like flow files,
//! every problem reported as `file:line:column`, unknown fields included.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::ErrorKind;
use crate::executor::{Mock, MockAnswer, MockResult, Mocks};
use crate::flow::yaml::{self, Entry, Kind, Node};
use crate::flow::{FlowError, MAX_FLOW_FILE_BYTES, Pos};

/// The most cases one test file may hold.
pub const MAX_CASES: usize = 1_000;
/// The most answers one mocked step may list, one per attempt.
pub const MAX_MOCK_ANSWERS: usize = 100;

const FILE_FIELDS: &[&str] = &["flow", "plugins", "cases"];
const CASE_FIELDS: &[&str] = &["name", "input", "mock", "real_time", "expect"];
const ANSWER_FIELDS: &[&str] = &["output", "error", "message", "plugin", "delay"];
pub(super) const EXPECT_FIELDS: &[&str] = &[
    "status",
    "output",
    "output_contains",
    "failed_step",
    "kind",
    "message_contains",
    "min_duration",
    "max_duration",
    "steps",
];
pub(super) const STEP_FIELDS: &[&str] = &["status", "attempts", "kind", "breaker_open", "mocked"];
const RUN_STATUSES: &[&str] = &["succeeded", "failed", "cancelled"];
const STEP_STATUSES: &[&str] = &[
    "succeeded",
    "failed",
    "recovered",
    "continued",
    "skipped",
    "cancelled",
];

/// A parsed test file.
#[derive(Debug)]
pub struct TestFile {
    /// The test file.
    pub path: PathBuf,
    /// The flow under test, resolved against the test file's folder.
    pub flow: PathBuf,
    /// The plugins folder, resolved likewise, when the file names one.
    pub plugins: Option<PathBuf>,
    /// The cases, in file order.
    pub cases: Vec<Case>,
}

/// One case: an input, mocks, and what the run must show.
#[derive(Debug)]
pub struct Case {
    /// The case's name, unique in its file.
    pub name: String,
    /// Where the case starts in its file.
    pub line: usize,
    /// The run input.
    pub input: Value,
    /// Steps answered by mocks.
    pub mocks: Mocks,
    /// Runs on the wall clock instead of virtual time.
    pub real_time: bool,
    /// What the run must show.
    pub expect: Expect,
}

/// What a case expects, each field checked when given.
#[derive(Debug, Default)]
pub struct Expect {
    /// Fields compared exactly with the run's view (`status`, `output`,
    /// `failed_step`, `kind`, and `steps.ID.FIELD`), as JSON.
    pub(super) exact: serde_json::Map<String, Value>,
    /// A subset the run's output must contain.
    pub(super) output_contains: Option<Value>,
    /// Text the run's error message must contain.
    pub(super) message_contains: Option<String>,
    /// Bounds on the run's recorded (nominal) duration.
    pub(super) min_duration: Option<Duration>,
    pub(super) max_duration: Option<Duration>,
}

/// Parses a test file's text; `path` names it in errors and anchors the
/// flow and plugins paths it gives.
///
/// # Errors
/// Every problem found, in file order.
pub fn parse_test_file(path: &Path, text: &str) -> Result<TestFile, Vec<FlowError>> {
    let mut cx = Cx {
        file: path,
        errors: Vec::new(),
    };
    if text.len() as u64 > MAX_FLOW_FILE_BYTES {
        cx.err(Pos::default(), "the test file is larger than 4 MiB");
        return Err(cx.errors);
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = match yaml::parse(text) {
        Ok((root, problems)) => {
            for p in problems {
                cx.err(p.pos, p.message);
            }
            root
        }
        Err(e) => {
            cx.err(e.pos, e.message);
            return Err(cx.errors);
        }
    };
    let file = cx.file_root(&root);
    match file {
        Some(file) if cx.errors.is_empty() => Ok(file),
        _ => {
            cx.errors.sort_by_key(|e| (e.line, e.column));
            Err(cx.errors)
        }
    }
}

struct Cx<'a> {
    file: &'a Path,
    errors: Vec<FlowError>,
}

impl Cx<'_> {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(FlowError {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        });
    }

    /// The entries of `node`, a mapping with only `allowed` fields.
    fn fields<'n>(&mut self, node: &'n Node, what: &str, allowed: &[&str]) -> Option<&'n [Entry]> {
        node.fields(what, allowed, &mut |pos, message| self.err(pos, message))
    }

    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.kind {
            Kind::Str(s) => Some(s.clone()),
            _ => {
                let found = node.describe();
                self.err(
                    node.pos,
                    format!("`{field}` must be a string, found {found}"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                let found = node.describe();
                self.err(
                    node.pos,
                    format!("`{field}` must be a boolean, found {found}"),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let text = node.scalar_text().unwrap_or_default();
        match crate::duration::parse_duration(&text) {
            Ok(d) => Some(d),
            Err(why) => {
                self.err(
                    node.pos,
                    format!("invalid duration `{text}` for `{field}`: {why}"),
                );
                None
            }
        }
    }

    /// A word of `allowed`.
    fn word(&mut self, node: &Node, field: &str, allowed: &[&str]) -> Option<String> {
        let word = self.string(node, field)?;
        if allowed.contains(&word.as_str()) {
            return Some(word);
        }
        self.err(
            node.pos,
            format!(
                "unknown {field} `{word}` (expected one of: {})",
                allowed.join(", ")
            ),
        );
        None
    }

    fn kind(&mut self, node: &Node, field: &str) -> Option<ErrorKind> {
        let word = self.string(node, field)?;
        match word.parse::<ErrorKind>() {
            Ok(kind) => Some(kind),
            Err(e) => {
                self.err(node.pos, format!("`{field}`: {e}"));
                None
            }
        }
    }

    fn file_root(&mut self, root: &Node) -> Option<TestFile> {
        let entries = self.fields(root, "a test file", FILE_FIELDS)?;
        let dir = self.file.parent().unwrap_or(Path::new("")).to_path_buf();
        let (mut flow, mut plugins, mut cases) = (None, None, None);
        for e in entries {
            match e.key.as_str() {
                "flow" => flow = self.string(&e.value, "flow").map(|f| dir.join(f)),
                "plugins" => plugins = self.string(&e.value, "plugins").map(|p| dir.join(p)),
                "cases" => cases = self.cases(&e.value),
                _ => {}
            }
        }
        if flow.is_none() && !entries.iter().any(|e| e.key == "flow") {
            self.err(root.pos, "a test file needs `flow`: the flow file it tests");
        }
        if cases.is_none() && !entries.iter().any(|e| e.key == "cases") {
            self.err(root.pos, "a test file needs `cases`: a list of cases");
        }
        Some(TestFile {
            path: self.file.to_path_buf(),
            flow: flow?,
            plugins,
            cases: cases?,
        })
    }

    fn cases(&mut self, node: &Node) -> Option<Vec<Case>> {
        let Kind::Seq(items) = &node.kind else {
            let found = node.describe();
            self.err(node.pos, format!("`cases` must be a list, found {found}"));
            return None;
        };
        if items.len() > MAX_CASES {
            self.err(
                node.pos,
                format!(
                    "{} cases, more than the {MAX_CASES} a file may hold",
                    items.len()
                ),
            );
            return None;
        }
        let mut cases: Vec<Case> = Vec::new();
        for item in items {
            let Some(case) = self.case(item) else {
                continue;
            };
            if cases.iter().any(|c| c.name == case.name) {
                self.err(item.pos, format!("a second case named `{}`", case.name));
            }
            cases.push(case);
        }
        Some(cases)
    }

    fn case(&mut self, node: &Node) -> Option<Case> {
        let entries = self.fields(node, "a case", CASE_FIELDS)?;
        let mut case = Case {
            name: String::new(),
            line: node.pos.line,
            input: Value::Object(Default::default()),
            mocks: Mocks::default(),
            real_time: false,
            expect: Expect::default(),
        };
        let mut named = false;
        for e in entries {
            match e.key.as_str() {
                "name" => {
                    if let Some(name) = self.string(&e.value, "name") {
                        (case.name, named) = (name, true);
                    }
                }
                "input" => case.input = e.value.to_json(),
                "mock" => case.mocks = self.mocks(&e.value)?,
                "real_time" => case.real_time = self.boolean(&e.value, "real_time")?,
                "expect" => case.expect = self.expect(&e.value)?,
                _ => {}
            }
        }
        if !named {
            self.err(node.pos, "a case needs a `name`");
            return None;
        }
        if !entries.iter().any(|e| e.key == "expect") {
            self.err(node.pos, format!("case `{}` needs `expect`", case.name));
        }
        Some(case)
    }

    fn mocks(&mut self, node: &Node) -> Option<Mocks> {
        let Kind::Map(entries) = &node.kind else {
            let found = node.describe();
            self.err(
                node.pos,
                format!("`mock` must map step ids to answers, found {found}"),
            );
            return None;
        };
        let mut mocks = Mocks::default();
        for e in entries {
            let mock = match &e.value.kind {
                Kind::Seq(items) if items.len() > MAX_MOCK_ANSWERS => {
                    self.err(
                        e.value.pos,
                        format!("more than {MAX_MOCK_ANSWERS} answers for one step"),
                    );
                    None
                }
                Kind::Seq(items) => {
                    let answers: Vec<_> = items.iter().filter_map(|a| self.answer(a)).collect();
                    if answers.len() < items.len() {
                        None
                    } else if let Some(mock) = Mock::per_attempt(answers) {
                        Some(mock)
                    } else {
                        self.err(e.value.pos, "a mock's list of answers is empty");
                        None
                    }
                }
                _ => self.answer(&e.value).map(Mock::always),
            };
            if let Some(mock) = mock {
                mocks.insert(e.key.clone(), mock);
            }
        }
        Some(mocks)
    }

    fn answer(&mut self, node: &Node) -> Option<MockAnswer> {
        let what = "a mock answer";
        let entries = self.fields(node, what, ANSWER_FIELDS)?;
        let get = |key: &str| entries.iter().find(|e| e.key == key).map(|e| &e.value);
        let delay = match get("delay") {
            Some(d) => self.duration(d, "delay")?,
            None => Duration::ZERO,
        };
        let given: Vec<&str> = ["output", "error", "plugin"]
            .into_iter()
            .filter(|k| get(k).is_some())
            .collect();
        if given.len() != 1 {
            self.err(
                node.pos,
                format!(
                    "a mock answer gives exactly one of `output`, `error` or `plugin` (found {})",
                    if given.is_empty() {
                        "none".to_string()
                    } else {
                        given.join(", ")
                    }
                ),
            );
            return None;
        }
        if let (Some(m), None) = (get("message"), get("error")) {
            self.err(m.pos, "`message` goes with `error`");
            return None;
        }
        let result = match given[0] {
            "output" => {
                let json = get("output")?.to_json().to_string();
                MockResult::Output(RawValue::from_string(json).ok()?)
            }
            "error" => {
                let kind = self.kind(get("error")?, "error")?;
                let message = match get("message") {
                    Some(m) => self.string(m, "message")?,
                    None => format!("mocked {kind} error"),
                };
                MockResult::Error { kind, message }
            }
            _ => MockResult::Plugin(self.string(get("plugin")?, "plugin")?),
        };
        Some(MockAnswer { delay, result })
    }

    fn expect(&mut self, node: &Node) -> Option<Expect> {
        let entries = self.fields(node, "`expect`", EXPECT_FIELDS)?;
        let mut expect = Expect::default();
        for e in entries {
            let (key, v) = (e.key.as_str(), &e.value);
            let value = match key {
                "status" => self.word(v, "status", RUN_STATUSES).map(Value::String),
                "kind" => self.kind(v, "kind").map(|k| Value::String(k.to_string())),
                "failed_step" => self.string(v, "failed_step").map(Value::String),
                "output" => Some(v.to_json()),
                "steps" => self.step_expects(v),
                "output_contains" => {
                    expect.output_contains = Some(v.to_json());
                    None
                }
                "message_contains" => {
                    expect.message_contains = self.string(v, key);
                    None
                }
                "min_duration" => {
                    expect.min_duration = self.duration(v, key);
                    None
                }
                "max_duration" => {
                    expect.max_duration = self.duration(v, key);
                    None
                }
                _ => None,
            };
            if let Some(value) = value {
                expect.exact.insert(key.to_string(), value);
            }
        }
        Some(expect)
    }

    /// `steps`: step id, path or `ID.fallback` to the fields expected of it.
    fn step_expects(&mut self, node: &Node) -> Option<Value> {
        let Kind::Map(entries) = &node.kind else {
            let found = node.describe();
            self.err(
                node.pos,
                format!("`steps` must map step ids to expectations, found {found}"),
            );
            return None;
        };
        let mut steps = serde_json::Map::new();
        for e in entries {
            let what = format!("the expectation of step `{}`", e.key);
            let Some(fields) = self.fields(&e.value, &what, STEP_FIELDS) else {
                continue;
            };
            let mut step = serde_json::Map::new();
            for f in fields {
                let (key, v) = (f.key.as_str(), &f.value);
                let value = match key {
                    "status" => self.word(v, "status", STEP_STATUSES).map(Value::String),
                    "kind" => self.kind(v, "kind").map(|k| Value::String(k.to_string())),
                    "attempts" => match v.kind {
                        Kind::Int(n) if n >= 0 => Some(Value::from(n)),
                        _ => {
                            self.err(v.pos, "`attempts` must be a count, 0 or more");
                            None
                        }
                    },
                    "breaker_open" | "mocked" => self.boolean(v, key).map(Value::Bool),
                    _ => None,
                };
                if let Some(value) = value {
                    step.insert(key.to_string(), value);
                }
            }
            steps.insert(e.key.clone(), Value::Object(step));
        }
        Some(Value::Object(steps))
    }
}
