//! Turns a priced order (see compute-total) into `{"message": "..."}` for the
//! customer.
//!
//! Config: `{"currency": "EUR"}` (default "USD").

use flowhost_sdk::{Context, Step, StepError, export_step, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Order {
    id: String,
    customer: String,
    total: f64,
    /// Set by enrich-order; otherwise counted from `items`.
    item_count: Option<u64>,
    #[serde(default)]
    items: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct Notification {
    message: String,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    currency: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            currency: "USD".into(),
        }
    }
}

struct FormatNotification;

impl Step for FormatNotification {
    type Input = Order;
    type Output = Notification;

    fn metadata() -> flowhost_sdk::Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, order: Order) -> Result<Notification, StepError> {
        let config: Config = ctx.config()?;
        let count = order.item_count.unwrap_or(order.items.len() as u64);
        let plural = if count == 1 { "" } else { "s" };
        let message = format!(
            "Hi {}, your order {} ({count} item{plural}) is confirmed. Total: {:.2} {}.",
            order.customer, order.id, order.total, config.currency
        );
        log::info!("notification ready for {}", order.customer);
        Ok(Notification { message })
    }
}

export_step!(FormatNotification);
