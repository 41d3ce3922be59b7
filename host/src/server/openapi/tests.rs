use std::collections::BTreeSet;

use super::*;

/// The methods axum's `MethodRouter` prints, in its order.
const METHODS: [&str; 9] = [
    "get", "head", "delete", "options", "patch", "post", "put", "trace", "connect",
];

/// `(method, path)` of every route the router serves, read from its debug
/// form (axum has no other way to list them): endpoints are printed as
/// `RouteId(N): MethodRouter(MethodRouter { get: BoxedHandler, head: None,
/// ... })`, paths as `RouteId(N): "/path"`. A nested router or service is
/// an endpoint `Route(...)`: every method, written `*`.
fn served(debug: &str) -> BTreeSet<(String, String)> {
    let main = debug.split("fallback_router:").next().unwrap_or_default();
    let mut methods = std::collections::HashMap::new();
    let mut paths = Vec::new();
    for chunk in main.split("RouteId(").skip(1) {
        let Some((id, rest)) = chunk.split_once("): ") else {
            continue;
        };
        if let Some(path) = rest.strip_prefix('"') {
            let path = path.split('"').next().unwrap_or_default();
            paths.push((id.to_string(), path.to_string()));
        } else if rest.starts_with("MethodRouter(") {
            let served: Vec<String> = METHODS
                .iter()
                .filter(|m| {
                    rest.split(&format!(" {m}: "))
                        .nth(1)
                        .is_some_and(|v| !v.starts_with("None"))
                })
                .map(|m| m.to_string())
                .collect();
            methods.insert(id.to_string(), served);
        } else {
            methods.insert(id.to_string(), vec!["*".to_string()]);
        }
    }
    paths
        .into_iter()
        .flat_map(|(id, path)| {
            let served = methods.get(&id).cloned().unwrap_or_default();
            served.into_iter().map(move |m| (m, path.clone()))
        })
        .collect()
}

/// `(method, path)` of every operation the document describes.
fn documented() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.clone(), path.clone()));
        }
    }
    ops
}

#[test]
fn the_document_describes_every_route_the_router_has() {
    let router = format!("{:?}", crate::server::api::app());
    // The web UI's pages are not API routes; axum answers HEAD with GET.
    let served: BTreeSet<_> = served(&router)
        .into_iter()
        .filter(|(m, p)| m != "head" && !p.starts_with("/ui"))
        .collect();
    assert!(
        served.contains(&("get".into(), "/healthz".into())),
        "the router's routes could not be read from its debug form: {router}"
    );
    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes the router serves that /openapi.json does not describe (add them with `routes!` in server/api.rs): {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "operations /openapi.json describes that the router does not serve: {unserved:?}"
    );
}

#[test]
fn a_route_added_without_a_description_is_found() {
    let router = crate::server::api::app().route("/extra", axum::routing::put(|| async {}));
    let served = served(&format!("{router:?}"));
    assert!(served.contains(&("put".into(), "/extra".into())));
    assert!(!documented().contains(&("put".into(), "/extra".into())));
}

#[test]
fn every_operation_but_healthz_may_answer_401_with_the_error_shape() {
    let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
    assert_eq!(
        doc["components"]["securitySchemes"][BEARER]["scheme"],
        "bearer"
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let answer = &op["responses"]["401"];
            if path == "/healthz" {
                assert!(answer.is_null(), "/healthz is open");
                continue;
            }
            assert_eq!(
                answer["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}"
            );
        }
    }
}
