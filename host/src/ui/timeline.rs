//! The run's timeline (a Gantt chart): every step, branch, item and attempt
//! nested by path, the critical path marked, retries with their backoff
//! waits, fallbacks and breaker refusals marked. A `for_each` with many
//! items is aggregated: counts per status, its failed and slowest items
//! drawn, the rest summarised, so a 1,000-item run stays a short page.

use std::collections::{BTreeMap, HashMap, HashSet};

use maud::{Markup, html};

use super::layout;
use crate::executor::{StepRecord, StepStatus, StepType};

/// Items of one `for_each` drawn in full up to this many.
const ITEMS_DRAWN: usize = 20;
/// Of a larger `for_each`: its slowest items drawn.
const SLOWEST: usize = 5;
/// Of a larger `for_each`: its failed items drawn, at most.
const FAILED: usize = 10;

/// A step as the timeline draws it.
pub(super) struct Row<'a> {
    pub(super) step: &'a StepRecord,
    pub(super) depth: usize,
    pub(super) critical: bool,
    /// A live run's step not finished: `waiting` for a retry (its journal
    /// says), or `running` (being called now).
    pub(super) live: Option<&'static str>,
}

/// What the timeline draws: rows, and summaries of aggregated items.
pub(super) enum Line<'a> {
    Step(Row<'a>),
    /// `for_each` items not drawn: (depth, how many, counts per status).
    Items(usize, usize, BTreeMap<&'static str, usize>),
}

/// The parent path of `path` among `known` paths, if any: the longest
/// proper prefix ending before a `.` or `[`.
fn parent<'p>(path: &'p str, known: &HashSet<&str>) -> Option<&'p str> {
    let cuts = path
        .char_indices()
        .filter(|(_, c)| *c == '.' || *c == '[')
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    cuts.into_iter()
        .rev()
        .map(|i| &path[..i])
        .find(|p| known.contains(p))
}

/// The item index of `path` under the `for_each` at `each`: `each[7].x` is 7.
fn item_of(path: &str, each: &str) -> Option<usize> {
    let rest = path.strip_prefix(each)?.strip_prefix('[')?;
    rest[..rest.find(']')?].parse().ok()
}

fn end(s: &StepRecord) -> f64 {
    s.start_ms + s.duration_ms
}

/// The critical path: from the run's end, the plugin step that ended last,
/// then the one that ended last before it started, and so on; with their
/// enclosing steps.
fn critical(steps: &[StepRecord], known: &HashSet<&str>) -> HashSet<String> {
    const SLACK: f64 = 0.5;
    let leaves: Vec<&StepRecord> = steps
        .iter()
        .filter(|s| s.kind == StepType::Plugin)
        .collect();
    let mut marked = HashSet::new();
    let mut until = f64::INFINITY;
    while let Some(last) = leaves
        .iter()
        .filter(|s| end(s) <= until + SLACK && !marked.contains(&s.path))
        .max_by(|a, b| end(a).total_cmp(&end(b)))
    {
        marked.insert(last.path.clone());
        if last.start_ms >= until {
            break;
        }
        until = last.start_ms;
    }
    let mut with_parents = marked.clone();
    for path in &marked {
        let mut p = path.as_str();
        while let Some(up) = parent(p, known) {
            with_parents.insert(up.to_string());
            p = up;
        }
    }
    with_parents
}

/// The timeline's lines, nested in order, items aggregated.
pub(super) fn lines<'a>(
    steps: &'a [StepRecord],
    live: &HashMap<String, &'static str>,
) -> Vec<Line<'a>> {
    let known: HashSet<&str> = steps.iter().map(|s| s.path.as_str()).collect();
    let crit = critical(steps, &known);
    let mut children: HashMap<Option<&str>, Vec<&StepRecord>> = HashMap::new();
    for s in steps {
        children.entry(parent(&s.path, &known)).or_default().push(s);
    }
    let mut out = Vec::new();
    let ctx = Walk {
        children: &children,
        crit: &crit,
        live,
    };
    ctx.walk(None, 0, &mut out);
    out
}

struct Walk<'w, 'a> {
    children: &'w HashMap<Option<&'a str>, Vec<&'a StepRecord>>,
    crit: &'w HashSet<String>,
    live: &'w HashMap<String, &'static str>,
}

impl<'a> Walk<'_, 'a> {
    fn row(&self, s: &'a StepRecord, depth: usize, out: &mut Vec<Line<'a>>) {
        out.push(Line::Step(Row {
            step: s,
            depth,
            critical: self.crit.contains(&s.path),
            live: self.live.get(&s.path).copied(),
        }));
        self.walk(Some(&s.path), depth + 1, out);
    }

    fn walk(&self, under: Option<&'a str>, depth: usize, out: &mut Vec<Line<'a>>) {
        let Some(kids) = self.children.get(&under) else {
            return;
        };
        let each = under.filter(|p| kids.iter().any(|k| item_of(&k.path, p).is_some()));
        let Some(each) = each else {
            for s in kids {
                self.row(s, depth, out);
            }
            return;
        };
        // A for_each: its steps grouped by item.
        let mut items: BTreeMap<usize, Vec<&'a StepRecord>> = BTreeMap::new();
        for s in kids {
            items
                .entry(item_of(&s.path, each).unwrap_or(0))
                .or_default()
                .push(s);
        }
        if items.len() <= ITEMS_DRAWN {
            for steps in items.values() {
                for s in steps {
                    self.row(s, depth, out);
                }
            }
            return;
        }
        let worst = |steps: &[&StepRecord]| {
            steps
                .iter()
                .map(|s| s.status)
                .find(|s| *s != StepStatus::Succeeded)
                .unwrap_or(StepStatus::Succeeded)
        };
        let span = |steps: &[&StepRecord]| {
            let start = steps
                .iter()
                .map(|s| s.start_ms)
                .fold(f64::INFINITY, f64::min);
            steps.iter().map(|s| end(s)).fold(0.0, f64::max) - start
        };
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for steps in items.values() {
            *counts.entry(layout::step_word(worst(steps))).or_default() += 1;
        }
        let mut drawn: Vec<usize> = items
            .iter()
            .filter(|(_, s)| worst(s) == StepStatus::Failed)
            .map(|(i, _)| *i)
            .take(FAILED)
            .collect();
        let mut by_time: Vec<(usize, f64)> = items.iter().map(|(i, s)| (*i, span(s))).collect();
        by_time.sort_by(|a, b| b.1.total_cmp(&a.1));
        drawn.extend(by_time.iter().take(SLOWEST).map(|(i, _)| *i));
        drawn.sort_unstable();
        drawn.dedup();
        out.push(Line::Items(depth, items.len() - drawn.len(), counts));
        for i in drawn {
            for s in &items[&i] {
                self.row(s, depth, out);
            }
        }
    }
}

/// Percent of `total` (the chart's width), for a bar's position.
fn pct(ms: f64, total: f64) -> String {
    format!("{:.3}%", (ms / total * 100.0).clamp(0.0, 100.0))
}

/// The chart. `total`: the run's length in ms; `selected`: the step whose
/// detail shows first.
pub(super) fn render(lines: &[Line<'_>], total: f64, selected: Option<&str>) -> Markup {
    let total = total.max(1.0);
    html! {
        div.timeline data-testid="timeline" role="list" aria-label="Timeline of the run's steps" {
            div.tl-scale aria-hidden="true" {
                span { "0" } span { (layout::ms(total / 2.0)) } span { (layout::ms(total)) }
            }
            @for line in lines {
                @match line {
                    Line::Items(depth, hidden, counts) => {
                        div.tl-items role="listitem" style={ "--depth:" (depth) } data-testid="items-summary" {
                            span.sr { "Items: " }
                            @for (word, n) in counts { (layout::badge(word)) " " (crate::human::thousands(*n as u64)) " " }
                            " · the failed and slowest are drawn; "
                            (crate::human::thousands(*hidden as u64)) " more items not drawn"
                        }
                    }
                    Line::Step(row) => (step_row(row, total, selected)),
                }
            }
        }
    }
}

fn step_row(row: &Row<'_>, total: f64, selected: Option<&str>) -> Markup {
    let s = row.step;
    let word = row.live.unwrap_or_else(|| layout::step_word(s.status));
    let is_selected = selected == Some(s.path.as_str());
    html! {
        div.tl-row.critical[row.critical] role="listitem" style={ "--depth:" (row.depth) }
            data-step-path=(s.path) data-status=(word) {
            button.tl-label type="button" data-select=(s.path) aria-pressed=(is_selected) {
                span.path { (s.path) }
                @if s.kind != StepType::Plugin { span.kind { " " (s.kind.as_str()) } }
                " " (layout::badge(word))
                @if row.critical { span.crit title="on the critical path" { " ◆" span.sr { " critical path" } } }
                @if s.breaker_open { span.mark { " ◎ breaker open" } }
                @if let Some(f) = &s.fallback { span.mark { " ↺ fallback " (f.plugin) } }
                @if s.attempts.len() > 1 { span.mark { " " (s.attempts.len()) " attempts" } }
            }
            div.tl-track aria-hidden="true" {
                @if s.attempts.is_empty() {
                    span class={ "bar b-" (word) } style={ "left:" (pct(s.start_ms, total)) ";width:" (pct(s.duration_ms, total)) } {}
                } @else {
                    @for (i, a) in s.attempts.iter().enumerate() {
                        @if i > 0 {
                            @let prev = &s.attempts[i - 1];
                            @let gap = prev.start_ms + prev.duration_ms;
                            span.wait style={ "left:" (pct(gap, total)) ";width:" (pct(a.start_ms - gap, total)) } title="backoff wait" {}
                        }
                        @let aw = if a.error.is_some() { "failed" } else { word };
                        span class={ "bar b-" (aw) } style={ "left:" (pct(a.start_ms, total)) ";width:" (pct(a.duration_ms, total)) }
                            title={ "attempt " (a.attempt) ": " (layout::ms(a.duration_ms)) } {}
                    }
                    @if let Some(f) = &s.fallback {
                        span.bar.b-recovered style={ "left:" (pct(f.attempt.start_ms, total)) ";width:" (pct(f.attempt.duration_ms, total)) } title="fallback" {}
                    }
                }
            }
            span.tl-time { (layout::ms(s.duration_ms)) }
        }
    }
}
