//! Scalar field readers: strings, booleans, numbers, durations, sizes, lists
//! and plugin names, each reporting a wrong type or value at its position.

use std::time::Duration;

use super::Cx;
use crate::flow::yaml::{Kind, Node};

impl Cx<'_> {
    pub(super) fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.kind {
            Kind::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(node, field, "a string");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.wrong_type(node, field, "a boolean");
                None
            }
        }
    }

    /// An integer of at least `min`.
    pub(super) fn integer(&mut self, node: &Node, field: &str, min: i64) -> Option<u64> {
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

    pub(super) fn number(&mut self, node: &Node, field: &str) -> Option<f64> {
        match node.kind {
            Kind::Int(i) => Some(i as f64),
            Kind::Float(f) => Some(f),
            _ => {
                self.wrong_type(node, field, "a number");
                None
            }
        }
    }

    pub(super) fn duration(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let Some(text) = node.scalar_text() else {
            self.wrong_type(node, field, "a duration such as 500ms, 2s or 1m");
            return None;
        };
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

    /// A duration that must not be zero (deadlines).
    pub(super) fn timeout(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let d = self.duration(node, field)?;
        if d.is_zero() {
            self.err(node.pos, format!("`{field}` must be greater than zero"));
            return None;
        }
        Some(d)
    }

    pub(super) fn size(&mut self, node: &Node, field: &str) -> Option<u64> {
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

    pub(super) fn list<'n>(&mut self, node: &'n Node, field: &str) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            _ => {
                self.wrong_type(node, field, "a list");
                None
            }
        }
    }

    pub(super) fn strings(&mut self, node: &Node, field: &str) -> Vec<String> {
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

    pub(super) fn plugin_name(&mut self, node: &Node) -> Option<String> {
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
}
