//! Saves a validated order `{id, customer, items: [{sku, qty, price}]}` to a
//! SQL database in one transaction: the order row and every line, or nothing.
//! Creates the tables on first use. Returns `{id, lines}`.
//!
//! Saving is idempotent: saving an order again (a retry, a run resumed
//! after a crash) replaces it, lines included, so it is never saved twice.
//!
//! Config: `{"database": NAME}` (default `orders`); the flow must grant it
//! (`allow: {sql: [NAME]}`).

use flowhost_sdk::sql::{self, Database};
use flowhost_sdk::{Context, Step, StepError, export_step, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Order {
    id: String,
    customer: String,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    sku: String,
    qty: u32,
    price: f64,
}

#[derive(Serialize)]
struct Saved {
    id: String,
    lines: usize,
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

/// Portable DDL: SQLite and PostgreSQL both accept it.
const SCHEMA: [&str; 2] = [
    "create table if not exists orders (id text primary key, customer text not null)",
    "create table if not exists order_lines (order_id text not null references orders(id), \
     line integer not null, sku text not null, qty integer not null, price double precision not null, \
     primary key (order_id, line))",
];

struct SaveOrder;

impl Step for SaveOrder {
    type Input = Order;
    type Output = Saved;

    fn metadata() -> flowhost_sdk::Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, order: Order) -> Result<Saved, StepError> {
        let config: Config = ctx.config()?;
        let db = Database::new(&config.database);
        let schema: Vec<(&str, &[sql::Value])> = SCHEMA.iter().map(|s| (*s, &[][..])).collect();
        db.batch(&schema)?;
        let tx = db.transaction()?;
        tx.execute(
            "insert into orders (id, customer) values ($1, $2) \
             on conflict (id) do update set customer = excluded.customer",
            &sql::params![order.id.as_str(), order.customer.as_str()],
        )?;
        tx.execute(
            "delete from order_lines where order_id = $1",
            &sql::params![order.id.as_str()],
        )?;
        for (line, item) in order.items.iter().enumerate() {
            tx.execute(
                "insert into order_lines (order_id, line, sku, qty, price) values ($1, $2, $3, $4, $5)",
                &sql::params![order.id.as_str(), line as i64, item.sku.as_str(), item.qty, item.price],
            )?;
        }
        tx.commit()?;
        log::info!(
            "order {} saved with {} line(s)",
            order.id,
            order.items.len()
        );
        Ok(Saved {
            id: order.id,
            lines: order.items.len(),
        })
    }
}

export_step!(SaveOrder);
