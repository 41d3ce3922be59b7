//! The bounds of an evaluation: the comprehension-step and bytes-built caps,
//! the time limit and the run's deadline, cancel, and the bounded versions
//! of functions that evaluate as CEL's own do.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::ErrorKind;
use crate::flow::expr::*;

fn template(expr: &str) -> Template {
    Template::compile(&json!(expr)).unwrap()
}

/// Renders `expr` against `scope` under `bounds`.
fn eval(expr: &str, scope: Value, bounds: &Bounds) -> Result<Value, EvalError> {
    template(expr).render_here(&scope, bounds)
}

fn with_steps(max_steps: u64) -> Bounds {
    Bounds {
        max_steps,
        ..Bounds::default()
    }
}

fn with_bytes(max_bytes: u64) -> Bounds {
    Bounds {
        max_bytes,
        ..Bounds::default()
    }
}

/// `{"items": [0, 1, ..., n - 1]}` as the input.
fn items(n: u64) -> Value {
    json!({"input": {"items": (0..n).collect::<Vec<_>>()}})
}

const DUP: &str = "${input.items.filter(i, input.items.filter(j, j == i).size() > 1)}";

#[test]
fn every_comprehension_step_and_range_element_counts() {
    // 10 elements made, then 10 steps of each macro.
    for expr in [
        "${lists.range(10).map(x, x * 2)}",
        "${lists.range(10).filter(x, x >= 0)}",
        "${lists.range(10).map(x, x >= 0, x)}",
        "${lists.range(10).all(x, x >= 0)}",
        "${lists.range(10).exists(x, x < 0)}",
        "${lists.range(10).exists_one(x, x == 3)}",
        "${lists.range(10).sortBy(x, -x)}",
    ] {
        let ok = eval(expr, json!({}), &with_steps(20));
        assert!(ok.is_ok(), "{expr}: {ok:?}");
        let e = eval(expr, json!({}), &with_steps(19)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Expression, "{expr}");
        assert_eq!(
            e.to_string(),
            format!(
                "expression `{}`: stopped after 19 comprehension steps (the cap per evaluation)",
                &expr[2..expr.len() - 1]
            )
        );
    }
}

#[test]
fn nested_comprehensions_stop_at_the_step_cap() {
    let e = eval(DUP, items(200), &with_steps(10_000)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Expression);
    assert_eq!(
        e.to_string(),
        format!(
            "expression `{}`: stopped after 10,000 comprehension steps (the cap per evaluation)",
            &DUP[2..DUP.len() - 1]
        )
    );
    // Under the cap, the same expression gives its answer.
    let found = eval(
        DUP,
        json!({"input": {"items": [1, 2, 1, 3]}}),
        &Bounds::default(),
    );
    assert_eq!(found.unwrap(), json!([1, 1]));
}

#[test]
fn a_range_past_the_cap_stops_before_it_is_made() {
    let expr = "${lists.range(1000000).map(x, x).size()}";
    let e = eval(expr, json!({}), &Bounds::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Expression);
    assert_eq!(
        e.to_string(),
        format!(
            "expression `{}`: stopped after 1,000,000 comprehension steps (the cap per evaluation)",
            &expr[2..expr.len() - 1]
        )
    );
    assert_eq!(MAX_STEPS, 1_000_000);
}

#[test]
fn an_error_the_expression_swallows_does_not_lift_the_cap() {
    // `error || true` is `true` in CEL: the stop still ends the evaluation.
    let expr = "${[1].exists(x, lists.range(1000).map(y, y).size() > 0 || true)}";
    let e = eval(expr, json!({}), &with_steps(100)).unwrap_err();
    assert!(
        e.to_string()
            .contains("stopped after 100 comprehension steps"),
        "{e}"
    );
    assert_eq!(
        eval(expr, json!({}), &Bounds::default()).unwrap(),
        json!(true)
    );
}

#[test]
fn copies_into_a_built_list_count_toward_the_bytes_cap() {
    let scope = json!({"input": {"s": "x".repeat(8 << 10)}});
    let expr = "${size(lists.range(100000).map(x, input.s).join(''))}";
    let started = Instant::now();
    let e = eval(expr, scope.clone(), &Bounds::default()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(e.kind, ErrorKind::Expression);
    assert_eq!(
        e.to_string(),
        format!(
            "expression `{}`: stopped after building 128 MiB of values (the cap per evaluation)",
            &expr[2..expr.len() - 1]
        )
    );
    assert_eq!(MAX_BYTES, 128 << 20);
    // A hundred copies are fine.
    let small = "${size(lists.range(100).map(x, input.s).join(''))}";
    assert_eq!(
        eval(small, scope, &Bounds::default()).unwrap(),
        json!(800 << 10)
    );
}

#[test]
fn strings_and_lists_built_by_operators_and_functions_count() {
    let scope = json!({"input": {"s": "x".repeat(1000), "l": [1, 2, 3]}});
    for expr in [
        "${size(input.s + input.s)}",
        "${size([input.s])}",
        "${size({'k': input.s})}",
        "${size(input.s.upperAscii())}",
    ] {
        assert!(
            eval(expr, scope.clone(), &with_bytes(4000)).is_ok(),
            "{expr}"
        );
        let e = eval(expr, scope.clone(), &with_bytes(500)).unwrap_err();
        assert!(
            e.to_string()
                .contains("stopped after building 500 bytes of values"),
            "{expr}: {e}"
        );
    }
}

#[test]
fn join_and_replace_count_their_result_before_building_it() {
    // Each would build 200 MB: refused up front, so this takes no time.
    let scope = json!({"input": {
        "items": vec!["a"; 100_000],
        "sep": "x".repeat(2000),
        "s": "a".repeat(100_000),
    }});
    for expr in [
        "${size(input.items.join(input.sep))}",
        "${size(input.s.replace('a', input.sep))}",
        "${size(input.s.replace('a', input.sep, 1000000))}",
    ] {
        let started = Instant::now();
        let e = eval(expr, scope.clone(), &Bounds::default()).unwrap_err();
        assert!(
            e.to_string().contains("stopped after building 128 MiB"),
            "{expr}: {e}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{expr}");
    }
}

#[test]
fn the_run_deadline_stops_an_evaluation_with_kind_deadline() {
    let bounds = Bounds {
        deadline: Some(Instant::now() + Duration::from_millis(200)),
        ..Bounds::default()
    };
    let started = Instant::now();
    let e = eval(DUP, items(20_000), &bounds).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind, ErrorKind::Deadline);
    assert!(
        e.to_string().ends_with("stopped at the flow's deadline"),
        "{e}"
    );
}

#[test]
fn the_time_limit_stops_an_evaluation() {
    let bounds = Bounds {
        time_limit: Duration::from_millis(200),
        max_steps: u64::MAX,
        ..Bounds::default()
    };
    let started = Instant::now();
    let e = eval(DUP, items(20_000), &bounds).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind, ErrorKind::Expression);
    assert!(
        e.to_string()
            .ends_with("stopped after 200ms (the time limit per evaluation)"),
        "{e}"
    );
}

#[test]
fn a_long_evaluation_leaves_the_async_workers_and_stops_when_dropped() {
    // One worker: while the evaluation runs, a timer on it still fires.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bounds = Bounds {
        time_limit: Duration::from_secs(120),
        max_steps: u64::MAX,
        ..Bounds::default()
    };
    let t = template(DUP);
    let ticked = rt.block_on(async {
        let eval = t.render_bounded(items(50_000), &bounds);
        let tick = tokio::time::sleep(Duration::from_millis(200));
        tokio::select! {
            r = eval => panic!("a quadratic evaluation over 50,000 items finished: {r:?}"),
            () = tick => Instant::now(),
        }
    });
    // Dropping the runtime waits for its blocking tasks: the dropped
    // evaluation must have stopped.
    drop(rt);
    assert!(
        ticked.elapsed() < Duration::from_secs(2),
        "{:?}",
        ticked.elapsed()
    );
}

#[tokio::test]
async fn cheap_and_constant_evaluations_give_their_value() {
    let bounds = Bounds::default();
    let t = template("${input.n + 1}");
    let out = t.render_bounded(json!({"input": {"n": 1}}), &bounds).await;
    assert_eq!(out.unwrap(), json!(2));
    let c = Condition::compile("${input.n > 0}").unwrap();
    assert!(
        c.eval_bounded(json!({"input": {"n": 1}}), &bounds)
            .await
            .unwrap()
    );
    // Large variables go to the blocking pool, with the same answer.
    let out = template("${size(input.items)}")
        .render_bounded(items(100_000), &bounds)
        .await;
    assert_eq!(out.unwrap(), json!(100_000));
}

#[test]
fn the_bounded_functions_evaluate_as_cel_has_them() {
    let scope = json!({"input": {"s": "héllo wörld", "l": [1, 2, 2, 3, 1]}});
    let cases = [
        ("${['a', 'b', 'c'].join()}", json!("abc")),
        ("${['a', 'b'].join('-')}", json!("a-b")),
        ("${[].join('-')}", json!("")),
        ("${'aaa'.replace('a', 'bc')}", json!("bcbcbc")),
        ("${'aaa'.replace('a', 'b', 2)}", json!("bba")),
        ("${'aaa'.replace('a', 'b', -1)}", json!("bbb")),
        ("${'aaa'.replace('a', 'b', 0)}", json!("aaa")),
        ("${'ab'.replace('', '-')}", json!("-a-b-")),
        ("${input.l.distinct()}", json!([1, 2, 3])),
        ("${[1, 1u, 1.0, 2u].distinct() == [1, 2u]}", json!(true)),
        ("${[[1], [1], [2]].distinct()}", json!([[1], [2]])),
        ("${input.s.indexOf('ö')}", json!(7)),
        ("${input.s.indexOf('o')}", json!(4)),
        ("${input.s.indexOf('o', 5)}", json!(-1)),
        ("${input.s.indexOf('l', 3)}", json!(3)),
        ("${input.s.indexOf('')}", json!(0)),
        ("${input.s.indexOf('', 20)}", json!(11)),
        ("${input.s.indexOf('xyz')}", json!(-1)),
        ("${input.s.lastIndexOf('l')}", json!(9)),
        ("${input.s.lastIndexOf('l', 8)}", json!(3)),
        ("${input.s.lastIndexOf('wö', 6)}", json!(6)),
        ("${input.s.lastIndexOf('wö', 5)}", json!(-1)),
        ("${input.s.lastIndexOf('')}", json!(11)),
        ("${input.s.lastIndexOf('', 4)}", json!(4)),
        ("${'ab'.lastIndexOf('abc')}", json!(-1)),
    ];
    for (expr, want) in cases {
        let got = eval(expr, scope.clone(), &Bounds::default());
        assert_eq!(got.map_err(|e| e.to_string()), Ok(want), "{expr}");
    }
    let errors = [
        ("${'abc'.indexOf('a', 3)}", "index out of range: 3"),
        ("${'abc'.indexOf('a', -1)}", "index out of range: -1"),
        ("${'abc'.lastIndexOf('a', 5)}", "index out of range: 5"),
        ("${[1].join()}", "expected a string, got an int"),
        ("${'x'.join()}", "`join` cannot be called on a string"),
        (
            "${'x'.distinct()}",
            "`distinct` cannot be called on a string",
        ),
        (
            "${1.replace('a', 'b')}",
            "`replace` cannot be called on an int with a string and a string",
        ),
        (
            "${[1].indexOf(1)}",
            "`indexOf` cannot be called on a list with an int",
        ),
    ];
    for (expr, want) in errors {
        let e = eval(expr, scope.clone(), &Bounds::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Expression, "{expr}");
        assert!(e.to_string().contains(want), "{expr}: {e}");
    }
}

#[test]
fn distinct_and_index_of_take_linear_or_bounded_time() {
    // Quadratic `distinct` checks the clock; `indexOf` no longer scans
    // every window.
    let bounds = Bounds {
        time_limit: Duration::from_millis(300),
        ..Bounds::default()
    };
    let started = Instant::now();
    let e = eval("${input.items.distinct().size()}", items(200_000), &bounds).unwrap_err();
    assert!(e.to_string().contains("time limit"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let haystack = "a".repeat(1 << 20);
    let needle = format!("{}b", "a".repeat(1 << 19));
    let scope = json!({"input": {"h": haystack, "n": needle}});
    let started = Instant::now();
    for expr in [
        "${input.h.indexOf(input.n)}",
        "${input.h.lastIndexOf(input.n)}",
    ] {
        assert_eq!(
            eval(expr, scope.clone(), &Bounds::default()).unwrap(),
            json!(-1)
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn map_and_filter_still_build_their_list_in_place() {
    // Counting a step inside `map` and `filter` keeps CEL appending to the
    // result in place: copying it every step would take minutes here.
    let started = Instant::now();
    for expr in [
        "${lists.range(200000).map(x, x).size()}",
        "${lists.range(200000).filter(x, x % 2 == 0).size()}",
        "${lists.range(200000).map(x, x % 2 == 0, x).size()}",
    ] {
        assert!(eval(expr, json!({}), &Bounds::default()).is_ok(), "{expr}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
