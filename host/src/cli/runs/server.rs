//! `flowhost runs ... --server URL`: the same commands through the HTTP API
//! of a running `flowhost serve`.

use std::time::Duration;

use flowhost::RunStatus;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Cancelled, Page, Row, Shown};
use crate::cli::Failure;

/// The environment variable whose token is sent to the server.
const TOKEN_ENV: &str = "FLOWHOST_API_TOKEN";

/// How long one request may take before the command gives up.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A server's base URL: `http://HOST:PORT`.
#[derive(Debug, Clone)]
pub(crate) struct ServerUrl {
    /// `HOST:PORT` (port 80 when the URL has none).
    authority: String,
    /// The URL as given, without a trailing `/`, for messages.
    shown: String,
}

impl std::str::FromStr for ServerUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uri: http::Uri = s.parse().map_err(|_| {
            "expected http://HOST:PORT, for example http://127.0.0.1:8080".to_string()
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "`{other}` is not supported: use http://HOST:PORT (flowhost serve speaks plain HTTP)"
                ));
            }
            None => {
                return Err("expected http://HOST:PORT, for example http://127.0.0.1:8080".into());
            }
        }
        let Some(authority) = uri.authority() else {
            return Err("expected http://HOST:PORT, for example http://127.0.0.1:8080".into());
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err("expected http://HOST:PORT, without a path".into());
        }
        let port = authority.port_u16().unwrap_or(80);
        Ok(ServerUrl {
            authority: format!("{}:{port}", authority.host()),
            shown: s.trim_end_matches('/').to_string(),
        })
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// An answer of the API: its status code and its body.
struct Answer {
    status: u16,
    body: String,
}

/// `{"error": {"message"}}`, the API's refusals.
#[derive(Deserialize)]
struct Refusal {
    error: RefusalBody,
}

#[derive(Deserialize)]
struct RefusalBody {
    message: String,
}

impl ServerUrl {
    /// One request on a fresh connection; a `Some` body is sent as JSON.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<Answer, Failure> {
        let what = format!("{method} {self}{path}");
        tokio::time::timeout(TIMEOUT, self.exchange(method, path, body))
            .await
            .map_err(|_| {
                Failure::usage(format!(
                    "{what} (--server): no answer within {}s",
                    TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| Failure::usage(format!("{what} (--server): {e}")))
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<Answer, String> {
        use http_body_util::{BodyExt, Full};
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONNECTION, "close")
            .header(http::header::CONTENT_TYPE, "application/json");
        // A server that needs a token takes it as a bearer token.
        if let Ok(token) = std::env::var(TOKEN_ENV)
            && !token.trim().is_empty()
        {
            request = request.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.trim()),
            );
        }
        let request = request
            .body(Full::new(bytes::Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("cannot connect: {e}; is `flowhost serve` running there?"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        // Drives the connection; it ends with the exchange.
        tokio::spawn(connection);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// The body of a `2xx` answer; any other is a failure saying what the
    /// server said: exit 1 for a conflict (the run already finished) or a
    /// server that cannot do it now, 2 for a request it refused.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<String, Failure> {
        let answer = self.request(method, path, body).await?;
        if (200..300).contains(&answer.status) {
            return Ok(answer.body);
        }
        let said = serde_json::from_str::<Refusal>(&answer.body)
            .map(|r| r.error.message)
            .unwrap_or_else(|_| answer.body.trim().to_string());
        let message = format!("{self}: {said} ({})", answer.status);
        Err(match answer.status {
            409 | 429 | 500.. => Failure::failed(message),
            _ => Failure::usage(message),
        })
    }

    /// `GET /runs`.
    pub(super) async fn list(&self, query: &super::ListArgs) -> Result<Page, Failure> {
        let mut params = vec![format!("limit={}", query.limit)];
        if let Some(flow) = &query.flow {
            params.push(format!("flow={}", encode(flow)));
        }
        if let Some(status) = query.status {
            params.push(format!("status={status}"));
        }
        if let Some(cursor) = &query.cursor {
            params.push(format!("cursor={}", encode(cursor)));
        }
        let body = self
            .call("GET", &format!("/runs?{}", params.join("&")), None)
            .await?;
        serde_json::from_str(&body).map_err(|e| self.unreadable("GET /runs", e))
    }

    /// `GET /runs/{id}`.
    pub(super) async fn show(&self, run_id: &str) -> Result<Shown, Failure> {
        let path = format!("/runs/{}", encode(run_id));
        let body = self.call("GET", &path, None).await?;
        // A finished run's record has its steps; an unfinished one does not.
        let value: Value =
            serde_json::from_str(&body).map_err(|e| self.unreadable(&format!("GET {path}"), e))?;
        if value.get("steps").is_some() {
            let record = serde_json::from_str(&body)
                .map_err(|e| self.unreadable(&format!("GET {path}"), e))?;
            return Ok(Shown::Finished(Box::new(record)));
        }
        let row: Unfinished = serde_json::from_value(value)
            .map_err(|e| self.unreadable(&format!("GET {path}"), e))?;
        Ok(Shown::Unfinished(Row {
            run_id: row.run_id,
            flow: row.flow,
            status: row.status,
            accepted_at: None,
        }))
    }

    /// `POST /runs/{id}/cancel`.
    pub(super) async fn cancel(&self, run_id: &str) -> Result<Cancelled, Failure> {
        let path = format!("/runs/{}/cancel", encode(run_id));
        let body = self.call("POST", &path, None).await?;
        #[derive(Deserialize)]
        struct Cancelling {
            status: RunStatus,
        }
        let answer: Cancelling =
            serde_json::from_str(&body).map_err(|e| self.unreadable(&format!("POST {path}"), e))?;
        Ok(Cancelled::Cancelling { was: answer.status })
    }

    /// `POST /runs/{id}/rerun`; returns the new run's id.
    pub(super) async fn rerun(
        &self,
        run_id: &str,
        from: Option<&str>,
        input: Option<&str>,
    ) -> Result<String, Failure> {
        let path = format!("/runs/{}/rerun", encode(run_id));
        let mut body = json!({});
        if let Some(from) = from {
            body["from"] = json!(from);
        }
        if let Some(input) = input {
            let input: Value = serde_json::from_str(input)
                .map_err(|e| Failure::usage(format!("--input is not valid JSON: {e}")))?;
            body["input"] = input;
        }
        let answer = self.call("POST", &path, Some(body.to_string())).await?;
        #[derive(Deserialize)]
        struct Started {
            run_id: String,
        }
        let started: Started = serde_json::from_str(&answer)
            .map_err(|e| self.unreadable(&format!("POST {path}"), e))?;
        Ok(started.run_id)
    }

    fn unreadable(&self, what: &str, e: serde_json::Error) -> Failure {
        Failure::failed(format!(
            "{what} at {self}: an answer this flowhost cannot read ({e}); is it a flowhost server of the same version?"
        ))
    }
}

/// An unfinished run as `GET /runs/{id}` answers it.
#[derive(Deserialize)]
struct Unfinished {
    run_id: String,
    flow: String,
    status: RunStatus,
}

/// `text` percent-encoded for a path segment or a query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_http_urls_only_and_says_why_not() {
        let url: ServerUrl = "http://127.0.0.1:8080/".parse().unwrap();
        assert_eq!(
            (url.authority.as_str(), url.to_string().as_str()),
            ("127.0.0.1:8080", "http://127.0.0.1:8080")
        );
        let url: ServerUrl = "http://runs.local".parse().unwrap();
        assert_eq!(url.authority, "runs.local:80");
        let e = "https://x:1".parse::<ServerUrl>().unwrap_err();
        assert!(e.contains("`https` is not supported"), "{e}");
        let e = "127.0.0.1:8080".parse::<ServerUrl>().unwrap_err();
        assert!(e.contains("expected http://HOST:PORT"), "{e}");
        let e = "http://x:1/api".parse::<ServerUrl>().unwrap_err();
        assert!(e.contains("without a path"), "{e}");
    }

    #[test]
    fn encodes_what_a_path_or_query_cannot_hold() {
        assert_eq!(encode("a b/c&d=é"), "a%20b%2Fc%26d%3D%C3%A9");
        assert_eq!(encode("1712.ab-c_d"), "1712.ab-c_d");
    }
}
