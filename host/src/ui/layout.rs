//! The page shell (head, navigation, main) and the small pieces every page
//! uses: status badges (word and icon, never colour alone), times, sizes.

use maud::{DOCTYPE, Markup, html};

use crate::executor::{RunStatus, StepStatus};

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Overview,
    Runs,
    Flows,
    Plugins,
}

/// A whole page: `title` in the tab, `body` in `main`.
pub(super) fn page(title: &str, nav: Nav, body: Markup) -> Markup {
    let link = |to: Nav, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(to == nav).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · flowhost" }
                link rel="stylesheet" href=(super::assets::STYLE);
                link rel="icon" href="data:,";
                script type="module" src=(super::assets::SCRIPT) {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "flowhost" }
                    nav aria-label="Sections" {
                        (link(Nav::Overview, "/ui/", "Overview"))
                        (link(Nav::Runs, "/ui/runs", "Runs"))
                        (link(Nav::Flows, "/ui/flows", "Flows"))
                        (link(Nav::Plugins, "/ui/plugins", "Plugins"))
                    }
                    form.logout method="post" action="/ui/logout" {
                        button type="submit" { "Sign out" }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// The icon that goes with a status word (the word is always shown too).
fn icon(word: &str) -> &'static str {
    match word {
        "succeeded" => "✓",
        "failed" => "✗",
        "running" => "▶",
        "queued" => "◷",
        "cancelled" => "⊘",
        "recovered" => "↺",
        "continued" => "⤼",
        "skipped" => "↷",
        "waiting" => "⏸",
        _ => "•",
    }
}

/// A status badge: icon and word, coloured by a class.
pub(super) fn badge(word: &str) -> Markup {
    html! {
        span class={ "badge s-" (word) } {
            span aria-hidden="true" { (icon(word)) } " " (word)
        }
    }
}

pub(super) fn run_badge(status: RunStatus) -> Markup {
    badge(status.as_str())
}

/// The word of a step status, as the record writes it.
pub(super) fn step_word(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "succeeded",
        StepStatus::Failed => "failed",
        StepStatus::Recovered => "recovered",
        StepStatus::Continued => "continued",
        StepStatus::Skipped => "skipped",
        _ => "cancelled",
    }
}

/// Milliseconds, readable: `850 ms`, `2.4 s`, `3 min 5 s`.
pub(super) fn ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        let s = (ms / 1000.0) as u64;
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// Bytes, readable.
pub(super) fn bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

/// A short form of a content hash, with the whole one as its title.
pub(super) fn hash(h: &str) -> Markup {
    html! { code title=(h) { (h.get(..12).unwrap_or(h)) } }
}

/// A notice: the page could not show something, and why.
pub(super) fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}
