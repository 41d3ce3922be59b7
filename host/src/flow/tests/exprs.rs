//! `${...}` expressions and conditions: types, interpolation, errors, what
//! they read, the documented functions.

use serde_json::json;

use crate::flow::expr::*;

#[test]
fn whole_expression_keeps_its_type() {
    let t = Template::compile(&json!("${item}")).unwrap();
    assert_eq!(t.render(&json!({"item": 1})).unwrap(), json!(1));
    assert_eq!(t.render(&json!({"item": 2.5})).unwrap(), json!(2.5));
    assert_eq!(
        t.render(&json!({"item": [1, "x"]})).unwrap(),
        json!([1, "x"])
    );
    assert_eq!(
        t.render(&json!({"item": {"a": null}})).unwrap(),
        json!({"a": null})
    );
    assert_eq!(t.render(&json!({"item": true})).unwrap(), json!(true));
    let t = Template::compile(&json!("${ input.n * 2 }")).unwrap();
    assert_eq!(t.render(&json!({"input": {"n": 21}})).unwrap(), json!(42));
    let t = Template::compile(&json!("${ {'a': [input.n, 'x']} }")).unwrap();
    assert_eq!(
        t.render(&json!({"input": {"n": 1}})).unwrap(),
        json!({"a": [1, "x"]})
    );
}

#[test]
fn interpolation_in_longer_strings() {
    let t = Template::compile(&json!({
        "s": "id=${input.id}, n=${input.n}, o=${input.o}, null=${input.z}",
        "list": ["${input.n}", "n: ${input.n}", 7, null],
        "lit": "no expr",
        "esc": "cost $${input.n}",
    }))
    .unwrap();
    let out = t
        .render(&json!({"input": {"id": "ab", "n": 3, "o": {"k": [1, "v"]}, "z": null}}))
        .unwrap();
    assert_eq!(
        out,
        json!({
            "s": "id=ab, n=3, o={\"k\":[1,\"v\"]}, null=null",
            "list": [3, "n: 3", 7, null],
            "lit": "no expr",
            "esc": "cost ${input.n}",
        })
    );
    let constant = Template::compile(&json!({"a": [1, "b"]})).unwrap();
    assert!(constant.is_constant());
    assert_eq!(constant.render(&json!({})).unwrap(), json!({"a": [1, "b"]}));
}

#[test]
fn evaluation_errors_name_the_expression() {
    let t = Template::compile(&json!({"x": "${input.missing.deep}"})).unwrap();
    let e = t.render(&json!({"input": {}})).unwrap_err();
    assert_eq!(e.expr, "input.missing.deep");
    assert_eq!(
        e.to_string(),
        "expression `input.missing.deep`: No such key: missing"
    );
    let c = Condition::compile("${input.n}").unwrap();
    assert_eq!(
        c.eval_bool(&json!({"input": {"n": 1}}))
            .unwrap_err()
            .to_string(),
        "expression `input.n`: expected a boolean, got an integer"
    );
    let c = Condition::compile("${steps.a.output.ok}").unwrap();
    assert_eq!(
        c.eval_bool(&json!({"steps": {}})).unwrap_err().to_string(),
        "expression `steps.a.output.ok`: No such key: a"
    );
    // A bare expression is a condition too.
    let c = Condition::compile("input.n > 1 && input.s.startsWith('ab')").unwrap();
    assert!(
        c.eval_bool(&json!({"input": {"n": 2, "s": "abc"}}))
            .unwrap()
    );
    assert!(Condition::constant(true).eval_bool(&json!({})).unwrap());
}

#[test]
fn steps_and_run_in_scope() {
    let t = Template::compile(&json!({
        "a": "${steps.first.output.v + 1}",
        "b": "${steps['get-user'].output}",
        "r": "${run.flow}#${run.attempt}",
    }))
    .unwrap();
    assert_eq!(t.step_refs(), ["first", "get-user"]);
    let scope = json!({
        "steps": {"first": {"output": {"v": 1}}, "get-user": {"output": "bob"}, "other": {"output": 1}},
        "run": {"id": "r1", "flow": "orders", "attempt": 2},
    });
    assert_eq!(
        t.render(&scope).unwrap(),
        json!({"a": 2, "b": "bob", "r": "orders#2"})
    );
    // Dynamic access binds all the steps.
    let t = Template::compile(&json!("${steps[input.k].output}")).unwrap();
    let scope = json!({"input": {"k": "other"}, "steps": {"other": {"output": 5}}});
    assert_eq!(t.render(&scope).unwrap(), json!(5));
}

#[test]
fn referenced_step_ids() {
    assert_eq!(
        referenced_steps("${steps.a.output.x == steps['b-c'].output && has(steps.d.output)}")
            .unwrap(),
        ["a", "b-c", "d"]
    );
    assert_eq!(
        referenced_steps("steps.a.output.map(s, s.x)").unwrap(),
        ["a"]
    );
    assert_eq!(referenced_steps("input.x").unwrap(), Vec::<String>::new());
    assert!(referenced_steps("${(}").is_err());
}

#[test]
fn documented_functions_work() {
    let t = Template::compile(&json!([
        "${math.greatest(1, input.n)}",
        "${'ABC'.lowerAscii()}",
        "${[1, 2, 3].filter(x, x > 1).size()}",
        "${'abc'.matches('^a')}",
        "${lists.range(3)}",
        "${input.n in [1, 5]}",
        "${input.n < 5.5}",
        "${double(input.n) * 1.5}",
        "${['a', 'b'].join('-')}",
        "${has(input.m) ? 'yes' : 'no'}",
        "${input.s.split(',')}",
    ]))
    .unwrap();
    assert_eq!(
        t.render(&json!({"input": {"n": 5, "s": "x,y"}})).unwrap(),
        json!([
            5,
            "abc",
            2,
            true,
            [0, 1, 2],
            true,
            true,
            7.5,
            "a-b",
            "no",
            ["x", "y"]
        ])
    );
}
