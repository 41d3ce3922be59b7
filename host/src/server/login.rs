//! The login form (`GET`/`POST /ui/login`) and `POST /ui/logout`: a token
//! typed once opens a session cookie (`HttpOnly`, `SameSite=Strict`).
//! Without a token configured, both send the browser to the UI.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::auth::{Auth, Strict, same_origin};
use super::error::ApiError;
use super::session::{self, COOKIE};

type Guarded = State<Option<Arc<Auth>>>;

/// Where a signed-in browser goes.
const HOME: &str = "/ui/";

pub(crate) fn routes(auth: Option<Arc<Auth>>) -> Router {
    Router::new()
        .route("/ui/login", get(form).post(login))
        .route("/ui/logout", post(logout))
        .with_state(auth)
}

async fn form(State(auth): Guarded) -> Response {
    match auth {
        None => Redirect::to(HOME).into_response(),
        Some(_) => page(StatusCode::OK, None),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(auth): Guarded,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Some(auth) = auth else {
        return Redirect::to(HOME).into_response();
    };
    if let Err(why) = same_origin(&headers, Strict::No) {
        return ApiError::Forbidden(format!("a login from another site: {why}")).into_response();
    }
    let Ok(Form(LoginForm { token })) = form else {
        return page(StatusCode::BAD_REQUEST, Some("Type the API token."));
    };
    if !auth.token.matches(token.trim()) {
        return page(
            StatusCode::UNAUTHORIZED,
            Some("That is not this server's API token."),
        );
    }
    let Some(id) = auth.sessions.open() else {
        return ApiError::Host("no randomness for a session id".into()).into_response();
    };
    let max_age = auth.sessions.lifetime().as_secs();
    let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}");
    with_cookie(Redirect::to(HOME).into_response(), &cookie)
}

async fn logout(State(auth): Guarded, headers: HeaderMap) -> Response {
    let Some(auth) = auth else {
        return Redirect::to(HOME).into_response();
    };
    if let Err(why) = same_origin(&headers, Strict::No) {
        return ApiError::Forbidden(format!("a logout from another site: {why}")).into_response();
    }
    if let Some(id) = session::from_cookies(&headers) {
        auth.sessions.close(id);
    }
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    with_cookie(Redirect::to("/ui/login").into_response(), &cookie)
}

fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The login page, with a fixed message (never what was typed).
fn page(status: StatusCode, message: Option<&'static str>) -> Response {
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{m}</p>"))
        .unwrap_or_default();
    let body = LOGIN_PAGE.replace("{message}", &message);
    let mut r = (status, Html(body)).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const LOGIN_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · flowhost</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; min-height: 100vh;
         display: grid; place-items: center; background: #f4f5f7; color: #1d2330; }
  form { background: #fff; padding: 2rem; border-radius: 8px; width: min(22rem, 90vw);
         box-shadow: 0 1px 4px rgba(0,0,0,.12); }
  h1 { font-size: 1.3rem; margin: 0 0 1rem; }
  label { display: block; font-weight: 600; margin-bottom: .3rem; }
  input { width: 100%; box-sizing: border-box; padding: .5rem; font: inherit;
          border: 1px solid #8a93a6; border-radius: 4px; }
  button { margin-top: 1rem; width: 100%; padding: .55rem; font: inherit; font-weight: 600;
           color: #fff; background: #2456c7; border: 0; border-radius: 4px; cursor: pointer; }
  input:focus, button:focus { outline: 3px solid #f0b429; outline-offset: 1px; }
  .error { color: #a3122b; font-weight: 600; }
  .error::before { content: "✖ "; }
</style>
</head>
<body>
<main>
<form method="post" action="/ui/login">
<h1>flowhost</h1>
{message}
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"#;
