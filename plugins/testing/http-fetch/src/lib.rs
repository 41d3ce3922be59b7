//! Fetches URLs with `flowhost_sdk::http` and returns each answer in order:
//! `{"answers": [{"status": 200, "body": "..."} | {"error": "..."}]}`.
//! Tests the host's connection pool and concurrent requests from one step.
//!
//! Input: `{"urls": ["http://host:port/path", ...], "all_at_once": true}`;
//! with `all_at_once` false (the default) the requests go one after another.

use flowhost_sdk::http::{self, Request};
use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    urls: Vec<String>,
    #[serde(default)]
    all_at_once: bool,
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
        let requests: Vec<Request> = input.urls.into_iter().map(Request::get).collect();
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
