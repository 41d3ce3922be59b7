//! Text from a client or a guest, made safe to log: control characters
//! escaped, so no topic, path or guest line can move the terminal's cursor,
//! change its colours, or start a forged log line.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character (C0, DEL and C1) written as
/// `\u{..}`; borrowed when there is none.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether `text` holds a control character (C0, DEL or C1).
pub(crate) fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(printable("order.créé 🚀"), Cow::Borrowed(_)));
        assert_eq!(
            printable("\u{1b}[2J\n2026-01-01T00:00:00Z INFO forged\r\t\u{7f}\u{9b}x\0"),
            "\\u{1b}[2J\\u{a}2026-01-01T00:00:00Z INFO forged\\u{d}\\u{9}\\u{7f}\\u{9b}x\\u{0}"
        );
        assert!(has_control("a\nb") && !has_control("a b"));
    }
}
