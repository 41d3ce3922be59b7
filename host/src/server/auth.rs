//! Who may use the server. With a token configured, every route but
//! `/healthz` and the login form needs `Authorization: Bearer TOKEN` or a
//! session cookie from the login form; without one, everything is open.
//!
//! A browser sends the cookie on its own, so a state-changing request that
//! the cookie carries must come from this server's own pages (a same-origin
//! `Origin`, or `Referer` when a browser sends no `Origin`); a bearer token
//! is never sent on its own, so a request with one needs no such check.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::error::ApiError;
use super::session::{self, Sessions};
use super::token::TokenHash;

/// The token and the sessions it opened.
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) token: TokenHash,
    pub(crate) sessions: Sessions,
}

/// `app` behind the token (when one is set), with the login form.
pub(crate) fn protect(app: Router, auth: Option<Arc<Auth>>) -> Router {
    let app = app.merge(super::login::routes(auth.clone()));
    match auth {
        Some(auth) => app.layer(axum::middleware::from_fn_with_state(auth, guard)),
        None => app,
    }
}

/// Routes open without the token.
fn open_route(path: &str) -> bool {
    matches!(path, "/healthz" | "/ui/login" | "/ui/logout")
}

/// A UI page, which sends a browser to the login form rather than answering 401.
fn ui_page(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

async fn guard(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if open_route(path) {
        return next.run(request).await;
    }
    let headers = request.headers();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return match bearer(value) {
            Some(token) if auth.token.matches(token) => next.run(request).await,
            Some(_) => unauthorized("the bearer token is not this server's API token"),
            None => unauthorized("the Authorization header must be `Bearer TOKEN`"),
        };
    }
    if let Some(id) = session::from_cookies(headers)
        && auth.sessions.valid(id)
    {
        if changes_state(request.method())
            && let Err(why) = same_origin(headers, Strict::Yes)
        {
            let what = format!("{} {path}", request.method());
            return ApiError::Forbidden(format!(
                "{what} carried by the session cookie must come from this server's own pages: {why}"
            ))
            .into_response();
        }
        return next.run(request).await;
    }
    let page = matches!(*request.method(), Method::GET | Method::HEAD) && ui_page(path);
    if page {
        return Redirect::to("/ui/login").into_response();
    }
    unauthorized(
        "this server needs its API token: send `Authorization: Bearer TOKEN`, or sign in at /ui/login",
    )
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::Unauthorized(message.to_string()).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// The token of `Bearer TOKEN` (the scheme in any case).
fn bearer(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Methods that may change something: all but the safe ones.
pub(crate) fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether a request that names no origin at all passes [`same_origin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strict {
    /// It does not: a cookie-carried change must show where it comes from.
    Yes,
    /// It does: only a foreign origin is refused.
    No,
}

/// Checks that the request's `Origin` (else its `Referer`) is this server,
/// as the `Host` header names it; `Err` says why not.
pub(crate) fn same_origin(headers: &HeaderMap, strict: Strict) -> Result<(), String> {
    let named = headers
        .get(header::ORIGIN)
        .map(|v| ("Origin", v))
        .or_else(|| headers.get(header::REFERER).map(|v| ("Referer", v)));
    let Some((which, value)) = named else {
        return match strict {
            Strict::Yes => Err("the request has neither an Origin nor a Referer header".into()),
            Strict::No => Ok(()),
        };
    };
    let shown = String::from_utf8_lossy(value.as_bytes());
    let shown = crate::printable::printable(&shown);
    let origin = value.to_str().ok().and_then(origin_of);
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok());
    match (origin, host) {
        (Some((scheme, origin)), Some(host)) if same_authority(&scheme, &origin, &host) => Ok(()),
        (_, None) => Err("the request has no valid Host header".into()),
        _ => Err(format!(
            "its {which} `{shown}` is not this server ({})",
            headers
                .get(header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
                .unwrap_or_default()
        )),
    }
}

/// The scheme and authority of an origin or URL (`null` has none).
fn origin_of(url: &str) -> Option<(String, http::uri::Authority)> {
    let uri: http::Uri = url.parse().ok()?;
    Some((
        uri.scheme_str()?.to_ascii_lowercase(),
        uri.authority()?.clone(),
    ))
}

/// Same host, and the same port, a missing one being the scheme's default.
fn same_authority(
    scheme: &str,
    origin: &http::uri::Authority,
    host: &http::uri::Authority,
) -> bool {
    let default = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    origin.host().eq_ignore_ascii_case(host.host())
        && origin.port_u16().unwrap_or(default) == host.port_u16().unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_this_servers_origin_passes() {
        let host = ("host", "127.0.0.1:8080");
        let ok = [
            vec![host, ("origin", "http://127.0.0.1:8080")],
            vec![host, ("referer", "http://127.0.0.1:8080/ui/runs/x?y=1")],
            vec![
                ("host", "flows.example"),
                ("origin", "https://FLOWS.example"),
            ],
            vec![
                ("host", "flows.example"),
                ("origin", "http://flows.example:80"),
            ],
        ];
        for h in ok {
            assert_eq!(same_origin(&headers(&h), Strict::Yes), Ok(()), "{h:?}");
        }
        let refused = [
            vec![host, ("origin", "http://evil.example")],
            vec![host, ("origin", "http://127.0.0.1:8081")],
            vec![host, ("origin", "null")],
            vec![host, ("referer", "http://evil.example/127.0.0.1:8080")],
            vec![host, ("origin", "ftp://127.0.0.1:8080")],
            vec![("origin", "http://127.0.0.1:8080")],
            vec![host],
        ];
        for h in refused {
            assert!(same_origin(&headers(&h), Strict::Yes).is_err(), "{h:?}");
        }
        assert_eq!(same_origin(&headers(&[host]), Strict::No), Ok(()));
        let e = same_origin(
            &headers(&[host, ("origin", "http://evil.example")]),
            Strict::No,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "its Origin `http://evil.example` is not this server (127.0.0.1:8080)"
        );
    }

    #[test]
    fn bearer_tokens_are_read_in_any_case() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer(&v("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&v("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&v("Basic abc")), None);
        assert_eq!(bearer(&v("Bearer ")), None);
        assert_eq!(bearer(&v("abc")), None);
    }
}
