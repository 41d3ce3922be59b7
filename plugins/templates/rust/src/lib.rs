//! {{name}}: greets `{"name": "..."}` with `{"greeting": "Hello, ...!"}`.
//! With config `{"database": NAME}` (and the flow granting it), it also runs one query.

use flowhost_sdk::sql::{self, Database};
use flowhost_sdk::{Context, Metadata, Step, StepError, export_step, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Config {
    /// A database the flow grants (`allow: {sql: [NAME]}`); none: no query.
    #[serde(default)]
    database: Option<String>,
}

#[derive(Deserialize, Serialize)]
struct Row {
    name: String,
    letters: i64,
}

#[derive(Serialize)]
struct Output {
    greeting: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<Vec<Row>>,
}

struct Greet;

impl Step for Greet {
    type Input = Input;
    type Output = Output;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, input: Input) -> Result<Output, StepError> {
        if input.name.is_empty() {
            return Err(StepError::invalid_input("name is missing"));
        }
        log::info!("greeting {} (attempt {})", input.name, ctx.attempt());
        let config: Config = ctx.config()?;
        // Parameters are bound (?1 on SQLite, $1 on PostgreSQL), never pasted into the SQL.
        let rows = match config.database {
            Some(db) => Some(Database::new(db).query(
                "select ?1 as name, length(?1) as letters",
                &sql::params![input.name.as_str()],
            )?),
            None => None,
        };
        Ok(Output {
            greeting: format!("Hello, {}!", input.name),
            rows,
        })
    }
}

export_step!(Greet);
