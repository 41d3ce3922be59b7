//! How deeply an expression may nest, and compiling it within a known stack.
//!
//! Parsing, analysing, evaluating and dropping an expression all recurse
//! over it, and the CEL parser needs a lot of stack per level of brackets.
//! So the source is measured before it is parsed (brackets, and operators
//! chained in a row, each count a level), a deep one is parsed on a thread
//! with a stack sized for the limit, and the parsed tree is measured again
//! (macros such as `map` add levels) so that evaluating it fits the 2 MiB
//! stack of any runtime thread.

use cel::common::ast::{EntryExpr, Expr as Ast, IdedExpr};

/// The deepest an expression may nest: levels of brackets plus operators,
/// `.` and calls chained in a row, and levels of its parsed tree.
pub const MAX_EXPR_DEPTH: usize = 32;

/// Expressions this shallow are parsed on the caller's stack.
const INLINE_DEPTH: usize = 8;
const INLINE_BRACKETS: usize = 1;
/// The parser's stack for a deeper one: ample for [`MAX_EXPR_DEPTH`] levels
/// even in an unoptimised build (only the pages used are committed).
const PARSER_STACK: usize = 64 << 20;

/// Too deep: the message for an `ExprError`.
pub(crate) fn too_deep() -> String {
    format!("the expression nests deeper than {MAX_EXPR_DEPTH} levels, the limit")
}

/// How deep the tree that is evaluated may be, metering calls included: the
/// interpreter recurses once a level, and this many levels fit a 2 MiB
/// thread stack (a tokio worker's) even in an unoptimised build.
const MAX_EVAL_DEPTH: usize = MAX_EXPR_DEPTH + 8;

/// Refuses a metered tree (`rewrite.rs`) too deep to evaluate on a worker's
/// stack: a chain of calls that each build a value nests twice as deep once
/// every result is counted.
/// Returns the tree's levels.
pub(crate) fn check_eval_depth(metered: &IdedExpr) -> Result<usize, String> {
    let depth = tree_depth(metered);
    if depth > MAX_EVAL_DEPTH {
        return Err(format!(
            "the expression nests too deeply to evaluate safely ({depth} levels once its operations are metered, past {MAX_EVAL_DEPTH}): split it into smaller expressions"
        ));
    }
    Ok(depth)
}

/// The expression's text for an error message: a long one is cut short, so
/// that a huge expression does not make a huge message.
pub(crate) fn excerpt(source: &str) -> String {
    const KEEP: usize = 100;
    match source.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{}... ({} bytes)", &source[..cut], source.len()),
        None => source.to_string(),
    }
}

/// How the source nests, from its characters alone.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    /// The most levels at any point: each open bracket counts two (it is
    /// chained like an operator, then nests), each operator, `.` or `in`
    /// since the last `,` of its bracket one.
    depth: usize,
    /// The most brackets open at any point.
    brackets: usize,
}

fn shape(source: &str) -> Shape {
    let chars: Vec<char> = source.chars().collect();
    // Operators chained in each open bracket (the outermost first).
    let mut links: Vec<usize> = vec![0];
    let mut depth = 1;
    let mut out = Shape {
        depth: 1,
        brackets: 0,
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut next = i + 1;
        match c {
            '"' | '\'' => next = skip_string(&chars, i),
            '(' | '[' | '{' => {
                // A call or an index chains like an operator (`a[0][0]`),
                // then opens a level.
                *links.last_mut().expect("the outermost level stays") += 1;
                links.push(0);
                depth += 2;
            }
            ')' | ']' | '}' if links.len() > 1 => {
                depth -= 1 + links.pop().unwrap_or(0);
            }
            ',' => {
                let level = links.last_mut().expect("the outermost level stays");
                depth -= *level;
                *level = 0;
            }
            _ if is_operator(c) => {
                while next < chars.len() && is_operator(chars[next]) {
                    next += 1;
                }
                *links.last_mut().expect("the outermost level stays") += 1;
                depth += 1;
            }
            _ if c.is_alphanumeric() || c == '_' => {
                while next < chars.len() && (chars[next].is_alphanumeric() || chars[next] == '_') {
                    next += 1;
                }
                let word: String = chars[i..next].iter().collect();
                // A string prefix (`r'...'`, `b"..."`).
                if next < chars.len()
                    && matches!(chars[next], '"' | '\'')
                    && matches!(word.to_ascii_lowercase().as_str(), "r" | "b" | "rb" | "br")
                {
                    next = skip_string(&chars, next);
                } else if word == "in" {
                    *links.last_mut().expect("the outermost level stays") += 1;
                    depth += 1;
                }
            }
            _ => {}
        }
        out.depth = out.depth.max(depth);
        out.brackets = out.brackets.max(links.len() - 1);
        i = next;
    }
    out
}

fn is_operator(c: char) -> bool {
    "+-*/%<>=!&|?.".contains(c)
}

/// The index just past the string literal opening at `start` (single, double
/// or triple quotes; a backslash escapes the next character).
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    while i < chars.len() {
        if chars[i] == '\\' {
            i += 2;
            continue;
        }
        if chars[i] == quote
            && (!triple || (chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote)))
        {
            return i + if triple { 3 } else { 1 };
        }
        i += 1;
    }
    chars.len()
}

/// The levels of a parsed expression, counted without recursing.
fn tree_depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut todo = vec![(root, 1)];
    while let Some((e, depth)) = todo.pop() {
        deepest = deepest.max(depth);
        match &e.expr {
            Ast::Select(s) => todo.push((&s.operand, depth + 1)),
            Ast::Call(c) => {
                if let Some(t) = &c.target {
                    todo.push((t, depth + 1));
                }
                c.args.iter().for_each(|a| todo.push((a, depth + 1)));
            }
            Ast::Comprehension(c) => {
                for child in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    todo.push((child, depth + 1));
                }
            }
            Ast::List(l) => l.elements.iter().for_each(|x| todo.push((x, depth + 1))),
            Ast::Map(m) => {
                for entry in &m.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(m) => {
                            todo.push((&m.key, depth + 1));
                            todo.push((&m.value, depth + 1));
                        }
                        EntryExpr::StructField(f) => todo.push((&f.value, depth + 1)),
                    }
                }
            }
            Ast::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        todo.push((&f.value, depth + 1));
                    }
                }
            }
            Ast::Ident(_) | Ast::Literal(_) | Ast::Unspecified => {}
        }
    }
    deepest
}

/// Compiles `source` with `compile` (which gives the program and its tree's
/// root), refusing it past [`MAX_EXPR_DEPTH`]: a deep one on a thread of its
/// own, so that neither parsing nor dropping a refused tree can exhaust the
/// caller's stack.
pub(crate) fn compile_bounded<P: Send>(
    source: &str,
    compile: impl Fn(&str) -> Result<P, String> + Sync,
    root: impl Fn(&P) -> &IdedExpr + Sync,
) -> Result<P, String> {
    let shape = shape(source);
    if shape.depth > MAX_EXPR_DEPTH {
        return Err(too_deep());
    }
    let checked = || {
        let program = compile(source)?;
        if tree_depth(root(&program)) > MAX_EXPR_DEPTH {
            return Err(too_deep());
        }
        Ok(program)
    };
    if shape.depth <= INLINE_DEPTH && shape.brackets <= INLINE_BRACKETS {
        return checked();
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("flowhost-expr-parser".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(s, checked)
            .map_err(|e| format!("cannot start the expression parser: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the expression parser failed".into()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(s: &str) -> usize {
        shape(s).depth
    }

    #[test]
    fn the_shape_counts_brackets_and_chained_operators() {
        assert_eq!(depth("input"), 1);
        assert_eq!(depth("steps.a.output.ok"), 4);
        assert_eq!(depth("a == 1 && b"), 3);
        assert_eq!(depth("((1))"), 5);
        assert_eq!(depth("[a.b, c.d, e.f]"), 4, "`,` ends a chain");
        assert_eq!(depth("x in [1]"), 4);
        assert_eq!(depth("a[0][0][0]"), 5, "indexes chain");
        assert_eq!(depth("'((((' + \"[[\" + '''a'b''' + r'\\'"), 4);
        assert_eq!(shape("f(g(h()))").brackets, 3);
        assert_eq!(
            depth(")))"),
            1,
            "unbalanced closers are the parser's to report"
        );
    }

    #[test]
    fn the_tree_is_measured_without_recursing() {
        let depth = |s: &str| tree_depth(cel::Program::compile(s).unwrap().expression());
        assert_eq!(depth("1"), 1);
        assert_eq!(depth("[[1]]"), 3);
        assert!(depth("[1].map(x, [x])") > 3, "a macro adds levels");
    }
}
