//! The API token: a bearer token for the API, a login form and session
//! cookie for the UI, same-origin changes only through the cookie, no
//! serving beyond loopback without a token, and the token never logged.

use super::*;
use crate::support::{http_with, run};
use flowhost::server::TokenHash;

const TOKEN: &str = "t0ken-4f9c2a7e-never-print-me";

fn guarded() -> ServerConfig {
    ServerConfig {
        api_token_hash: Some(TokenHash::of(TOKEN)),
        ..config()
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

impl Served {
    async fn with(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let body = (method == "POST").then_some("{}");
        http_with(method, self.addr, path, body, headers).await
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Signs in through the login form; the session cookie (`name=value`).
    async fn sign_in(&self) -> String {
        let form = format!("token={TOKEN}");
        let r = http_with(
            "POST",
            self.addr,
            "/ui/login",
            Some(&form),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(r.header("location"), Some("/ui/"));
        let cookie = r
            .header("set-cookie")
            .expect("a session cookie")
            .to_string();
        let attributes: Vec<&str> = cookie.split("; ").collect();
        for a in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(attributes.contains(&a), "{cookie}");
        }
        let pair = attributes[0];
        assert!(
            pair.starts_with("flowhost_session=") && pair.len() > 40,
            "{cookie}"
        );
        pair.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_token_and_healthz_stays_open() {
    let s = Served::start(&["testing/echo"], &[("greet", GREET)], guarded()).await;
    let needed = "this server needs its API token: send `Authorization: Bearer TOKEN`, or sign in at /ui/login";
    for (method, path) in [
        ("GET", "/flows"),
        ("GET", "/runs"),
        ("GET", "/metrics"),
        ("GET", "/readyz"),
        ("POST", "/flows/greet/runs"),
        ("GET", "/no/such/route"),
    ] {
        let r = s.with(method, path, &[]).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert_eq!(r.json(), error_body("unauthorized", needed, None));
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let wrong = s
        .with("GET", "/flows", &[("authorization", &bearer("guess"))])
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.json(),
        error_body(
            "unauthorized",
            "the bearer token is not this server's API token",
            None
        )
    );
    let basic = s
        .with("GET", "/flows", &[("authorization", "Basic dTpw")])
        .await;
    assert_eq!(basic.status, 401);
    assert_eq!(
        basic.json()["error"]["message"],
        "the Authorization header must be `Bearer TOKEN`"
    );

    let auth = bearer(TOKEN);
    let r = s.with("GET", "/flows", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A bearer-carried change needs no Origin: no browser sends it unasked.
    let r = http_with(
        "POST",
        s.addr,
        "/flows/greet/runs",
        Some(r#"{"name": "Ada"}"#),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["output"], json!({"name": "Ada"}));
    assert_eq!(s.get("/healthz").await.status, 200);
    // A UI page sends the browser to the login form instead.
    let r = s.get("/ui/").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui/login"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_form_opens_a_session_until_logout() {
    let s = Served::start(&["testing/echo"], &[("greet", GREET)], guarded()).await;
    let form = s.get("/ui/login").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains(r#"name="token""#), "{}", form.body);
    assert!(form.body.contains(r#"type="submit""#), "{}", form.body);

    let wrong = http_with(
        "POST",
        s.addr,
        "/ui/login",
        Some("token=guess"),
        &[("content-type", "application/x-www-form-urlencoded")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("set-cookie"), None);
    assert!(
        wrong.body.contains("That is not this server's API token."),
        "{}",
        wrong.body
    );
    assert!(
        !wrong.body.contains("guess"),
        "what was typed is not shown back"
    );

    let cookie = s.sign_in().await;
    let r = s.with("GET", "/flows", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The UI's pages are past the guard (whatever they answer, it is not the
    // way to the login form).
    let r = s.with("GET", "/ui/", &[("cookie", &cookie)]).await;
    assert!(![303, 401].contains(&r.status), "{} {}", r.status, r.body);
    let other = s.sign_in().await;
    assert_ne!(cookie, other, "every login its own session");

    let origin = s.origin();
    let r = s
        .with(
            "POST",
            "/ui/logout",
            &[("cookie", &cookie), ("origin", &origin)],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui/login"));
    let cleared = r.header("set-cookie").unwrap();
    assert!(
        cleared.starts_with("flowhost_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let r = s.with("GET", "/flows", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 401, "a closed session opens nothing: {}", r.body);
    let r = s.with("GET", "/ui/", &[("cookie", &cookie)]).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    // The other session lives on.
    assert_eq!(
        s.with("GET", "/flows", &[("cookie", &other)]).await.status,
        200
    );
    let forged = s
        .with("GET", "/flows", &[("cookie", "flowhost_session=00ff")])
        .await;
    assert_eq!(forged.status, 401);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_carried_change_must_come_from_the_same_origin() {
    let s = Served::start(&["testing/echo"], &[("greet", GREET)], guarded()).await;
    let cookie = s.sign_in().await;
    let start = "/flows/greet/runs?wait=false";
    let foreign = [
        vec![("origin", "http://evil.example")],
        vec![("referer", "http://evil.example/page")],
        vec![("origin", "null")],
        vec![],
    ];
    for headers in foreign {
        let mut all = vec![("cookie", cookie.as_str())];
        all.extend(headers.iter().copied());
        let r = s.with("POST", start, &all).await;
        assert_eq!(r.status, 403, "{headers:?}: {}", r.body);
        assert_eq!(r.json()["error"]["kind"], "forbidden", "{headers:?}");
    }
    let r = s
        .with(
            "POST",
            start,
            &[("cookie", &cookie), ("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(
        r.json()["error"]["message"],
        format!(
            "POST /flows/greet/runs carried by the session cookie must come from this server's own pages: its Origin `http://evil.example` is not this server ({})",
            s.addr
        )
    );
    let runs = s
        .with("GET", "/runs", &[("authorization", &bearer(TOKEN))])
        .await;
    assert_eq!(runs.json()["runs"], json!([]), "nothing was started");

    let origin = s.origin();
    let page = format!("{origin}/ui/flows/greet");
    for same in [("origin", origin.as_str()), ("referer", page.as_str())] {
        let r = http_with(
            "POST",
            s.addr,
            start,
            Some(r#"{"name": "Ada"}"#),
            &[("cookie", &cookie), same],
        )
        .await;
        assert_eq!(r.status, 202, "{same:?}: {}", r.body);
    }
    // Reading needs no Origin.
    assert_eq!(
        s.with("GET", "/runs", &[("cookie", &cookie)]).await.status,
        200
    );
    // A login form posted from another site is refused too.
    let r = http_with(
        "POST",
        s.addr,
        "/ui/login",
        Some(&format!("token={TOKEN}")),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "http://evil.example"),
        ],
    )
    .await;
    assert_eq!((r.status, r.header("set-cookie")), (403, None));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_everything_is_open() {
    let s = Served::start(&["testing/echo"], &[("greet", GREET)], config()).await;
    assert_eq!(s.get("/flows").await.status, 200);
    let r = s.post("/flows/greet/runs", r#"{"name": "Ada"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.get("/ui/login").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/")));
    s.shutdown().await;
}

/// `flowhost serve` with `args`, on an empty flows folder; its exit code
/// and stderr when it exits within 60 s.
fn serve_exits(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let (_dirs, plugins, flows) = folders(&[], &[]);
    let mut cmd = flowhost();
    cmd.arg("serve")
        .args(args)
        .arg("--plugins")
        .arg(&plugins)
        .arg("--flows")
        .arg(&flows)
        .env_remove("FLOWHOST_API_TOKEN")
        .envs(env.iter().copied());
    let (code, _, stderr) = run(&mut cmd);
    (code, stderr)
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let (code, stderr) = serve_exits(&["--listen", "0.0.0.0:0"], &[]);
    assert_eq!(code, 2, "{stderr}");
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("flowhost: refusing to listen on 0.0.0.0:0 without an API token")
            && line.contains("--insecure-no-auth")
            && line.contains("api_token_hash")
            && line.contains("$FLOWHOST_API_TOKEN"),
        "{stderr}"
    );
    let (code, stderr) = serve_exits(&["--listen", "0.0.0.0:0"], &[("FLOWHOST_API_TOKEN", " ")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("$FLOWHOST_API_TOKEN is set but empty"),
        "{stderr}"
    );

    // With the flag, it serves, open.
    let (_dirs, plugins, flows) = folders(&["testing/echo"], &[("greet", GREET)]);
    let (_child, addr, _lines) = crate::support::serve(
        flowhost()
            .args([
                "serve",
                "--listen",
                "0.0.0.0:0",
                "--insecure-no-auth",
                "--plugins",
            ])
            .arg(&plugins)
            .arg("--flows")
            .arg(&flows)
            .env_remove("FLOWHOST_API_TOKEN")
            .stdout(std::process::Stdio::null()),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(http("GET", addr, "/flows", None)).status, 200);
}

/// The token through `flowhost token hash` into `flowhost.toml`, and
/// through the environment: the server asks for it, takes it, and never
/// writes it in its logs, at the most verbose level, whatever it is sent.
#[test]
fn the_token_is_required_and_never_logged() {
    let mut hash = flowhost();
    hash.args(["token", "hash"])
        .stdin(std::process::Stdio::piped());
    hash.stdout(std::process::Stdio::piped());
    let mut child = hash.spawn().unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{TOKEN}").unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.trim(), TokenHash::of(TOKEN).to_string());
    let (code, _, stderr) = run(flowhost().args(["token", "hash"]));
    assert_eq!(code, 2, "an empty stdin is refused: {stderr}");

    let (dirs, plugins, flows) = folders(&["testing/echo"], &[("greet", GREET)]);
    let toml = dirs.path().join("flowhost.toml");
    std::fs::write(&toml, format!("api_token_hash = \"{}\"\n", printed.trim())).unwrap();
    let from_file: &[&str] = &["--config", toml.to_str().unwrap()];
    let from_env: &[&str] = &[];
    for (args, env) in [(from_file, None), (from_env, Some(TOKEN))] {
        let mut cmd = flowhost();
        cmd.args(["serve", "--listen", "0.0.0.0:0", "--plugins"])
            .arg(&plugins)
            .arg("--flows")
            .arg(&flows)
            .args(args)
            .env("FLOWHOST_LOG", "trace")
            .env_remove("FLOWHOST_API_TOKEN")
            .stdout(std::process::Stdio::null());
        if let Some(token) = env {
            cmd.env("FLOWHOST_API_TOKEN", token);
        }
        let (mut child, addr, before, lines) = crate::support::serve_lines(&mut cmd);
        let addr = SocketAddr::from(([127, 0, 0, 1], addr.port()));
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let post = |path: &'static str, body: String, headers: Vec<(&'static str, String)>| async move {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                http_with("POST", addr, path, Some(&body), &headers).await
            };
            assert_eq!(http("GET", addr, "/flows", None).await.status, 401);
            let ok = vec![("authorization", bearer(TOKEN))];
            let r = post("/flows/greet/runs", r#"{"name": "Ada"}"#.into(), ok).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let almost = vec![("authorization", bearer(&format!("{TOKEN}0")))];
            assert_eq!(post("/flows/greet/runs", "{}".into(), almost).await.status, 401);
            let form = vec![("content-type", "application/x-www-form-urlencoded".to_string())];
            let r = post("/ui/login", format!("token={TOKEN}"), form.clone()).await;
            assert_eq!(r.status, 303, "{}", r.body);
            let r = post("/ui/login", format!("token={TOKEN}0"), form).await;
            assert_eq!(r.status, 401, "{}", r.body);
        });
        // `flowhost runs --server` sends the token from the environment.
        let server = format!("http://{addr}");
        let list = ["runs", "list", "--server", server.as_str()];
        let (code, out, err) = run(flowhost().args(list).env("FLOWHOST_API_TOKEN", TOKEN));
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("greet"), "{out}");
        let (code, _, err) = run(flowhost().args(list).env_remove("FLOWHOST_API_TOKEN"));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("this server needs its API token"), "{err}");
        crate::support::sigterm(&child);
        let status = child.wait().unwrap();
        let logged: Vec<String> = before.into_iter().chain(lines.iter()).collect();
        let logged = logged.join("\n");
        assert!(status.success(), "{logged}");
        assert!(
            logged.contains("serving"),
            "the logs were captured: {logged}"
        );
        assert!(
            !logged.contains(TOKEN),
            "the token is in the logs:\n{logged}"
        );
    }
}
