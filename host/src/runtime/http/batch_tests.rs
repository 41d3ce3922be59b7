use std::sync::Arc;

use super::*;
use crate::config::HttpGrant;
use crate::runtime::Context;
use crate::runtime::http::{HttpPool, PoolSettings};

fn request(method: &str, url: &str) -> wit::Request {
    wit::Request {
        method: method.into(),
        url: url.into(),
        headers: Vec::new(),
        body: None,
        timeout_ms: None,
    }
}

fn with_headers(headers: &[(&str, &str)]) -> wit::Request {
    wit::Request {
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        ..request("GET", "http://h/")
    }
}

/// The error's case and message.
fn refused(r: wit::Request) -> (&'static str, String) {
    match build(r).map(|_| ()).unwrap_err() {
        Error::Denied(m) => ("denied", m),
        Error::Invalid(m) => ("invalid", m),
        Error::TooLarge(m) => ("too-large", m),
        Error::Timeout(m) => ("timeout", m),
        Error::Failed(m) => ("failed", m),
    }
}

#[test]
fn a_good_request_is_built_with_its_parts() {
    let r = wit::Request {
        headers: vec![
            ("X-Id".into(), "7".into()),
            ("accept".into(), "a".into()),
            ("Accept".into(), "b".into()),
        ],
        body: Some(b"hi".to_vec()),
        timeout_ms: Some(250),
        ..request("PURGE", "https://api.example.com:8443/v1?q=1")
    };
    let (built, timeout) = build(r).unwrap();
    assert_eq!(built.method().as_str(), "PURGE");
    assert_eq!(
        built.uri().to_string(),
        "https://api.example.com:8443/v1?q=1"
    );
    assert_eq!(built.headers()["x-id"], "7");
    let accept: Vec<_> = built.headers().get_all("accept").iter().collect();
    assert_eq!(
        accept,
        ["a", "b"],
        "repeated headers are all sent, in order"
    );
    assert_eq!(timeout, Some(Duration::from_millis(250)));
}

#[test]
fn bad_urls_and_methods_are_invalid_naming_the_url() {
    for url in ["ftp://h/x", "/relative", "h/x", "http://", "not a url"] {
        let (kind, message) = refused(request("GET", url));
        assert_eq!(kind, "invalid", "{url}: {message}");
    }
    let (kind, message) = refused(request("GE T", "http://h/x"));
    assert_eq!(kind, "invalid");
    assert_eq!(message, "http://h/x: `GE T` is not a method");
}

#[test]
fn bad_or_host_owned_headers_are_invalid() {
    let cases = [
        (vec![("bad name", "v")], "`bad name` is not a header name"),
        (vec![("x-a", "line\nbreak")], "header `x-a` is not allowed"),
        (vec![("Host", "evil")], "the host sets the `host` header"),
        (
            vec![("connection", "close")],
            "sets the `connection` header",
        ),
        (vec![("Content-Length", "9")], "sets the `content-length`"),
        (
            vec![("transfer-encoding", "chunked")],
            "`transfer-encoding`",
        ),
    ];
    for (headers, expect) in cases {
        let (kind, message) = refused(with_headers(&headers));
        assert_eq!(kind, "invalid", "{message}");
        assert!(message.contains(expect), "{message}");
    }
    let many: Vec<(String, String)> = (0..=MAX_HEADERS)
        .map(|i| (format!("x-{i}"), "v".into()))
        .collect();
    let (kind, message) = refused(wit::Request {
        headers: many,
        ..request("GET", "http://h/")
    });
    assert_eq!(kind, "invalid");
    assert!(
        message.contains("101 headers, over the cap of 100"),
        "{message}"
    );
}

#[test]
fn a_request_body_past_its_cap_is_too_large() {
    let at_cap = wit::Request {
        body: Some(vec![0; MAX_REQUEST_BODY]),
        ..request("POST", "http://h/")
    };
    assert!(build(at_cap).is_ok());
    let (kind, message) = refused(wit::Request {
        body: Some(vec![0; MAX_REQUEST_BODY + 1]),
        ..request("POST", "http://h/")
    });
    assert_eq!(kind, "too-large");
    assert!(message.contains("1048577 bytes"), "{message}");
}

#[test]
fn long_or_unprintable_urls_are_shown_short_and_escaped() {
    let long = format!("http://h/{}", "a".repeat(1000));
    assert_eq!(shown(&long).chars().count(), SHOWN + 1);
    assert!(!shown("http://h/\u{1b}[2J").contains('\u{1b}'));
}

fn policy(grants: &[&str]) -> HttpPolicy {
    let grants: Vec<HttpGrant> = grants.iter().map(|g| g.parse().unwrap()).collect();
    let pool = HttpPool::new(PoolSettings {
        max_idle_per_host: 1,
        idle_timeout: Duration::from_secs(1),
    })
    .unwrap();
    let ctx = Arc::new(Context::direct("step"));
    HttpPolicy::new(&grants, pool, ctx, Instant::now())
}

#[test]
fn only_granted_hosts_pass_and_are_dialed_as_checked() {
    let p = policy(&["api.example.com:8080"]);
    let built = |url: &str| build(request("GET", url)).unwrap().0;
    let ok = p
        .check(
            built("http://API.example.com:8080/x"),
            "http://API.example.com:8080/x",
        )
        .unwrap();
    assert_eq!(ok.uri().to_string(), "http://api.example.com:8080/x");
    for url in [
        "http://api.example.com/x",
        "http://other.example.com:8080/",
        "http://user@api.example.com:8080/",
    ] {
        match p.check(built(url), url) {
            Err(Error::Denied(m)) => assert!(m.starts_with(url), "{m}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

fn response(body: Vec<u8>) -> http::Response<WasiBody> {
    http::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    )
}

#[tokio::test]
async fn a_response_body_past_its_cap_or_the_calls_budget_is_too_large() {
    let budget = AtomicUsize::new(MAX_RESPONSES);
    let at_cap = read(response(vec![1; MAX_RESPONSE_BODY]), "u", &budget).await;
    assert_eq!(at_cap.unwrap().body.len(), MAX_RESPONSE_BODY);
    match read(response(vec![1; MAX_RESPONSE_BODY + 1]), "u", &budget).await {
        Err(Error::TooLarge(m)) => assert!(m.contains("response body passed the cap"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Three at the cap fill the 16 MiB budget with the first; the next is refused.
    for _ in 0..3 {
        read(response(vec![1; MAX_RESPONSE_BODY]), "u", &budget)
            .await
            .unwrap();
    }
    match read(response(vec![1]), "u", &budget).await {
        Err(Error::TooLarge(m)) => assert!(m.contains("of one send-all passed"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn timeouts_are_told_apart_from_other_failures() {
    use wasmtime_wasi_http::Error as E;
    assert!(matches!(
        failure("u", &E::ConnectionReadTimeout),
        Error::Timeout(_)
    ));
    assert!(matches!(
        failure("u", &E::ConnectionRefused),
        Error::Failed(m) if m.starts_with("u: ")
    ));
}
