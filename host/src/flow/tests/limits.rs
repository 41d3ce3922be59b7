//! Unit tests for the bounds on a flow file: size, nesting depth, and nodes
//! with YAML aliases expanded.

use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Flow, Vec<FlowError>> {
    parse_flow(Path::new("f.yaml"), text, None)
}

/// The one error of a refused flow, as displayed.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error, the flow parsed"),
        Err(mut e) => {
            assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
            e.remove(0).to_string()
        }
    }
}

/// Runs `f` on a thread with a 2 MiB stack, the size tokio gives its
/// workers and blocking threads (where flows are parsed and run).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .expect("the thread overflowed its stack or panicked")
}

/// `levels` levels of `&aN [*aN-1, ... ten times]` in a flow's input: the
/// 8-level file is 524 bytes and would expand to 10^8 nodes.
pub(crate) fn alias_bomb(levels: usize) -> String {
    let mut text = String::from("flow: bomb\nsteps:\n  - id: a\n    plugin: a\n    input:\n");
    text.push_str("      l0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for n in 1..levels {
        let aliases = vec![format!("*a{}", n - 1); 10].join(", ");
        text.push_str(&format!("      l{n}: &a{n} [{aliases}]\n"));
    }
    text
}

/// The 1-based column of the `nth` (from 1) `needle` on line `line` of `text`.
fn column_of(text: &str, line: usize, needle: &str, nth: usize) -> usize {
    let l = text.lines().nth(line - 1).unwrap();
    let (at, _) = l.match_indices(needle).nth(nth - 1).unwrap();
    l[..at].chars().count() + 1
}

#[test]
fn an_alias_bomb_is_refused_at_the_alias_that_crosses_the_limit() {
    let bomb = alias_bomb(8);
    assert!(bomb.len() < 600, "{}", bomb.len());
    let started = std::time::Instant::now();
    let e = error(&bomb);
    // Before `l5`: the tree holds about 123,000 nodes and the anchors keep
    // as many; each `*a4` adds 111,111, so the 7th one crosses 1,000,000.
    let col = column_of(&bomb, 11, "*a4", 7);
    assert_eq!(
        e,
        format!(
            "f.yaml:11:{col}: this YAML alias expands the flow file past 1000000 nodes, the limit for a flow file (aliases count as the nodes they copy)"
        )
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // The 7-level file (the one `check` used to call ok) too.
    assert!(error(&alias_bomb(7)).starts_with(&format!("f.yaml:11:{col}:")));
}

#[test]
fn anchors_and_aliases_within_the_limit_work() {
    let flow = parse(
        "flow: f\nsteps:\n  - id: a\n    plugin: a\n    config: &c {retries: [1, 2]}\n  - id: b\n    plugin: b\n    config: *c\n",
    )
    .unwrap();
    let StepKind::Plugin(b) = &flow.steps[1].kind else {
        panic!("a plugin step")
    };
    assert_eq!(b.config, serde_json::json!({"retries": [1, 2]}));
    // Four levels of the bomb (12,000 nodes) are fine.
    parse(&alias_bomb(4)).unwrap();
}

/// The copy each anchor keeps counts: 50 nested anchors around a list of
/// 25,000 items would keep 1,250,000 nodes.
#[test]
fn nested_anchors_count_the_copies_they_keep() {
    let mut text = String::from("flow: f\nsteps:\n  - id: a\n    plugin: a\n    input: ");
    for n in 0..50 {
        text.push_str(&format!("&a{n} ["));
    }
    text.push_str(&vec!["1"; 25_000].join(","));
    text.push_str(&"]".repeat(50));
    text.push('\n');
    let e = error(&text);
    assert!(
        e.starts_with("f.yaml:5:") && e.contains("the flow file grows past 1000000 nodes"),
        "{e}"
    );
}

/// `levels` parallel steps, each inside the one before; the innermost holds
/// a plugin step whose input is `extra` levels of nested lists.
fn nested_parallels(levels: usize, extra: usize) -> String {
    let mut text = String::from("flow: deep\nsteps:\n");
    let mut indent = String::from("  ");
    for n in 0..levels {
        text.push_str(&format!("{indent}- id: p{n}\n{indent}  parallel:\n"));
        indent.push_str("    ");
    }
    let input = format!("{}\"${{input}}\"{}", "[".repeat(extra), "]".repeat(extra));
    text.push_str(&format!(
        "{indent}- id: leaf\n{indent}  plugin: a\n{indent}  input: {input}\n"
    ));
    text
}

#[test]
fn nesting_past_the_limit_is_an_error_at_the_collection_that_crosses_it() {
    // The root mapping, `steps` and the leaf step are 3 levels; each
    // parallel step adds 2.
    let levels = (MAX_DEPTH - 3) / 2 + 1;
    let text = nested_parallels(levels, 0);
    let e = error(&text);
    // The first level past the limit: the step mapping at depth 65.
    let line = 2 + 2 * levels + 1;
    let col = column_of(&text, line, "id:", 1);
    assert_eq!(
        e,
        format!(
            "f.yaml:{line}:{col}: lists and mappings are nested deeper than 64 levels, the limit for a flow file"
        )
    );
    // 800 levels (1.3 MB, which overflowed a server's reload thread) and
    // flow-style lists stop at the limit as well, on a small stack.
    let e = on_small_stack(|| error(&nested_parallels(800, 0)));
    assert!(
        e.contains(&format!(
            "f.yaml:{line}:{col}: lists and mappings are nested deeper"
        )),
        "{e}"
    );
    // The leaf's input lists start at depth 6: the 60th `[` crosses.
    let e = on_small_stack(|| error(&nested_parallels(1, 200)));
    assert!(e.starts_with("f.yaml:7:75: lists and mappings"), "{e}");
}

/// An alias that would put its anchored node past the depth limit.
#[test]
fn an_alias_cannot_nest_past_the_limit() {
    let deep = format!("{}1{}", "[".repeat(50), "]".repeat(50));
    let text = format!(
        "flow: f\nsteps:\n  - id: a\n    plugin: a\n    config: {{a: &d {deep}, b: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[*d]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}\n"
    );
    let e = error(&text);
    assert!(
        e.starts_with("f.yaml:5:") && e.contains("nested deeper than 64"),
        "{e}"
    );
}

/// A flow just under every limit is parsed, lowered, analysed and rendered
/// within a 2 MiB stack.
#[test]
fn a_flow_just_under_the_depth_limit_fits_a_small_stack() {
    on_small_stack(|| {
        // The deepest parallel nesting, its leaf's input at the limit.
        let levels = (MAX_DEPTH - 3) / 2;
        let text = nested_parallels(levels, MAX_DEPTH - 3 - 2 * levels);
        let flow = parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
        let mut step = &flow.steps[0];
        let mut depth = 1;
        while let StepKind::Parallel(p) = &step.kind {
            step = &p.branches[0];
            depth += 1;
        }
        assert_eq!(depth, levels + 1);

        // The deepest input: lists from depth 6 to the limit, rendered.
        let flow = parse(&nested_parallels(1, MAX_DEPTH - 5)).unwrap();
        let StepKind::Parallel(p) = &flow.steps[0].kind else {
            panic!("a parallel step")
        };
        let input = p.branches[0].input.as_ref().unwrap();
        let mut rendered = input.render(&serde_json::json!({"input": 1})).unwrap();
        let mut lists = 0;
        while let serde_json::Value::Array(mut items) = rendered {
            rendered = items.remove(0);
            lists += 1;
        }
        assert_eq!((lists, rendered), (MAX_DEPTH - 5, serde_json::json!(1)));

        // An input schema nested to the limit.
        let mut schema = String::from("{type: integer}");
        for _ in 0..(MAX_DEPTH - 2) / 2 {
            schema = format!("{{type: object, properties: {{a: {schema}}}}}");
        }
        let text = format!("flow: f\ninput_schema: {schema}\nsteps: [{{id: a, plugin: a}}]\n");
        parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
    });
}

#[test]
fn a_flow_file_past_the_size_limit_is_refused() {
    let mut text = String::from("flow: f\nsteps: [{id: a, plugin: a}]\n");
    text.push_str(&"#".repeat(MAX_FLOW_FILE_BYTES as usize));
    assert_eq!(
        error(&text),
        "f.yaml: the flow file is larger than 4.0 MiB, the limit for a flow file"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn load_flow_reads_no_further_than_the_size_limit() {
    let tmp = tempfile::tempdir().unwrap();
    // A regular file past the cap (sparse: it costs no disk).
    let big = tmp.path().join("big.yaml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(MAX_FLOW_FILE_BYTES + 1)
        .unwrap();
    let errors = load_flow(&big, None).await.unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}: the flow file is larger than 4.0 MiB, the limit for a flow file",
            big.display()
        )
    );
    // A device (or a FIFO) is not read at all.
    let zero = tmp.path().join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let errors = load_flow(&zero, None).await.unwrap_err();
    assert!(
        errors[0].to_string().contains("not a regular file"),
        "{}",
        errors[0]
    );
}

/// A flow whose one plugin step's input is the expression `expr`.
fn with_expression(expr: &str) -> String {
    format!("flow: f\nsteps:\n  - id: a\n    plugin: a\n    input: {{v: \"${{{expr}}}\"}}\n")
}

/// The deepest expression of a shape that loads: `shape(n)` for the largest
/// `n` that loads, with the error of `n + 1`.
fn deepest_that_loads(shape: impl Fn(usize) -> String) -> (String, String) {
    let mut n = 1;
    while parse(&with_expression(&shape(n + 1))).is_ok() {
        n += 1;
    }
    let error = format!("{:?}", parse(&with_expression(&shape(n + 1))).unwrap_err());
    (shape(n), error)
}

#[test]
fn the_deepest_metered_expressions_that_load_evaluate_on_a_small_stack() {
    // Calls that each build a value are each metered: twice the levels.
    let calls = |n: usize| format!("'a'{}", ".upperAscii()".repeat(n));
    let lists = |n: usize| format!("{}input{}", "[".repeat(n), "]".repeat(n));
    let sums = |n: usize| vec!["'a'"; n].join(" + ");
    for shape in [&calls as &dyn Fn(usize) -> String, &lists, &sums] {
        let (deepest, error) = deepest_that_loads(shape);
        assert!(error.contains("nest"), "{error}");
        on_small_stack(move || {
            let flow = parse(&with_expression(&deepest)).unwrap();
            let input = flow.steps[0].input.as_ref().unwrap();
            input.render(&serde_json::json!({"input": 1})).unwrap();
        });
    }
}

#[test]
fn an_expression_past_the_depth_limit_is_an_error_at_its_string() {
    let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let chained = |n: usize| vec!["1"; n].join(" + ");
    let macros = |n: usize| format!("{}1{}", "[1].map(x, ".repeat(n), ")".repeat(n));
    // Each bracket counts 2 levels, each operator 1, macros what they expand to.
    for deep in [nested(16), chained(33), macros(8), chained(1_000_000)] {
        let e = on_small_stack(move || error(&with_expression(&deep)));
        assert!(
            e.starts_with("f.yaml:5:16: invalid expression `")
                && e.ends_with("`: the expression nests deeper than 32 levels, the limit"),
            "{}",
            &e[..e.len().min(300)]
        );
        assert!(e.len() < 300, "a long expression is shortened: {}", e.len());
    }
}

#[test]
fn expressions_just_under_the_depth_limit_fit_a_small_stack() {
    let nested = format!("{}input{}", "[".repeat(15), "]".repeat(15));
    let chained = vec!["input"; 32].join(" + ");
    let macros = format!("{}input{}", "[1].map(x, ".repeat(5), ")".repeat(5));
    on_small_stack(move || {
        for expr in [nested, chained, macros] {
            let flow = parse(&with_expression(&expr)).unwrap_or_else(|e| panic!("{e:?}"));
            let input = flow.steps[0].input.as_ref().unwrap();
            input.render(&serde_json::json!({"input": 1})).unwrap();
        }
    });
}
