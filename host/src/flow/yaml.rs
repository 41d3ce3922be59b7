//! A YAML (and JSON) document as a tree whose every node, mapping keys
//! included, knows its line and column.
//!
//! Built from the event stream of `saphyr-parser`, so that duplicate keys are
//! caught and nothing is silently dropped. Scalars are resolved with the YAML
//! 1.2 core schema (`true`, `12`, `1.5`, `null`, `~`; quoted scalars are
//! always strings).

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr::Scalar;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use super::Pos;

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

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<Entry>,
        key: Option<(String, Pos)>,
    },
}

/// Parses the first document of `text`. Duplicate keys and non-scalar keys
/// are reported as errors alongside the tree.
pub(crate) fn parse(text: &str) -> Result<(Node, Vec<SyntaxError>), SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut problems = Vec::new();
    let mut documents = 0;

    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        let pos = pos_of(&span);
        let (node, anchor) = match event {
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
                stack.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => (
                    Node {
                        pos,
                        kind: Kind::Seq(items),
                    },
                    anchor,
                ),
                _ => unreachable!("the parser balances sequences"),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    pos,
                    anchor,
                    entries,
                    ..
                }) => (
                    Node {
                        pos,
                        kind: Kind::Map(entries),
                    },
                    anchor,
                ),
                _ => unreachable!("the parser balances mappings"),
            },
            Event::Alias(id) => match anchors.get(&id) {
                Some(node) => (
                    Node {
                        pos,
                        kind: node.kind.clone(),
                    },
                    0,
                ),
                None => {
                    return Err(SyntaxError {
                        pos,
                        message: "YAML alias to an unknown anchor".into(),
                    });
                }
            },
            Event::Scalar(value, style, anchor, tag) => {
                // A mapping key is kept as its text.
                if let Some(Frame::Map {
                    key: key @ None,
                    entries,
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
                (scalar(value, style, tag.as_ref(), pos)?, anchor)
            }
        };
        if anchor > 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
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
