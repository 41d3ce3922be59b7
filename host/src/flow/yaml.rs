//! A YAML (and JSON) document as a tree whose every node, mapping keys
//! included, knows its line and column.
//!
//! Built from the event stream of `saphyr-parser`, so that duplicate keys are
//! caught and nothing is silently dropped. Scalars are resolved with the YAML
//! 1.2 core schema (`true`, `12`, `1.5`, `null`, `~`; quoted scalars are
//! always strings).
//!
//! The tree is bounded so that a small hostile file cannot exhaust memory or
//! the stack of every later pass over it: at most [`MAX_DEPTH`] levels of
//! lists and mappings, and at most [`MAX_NODES`] nodes, every `*alias`
//! counted as the copy of its anchored node it becomes (eight levels of
//! `&a [*b, *b, ...]` fit in 524 bytes and would expand to 10^8 nodes), and
//! the copy kept for each `&anchor` counted too.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr::Scalar;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use super::Pos;

/// The deepest nesting of lists and mappings in a flow file: 30 levels of
/// nested steps. A real flow needs a few; every later pass over the tree and
/// the model (building, expressions, running) recurses, and stays within a
/// 2 MiB stack at this depth.
pub const MAX_DEPTH: usize = 64;

/// The most nodes a flow file's tree may hold, aliases expanded. Far above
/// any real flow (a step is a handful of nodes); it bounds what a few bytes
/// of aliases can make the host allocate.
pub const MAX_NODES: usize = 1_000_000;

/// A node with its position.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) pos: Pos,
    pub(crate) kind: Kind,
}

/// What a node holds.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order: key, key position, value.
    Map(Vec<Entry>),
}

/// One entry of a mapping.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_pos: Pos,
    pub(crate) value: Node,
}

impl Node {
    /// The entries of this node when it is a mapping whose keys are all in
    /// `allowed`; each problem goes to `err` with its position, and `None`
    /// when it is not a mapping. `what` names the node in messages.
    pub(crate) fn fields(
        &self,
        what: &str,
        allowed: &[&str],
        err: &mut dyn FnMut(Pos, String),
    ) -> Option<&[Entry]> {
        let Kind::Map(entries) = &self.kind else {
            err(
                self.pos,
                format!("{what} must be a mapping, found {}", self.describe()),
            );
            return None;
        };
        for e in entries {
            if !allowed.contains(&e.key.as_str()) {
                err(
                    e.key_pos,
                    format!(
                        "unknown field `{}` in {what}; allowed fields: {}",
                        e.key,
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(entries)
    }

    /// What the node is, in words, for "found ..." in messages. A YAML
    /// node, not a JSON value: a flow author wrote a mapping.
    pub(crate) fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// The node as JSON, positions dropped.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// The node a JSON pointer (`/a/0/b`) leads to, or the deepest one on
    /// its way.
    pub(crate) fn at_pointer(&self, pointer: &str) -> &Node {
        let mut node = self;
        for segment in pointer.split('/').skip(1) {
            let segment = segment.replace("~1", "/").replace("~0", "~");
            let next = match &node.kind {
                Kind::Map(entries) => entries.iter().find(|e| e.key == segment).map(|e| &e.value),
                Kind::Seq(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// The scalar as text (for durations, sizes and names), or `None` for a
    /// list or mapping.
    pub(crate) fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Null => Some("null".into()),
            Kind::Bool(b) => Some(b.to_string()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Str(s) => Some(s.clone()),
            Kind::Seq(_) | Kind::Map(_) => None,
        }
    }
}

/// A syntax error: where, and what.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

/// Nodes allocated so far, bounded by [`MAX_NODES`].
#[derive(Default)]
struct Budget {
    /// In the tree, every alias counted as the nodes it copies.
    tree: usize,
    /// In the copies kept for anchors.
    kept: usize,
}

impl Budget {
    fn add(&mut self, tree: usize, kept: usize, pos: Pos, alias: bool) -> Result<(), SyntaxError> {
        self.tree = self.tree.saturating_add(tree);
        self.kept = self.kept.saturating_add(kept);
        if self.tree.saturating_add(self.kept) > MAX_NODES {
            return Err(too_many_nodes(pos, alias));
        }
        Ok(())
    }
}

/// A list or mapping being built.
struct Frame {
    pos: Pos,
    anchor: usize,
    /// `Budget::tree` when it started, to size it for its anchor.
    nodes_before: usize,
    /// The height of its deepest child.
    height: usize,
    body: Body,
}

enum Body {
    Seq(Vec<Node>),
    Map {
        entries: Vec<Entry>,
        key: Option<(String, Pos)>,
    },
}

/// An anchored node, with what an alias to it adds to the tree.
struct Anchored {
    node: Node,
    /// Its nodes, itself included.
    nodes: usize,
    /// Its levels of lists and mappings (0 for a scalar).
    height: usize,
}

fn too_deep(pos: Pos) -> SyntaxError {
    SyntaxError {
        pos,
        message: format!(
            "lists and mappings are nested deeper than {MAX_DEPTH} levels, the limit for a flow file"
        ),
    }
}

fn too_many_nodes(pos: Pos, alias: bool) -> SyntaxError {
    let what = if alias {
        "this YAML alias expands the flow file"
    } else {
        "the flow file grows"
    };
    SyntaxError {
        pos,
        message: format!(
            "{what} past {MAX_NODES} nodes, the limit for a flow file (aliases count as the nodes they copy)"
        ),
    }
}

/// Parses the first document of `text`. Duplicate keys and non-scalar keys
/// are reported as errors alongside the tree; nesting past [`MAX_DEPTH`] or
/// a tree past [`MAX_NODES`] stops the parse.
pub(crate) fn parse(text: &str) -> Result<(Node, Vec<SyntaxError>), SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Anchored> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut problems = Vec::new();
    let mut documents = 0;
    let mut budget = Budget::default();

    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        let pos = pos_of(&span);
        // A finished node, its anchor, and its size and height for the anchor.
        let (node, anchor, size, height) = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        pos,
                        message: "a flow file holds one YAML document, found more".into(),
                    });
                }
                continue;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => continue,
            Event::SequenceStart(anchor, _) => {
                open(&mut stack, &mut budget, pos, anchor, Body::Seq(Vec::new()))?;
                continue;
            }
            Event::MappingStart(anchor, _) => {
                let body = Body::Map {
                    entries: Vec::new(),
                    key: None,
                };
                open(&mut stack, &mut budget, pos, anchor, body)?;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = stack.pop().expect("the parser balances collections");
                let kind = match frame.body {
                    Body::Seq(items) => Kind::Seq(items),
                    Body::Map { entries, .. } => Kind::Map(entries),
                };
                let node = Node {
                    pos: frame.pos,
                    kind,
                };
                (
                    node,
                    frame.anchor,
                    budget.tree - frame.nodes_before,
                    frame.height + 1,
                )
            }
            Event::Alias(id) => {
                let Some(target) = anchors.get(&id) else {
                    return Err(SyntaxError {
                        pos,
                        message: "YAML alias to an unknown anchor".into(),
                    });
                };
                if stack.len() + target.height > MAX_DEPTH {
                    return Err(too_deep(pos));
                }
                budget.add(target.nodes, 0, pos, true)?;
                let node = Node {
                    pos,
                    kind: target.node.kind.clone(),
                };
                (node, 0, target.nodes, target.height)
            }
            Event::Scalar(value, style, anchor, tag) => {
                // A mapping key is kept as its text.
                if let Some(Frame {
                    body:
                        Body::Map {
                            key: key @ None,
                            entries,
                        },
                    ..
                }) = stack.last_mut()
                {
                    let text = value.into_owned();
                    if let Some(first) = entries.iter().find(|e| e.key == text) {
                        problems.push(SyntaxError {
                            pos,
                            message: format!(
                                "duplicate key `{text}` (first at line {}, column {})",
                                first.key_pos.line, first.key_pos.column
                            ),
                        });
                    }
                    *key = Some((text, pos));
                    continue;
                }
                budget.add(1, 0, pos, false)?;
                (scalar(value, style, tag.as_ref(), pos)?, anchor, 1, 0)
            }
        };
        if anchor > 0 {
            // The copy kept for aliases counts too: nested anchors around a
            // long list would otherwise each keep a copy of it.
            budget.add(0, size, node.pos, false)?;
            let node = node.clone();
            anchors.insert(
                anchor,
                Anchored {
                    node,
                    nodes: size,
                    height,
                },
            );
        }
        let Some(parent) = stack.last_mut() else {
            root = Some(node);
            continue;
        };
        parent.height = parent.height.max(height);
        match &mut parent.body {
            Body::Seq(items) => items.push(node),
            Body::Map { entries, key } => match key.take() {
                Some((key, key_pos)) => entries.push(Entry {
                    key,
                    key_pos,
                    value: node,
                }),
                None => {
                    // A list or mapping used as a key: keep parsing, report it.
                    problems.push(SyntaxError {
                        pos: node.pos,
                        message: "mapping keys must be plain scalars".into(),
                    });
                    *key = Some(("?".into(), node.pos));
                }
            },
        }
    }
    match root {
        Some(root) => Ok((root, problems)),
        None => Err(SyntaxError {
            pos: Pos { line: 1, column: 1 },
            message: "the flow file is empty".into(),
        }),
    }
}

/// Starts a list or mapping at `pos`, within the depth and node limits.
fn open(
    stack: &mut Vec<Frame>,
    budget: &mut Budget,
    pos: Pos,
    anchor: usize,
    body: Body,
) -> Result<(), SyntaxError> {
    if stack.len() >= MAX_DEPTH {
        return Err(too_deep(pos));
    }
    let nodes_before = budget.tree;
    budget.add(1, 0, pos, false)?;
    stack.push(Frame {
        pos,
        anchor,
        nodes_before,
        height: 0,
        body,
    });
    Ok(())
}

fn scalar(
    value: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Cow<'_, Tag>>,
    pos: Pos,
) -> Result<Node, SyntaxError> {
    let text = value.to_string();
    let Some(resolved) = Scalar::parse_from_cow_and_metadata(value, style, tag) else {
        return Err(SyntaxError {
            pos,
            message: format!("`{text}` does not match its YAML tag"),
        });
    };
    let kind = match resolved {
        Scalar::Null => Kind::Null,
        Scalar::Boolean(b) => Kind::Bool(b),
        Scalar::Integer(i) => Kind::Int(i),
        Scalar::FloatingPoint(f) => Kind::Float(f.into_inner()),
        Scalar::String(s) => Kind::Str(s.into_owned()),
    };
    Ok(Node { pos, kind })
}
