//! Prices an order: adds `subtotal`, `discount`, `tax` and `total`, rounded to
//! cents. Every other field is passed on, in order.
//!
//! Config: `{"tax_rate": 0.2, "tier_discounts": {"gold": 0.1}}`, rates as
//! fractions (defaults: no tax, no discounts). The discount applies when the
//! order has a `tier` (see enrich-order) listed in `tier_discounts`.

use std::collections::HashMap;

use flowhost_sdk::{Context, Step, StepError, export_step, log};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct Order {
    items: Vec<Item>,
    #[serde(default)]
    tier: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    qty: u32,
    price: f64,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Config {
    tax_rate: f64,
    tier_discounts: HashMap<String, f64>,
}

struct ComputeTotal;

impl Step for ComputeTotal {
    // The whole document, so that fields this step does not know pass through.
    type Input = Map<String, Value>;
    type Output = Map<String, Value>;

    fn metadata() -> flowhost_sdk::Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, mut doc: Map<String, Value>) -> Result<Map<String, Value>, StepError> {
        let config: Config = ctx.config()?;
        let mut rates =
            std::iter::once(config.tax_rate).chain(config.tier_discounts.values().copied());
        if rates.any(|r| !(0.0..=1.0).contains(&r)) {
            return Err(StepError::invalid_input(
                "rates must be fractions between 0 and 1",
            ));
        }
        let order = Order::deserialize(&Value::Object(doc.clone()))
            .map_err(|e| StepError::invalid_input(format!("not an order: {e}")))?;

        let subtotal = cents(order.items.iter().map(|i| f64::from(i.qty) * i.price).sum());
        let discount_rate = order
            .tier
            .and_then(|t| config.tier_discounts.get(&t).copied())
            .unwrap_or(0.0);
        let discount = cents(subtotal * discount_rate);
        let tax = cents((subtotal - discount) * config.tax_rate);
        let total = cents(subtotal - discount + tax);
        log::info!(
            "subtotal {subtotal:.2}, discount {discount:.2}, tax {tax:.2}, total {total:.2}"
        );
        for (key, value) in [
            ("subtotal", subtotal),
            ("discount", discount),
            ("tax", tax),
            ("total", total),
        ] {
            doc.insert(key.into(), value.into());
        }
        Ok(doc)
    }
}

/// Rounds an amount to cents.
fn cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

export_step!(ComputeTotal);
