//! Checks an order `{id, customer, items: [{sku, qty, price}]}` and passes it
//! on unchanged. A bad order is `invalid-input` listing every problem found.
//!
//! Config: `{"strict": bool}` (default false). Strict mode also rejects
//! unknown fields, free items and repeated SKUs.

use flowhost_sdk::{Context, Step, StepError, export_step, log};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Deserialize, Serialize)]
struct Order {
    id: String,
    customer: String,
    items: Vec<Item>,
    /// Fields this step does not know: passed on, or rejected when strict.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize, Serialize)]
struct Item {
    sku: String,
    qty: u32,
    price: f64,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Config {
    strict: bool,
}

struct ValidateOrder;

impl Step for ValidateOrder {
    type Input = Order;
    type Output = Order;

    fn metadata() -> flowhost_sdk::Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, order: Order) -> Result<Order, StepError> {
        let config: Config = ctx.config()?;
        let problems = problems(&order, config.strict);
        if !problems.is_empty() {
            return Err(StepError::invalid_input(format!(
                "order '{}' is invalid: {}",
                order.id,
                problems.join("; ")
            )));
        }
        log::info!("order {} is valid: {} line(s)", order.id, order.items.len());
        Ok(order)
    }
}

/// Every rule the order breaks, in reading order.
fn problems(order: &Order, strict: bool) -> Vec<String> {
    let mut out = Vec::new();
    if order.id.trim().is_empty() {
        out.push("id is empty".to_string());
    }
    if order.customer.trim().is_empty() {
        out.push("customer is empty".to_string());
    }
    if order.items.is_empty() {
        out.push("items is empty".to_string());
    }
    if strict && !order.extra.is_empty() {
        out.push(format!("unknown fields: {}", keys(&order.extra)));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, item) in order.items.iter().enumerate() {
        if item.sku.trim().is_empty() {
            out.push(format!("items[{i}].sku is empty"));
        }
        if item.qty == 0 {
            out.push(format!("items[{i}].qty must be at least 1"));
        }
        if !item.price.is_finite() || item.price < 0.0 {
            out.push(format!("items[{i}].price must not be negative"));
        }
        if strict {
            if item.price == 0.0 {
                out.push(format!("items[{i}].price must be positive"));
            }
            if !item.extra.is_empty() {
                out.push(format!(
                    "items[{i}] has unknown fields: {}",
                    keys(&item.extra)
                ));
            }
            if !seen.insert(item.sku.as_str()) {
                out.push(format!("items[{i}].sku '{}' is repeated", item.sku));
            }
        }
    }
    out
}

fn keys(map: &Map<String, Value>) -> String {
    map.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

export_step!(ValidateOrder);
