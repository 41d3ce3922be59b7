//! Adds derived fields to an order: `item_count` (sum of quantities) and the
//! customer's `tier`. Every other field is passed on, in order.
//!
//! Config: `{"tiers": {"<customer>": "<tier>"}}` names tiers for known
//! customers; anyone else gets a tier from the order's size: 10 items or more
//! is "gold", 5 or more "silver", otherwise "bronze".

use std::collections::HashMap;

use flowhost_sdk::{Context, Step, StepError, export_step, log};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct Order {
    customer: String,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    qty: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Config {
    tiers: HashMap<String, String>,
}

struct EnrichOrder;

impl Step for EnrichOrder {
    // The whole document, so that fields this step does not know pass through.
    type Input = Map<String, Value>;
    type Output = Map<String, Value>;

    fn metadata() -> flowhost_sdk::Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, mut doc: Map<String, Value>) -> Result<Map<String, Value>, StepError> {
        let config: Config = ctx.config()?;
        let order = Order::deserialize(&Value::Object(doc.clone()))
            .map_err(|e| StepError::invalid_input(format!("not an order: {e}")))?;
        let item_count: u64 = order.items.iter().map(|i| u64::from(i.qty)).sum();
        let tier = match config.tiers.get(&order.customer) {
            Some(tier) => tier.clone(),
            None if item_count >= 10 => "gold".into(),
            None if item_count >= 5 => "silver".into(),
            None => "bronze".into(),
        };
        log::info!(
            "customer {} is {tier}, {item_count} item(s)",
            order.customer
        );
        doc.insert("item_count".into(), item_count.into());
        doc.insert("tier".into(), tier.into());
        Ok(doc)
    }
}

export_step!(EnrichOrder);
