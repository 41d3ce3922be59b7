//! Reads an order back from a SQL database: input `{id}`, output
//! `{id, customer, items: [{sku, qty, price}], total}`. An unknown id is
//! `invalid-input`.
//!
//! Config: `{"database": NAME}` (default `orders`); the flow must grant it.

use flowhost_sdk::sql::{self, Database};
use flowhost_sdk::{Context, Step, StepError, export_step};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    id: String,
}

#[derive(Deserialize)]
struct OrderRow {
    id: String,
    customer: String,
}

#[derive(Deserialize, Serialize)]
struct Line {
    sku: String,
    qty: i64,
    price: f64,
}

#[derive(Serialize)]
struct Order {
    id: String,
    customer: String,
    items: Vec<Line>,
    total: f64,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    database: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database: "orders".into(),
        }
    }
}

struct LoadOrder;

impl Step for LoadOrder {
    type Input = Input;
    type Output = Order;

    fn metadata() -> flowhost_sdk::Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, input: Input) -> Result<Order, StepError> {
        let config: Config = ctx.config()?;
        let db = Database::new(&config.database);
        let id = sql::params![input.id.as_str()];
        let Some(row) = db
            .query::<OrderRow>("select id, customer from orders where id = $1", &id)?
            .into_iter()
            .next()
        else {
            return Err(StepError::invalid_input(format!("no order '{}'", input.id)));
        };
        let items: Vec<Line> = db.query(
            "select sku, qty, price from order_lines where order_id = $1 order by line",
            &id,
        )?;
        let total = items.iter().map(|l| l.qty as f64 * l.price).sum();
        Ok(Order {
            id: row.id,
            customer: row.customer,
            items,
            total,
        })
    }
}

export_step!(LoadOrder);
