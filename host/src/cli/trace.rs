//! The `--trace` timeline: every step on one line, a bar for when it ran,
//! and `*` on the critical path (the steps that decided the run's wall time:
//! of concurrent branches or items, the one that ended last, or the failure
//! that cancelled the others).

use std::collections::HashSet;
use std::fmt::Write;

use flowhost::executor::{RunRecord, StepRecord, StepStatus, StepType};

const WIDTH: usize = 40;

pub(crate) fn timeline(record: &RunRecord) -> String {
    let mut out = format!(
        "run {} of flow {}: {} in {:.1} ms\n",
        record.run_id, record.flow, record.status, record.duration_ms
    );
    let total = record.duration_ms.max(1e-3);
    let critical = critical_path(&record.steps);
    let path_width = record
        .steps
        .iter()
        .map(|s| s.path.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let what_width = record
        .steps
        .iter()
        .map(|s| s.plugin.as_deref().unwrap_or(s.kind.as_str()).len())
        .max()
        .unwrap_or(0)
        .max(8);
    for step in &record.steps {
        let from = ((step.start_ms / total) * WIDTH as f64) as usize;
        let len = (((step.duration_ms / total) * WIDTH as f64).ceil() as usize).max(1);
        let from = from.min(WIDTH - 1);
        let len = len.min(WIDTH - from);
        let bar: String = (0..WIDTH)
            .map(|i| {
                if i >= from && i < from + len {
                    '#'
                } else {
                    ' '
                }
            })
            .collect();
        let mark = if critical.contains(step.path.as_str()) {
            '*'
        } else {
            ' '
        };
        let what = step.plugin.as_deref().unwrap_or(step.kind.as_str());
        let attempts = match step.attempts.len() {
            0 => String::new(),
            1 => "1 attempt".into(),
            n => format!("{n} attempts"),
        };
        let _ = writeln!(
            out,
            "{mark} {:<path_width$} {:<what_width$} |{bar}| {:>9.1} ms  {:<10} {attempts}",
            step.path,
            what,
            step.duration_ms,
            format!("{:?}", step.status).to_lowercase()
        );
        if let Some(e) = &step.error {
            let _ = writeln!(out, "      {}: {}", e.kind, e.message);
        }
    }
    out.push_str("* critical path\n");
    out
}

/// The step a path belongs to: `a.b` → `a`, `a[3].b` → `a`; `None` at the top.
fn parent(path: &str) -> Option<&str> {
    let (head, _) = path.rsplit_once('.')?;
    Some(match head.rfind('[') {
        Some(i) if head.ends_with(']') => &head[..i],
        _ => head,
    })
}

fn critical_path(steps: &[StepRecord]) -> HashSet<&str> {
    let mut marked = HashSet::new();
    let roots: Vec<&StepRecord> = steps.iter().filter(|s| parent(&s.path).is_none()).collect();
    for root in roots {
        mark(root, steps, &mut marked);
    }
    marked
}

fn mark<'a>(step: &'a StepRecord, all: &'a [StepRecord], marked: &mut HashSet<&'a str>) {
    marked.insert(&step.path);
    let children: Vec<&StepRecord> = all
        .iter()
        .filter(|s| parent(&s.path) == Some(step.path.as_str()))
        .collect();
    match step.kind {
        // Concurrent children: only the group that decided when the step ended.
        StepType::Parallel | StepType::ForEach => {
            let group = |s: &StepRecord| -> String {
                let rest = &s.path[step.path.len()..];
                match rest.find(']') {
                    Some(i) if rest.starts_with('[') => rest[..=i].to_string(),
                    _ => rest.to_string(),
                }
            };
            if let Some(decider) = decider(&children) {
                let g = group(decider);
                for c in children.iter().filter(|c| group(c) == g) {
                    mark(c, all, marked);
                }
            }
        }
        _ => {
            for c in children {
                mark(c, all, marked);
            }
        }
    }
}

/// The concurrent child that decided when its step ended: the one that
/// finished last, or, when a failure cut the others short (they are
/// `cancelled`), the failure that did it, which is the first to end.
fn decider<'a>(children: &[&'a StepRecord]) -> Option<&'a StepRecord> {
    let end = |s: &StepRecord| s.start_ms + s.duration_ms;
    let cut_short = children.iter().any(|c| c.status == StepStatus::Cancelled);
    let failure = children
        .iter()
        .filter(|c| c.status == StepStatus::Failed)
        .min_by(|a, b| end(a).total_cmp(&end(b)));
    match failure {
        Some(failed) if cut_short => Some(failed),
        _ => children.iter().max_by(|a, b| end(a).total_cmp(&end(b))),
    }
    .copied()
}

#[cfg(test)]
mod tests {
    use super::parent;

    #[test]
    fn parents() {
        assert_eq!(parent("a"), None);
        assert_eq!(parent("a.b"), Some("a"));
        assert_eq!(parent("lines[3].price"), Some("lines"));
        assert_eq!(parent("x.lines[3].price"), Some("x.lines"));
    }
}
