//! Fetches URLs with `flowhost_sdk::http` and returns each answer in order:
//! `{"answers": [{"status": 200, "body": "..."} | {"error": "..."}]}`.
//! Tests the host's connection pool and concurrent requests from one step.
//!
//! Input: `{"urls": ["http://host:port/path", ...], "all_at_once": true,
//! "timeout_ms": 200}`; with `all_at_once` false (the default) the requests
//! go one after another; `timeout_ms` sets each request's timeouts.

use flowhost_sdk::http::{self, Request};
use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Deserialize)]
struct Input {
    urls: Vec<String>,
    #[serde(default)]
    all_at_once: bool,
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct Output {
    answers: Vec<Answer>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Ok { status: u16, body: String },
    Err { error: String },
}

struct HttpFetch;

impl Step for HttpFetch {
    type Input = Input;
    type Output = Output;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, input: Input) -> Result<Output, StepError> {
        let requests: Vec<Request> = input
            .urls
            .into_iter()
            .map(|url| match input.timeout_ms {
                Some(ms) => Request::get(url).timeout(Duration::from_millis(ms)),
                None => Request::get(url),
            })
            .collect();
        let results = if input.all_at_once {
            http::send_all(requests)
        } else {
            requests.into_iter().map(http::send).collect()
        };
        let answers = results
            .into_iter()
            .map(|r| match r {
                Ok(response) => Answer::Ok {
                    status: response.status,
                    body: response.text(),
                },
                Err(e) => Answer::Err {
                    error: e.to_string(),
                },
            })
            .collect();
        Ok(Output { answers })
    }
}

export_step!(HttpFetch);
