//! The WIT `kv` interface, as a call's guest sees it: every operation checks
//! the namespace against the call's grants and the key, value and TTL
//! against their caps, then goes to the host's [`KvStore`]. Every failure is
//! a typed error the guest sees, never a trap.

use std::sync::Arc;

use super::{KvError, KvStore, check_key, check_value, ttl};
use crate::printable::printable;
use crate::runtime::bindings::flowhost::step::kv::{self, Error};
use crate::runtime::state::StepState;

/// How much of a guest's namespace a message or a log line shows.
const SHOWN: usize = 80;

fn shown(namespace: &str) -> String {
    let text = printable(namespace);
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.into_owned(),
    }
}

impl StepState {
    /// The key-value store, if this call may use `namespace`; a denial is logged.
    fn kv_for(&self, namespace: &str) -> Result<Arc<dyn KvStore>, Error> {
        if !self.grants.kv.iter().any(|g| g == namespace) {
            let ns = shown(namespace);
            tracing::warn!(target: "flowhost::sandbox", step = %self.ctx.step_id, namespace = %ns,
                "denied key-value access: namespace not in the step's `kv` grant");
            return Err(Error::Denied(format!(
                "key-value namespace `{ns}` is not granted to step `{}` (grant it with `allow: {{kv: [{ns}]}}`)",
                self.ctx.step_id
            )));
        }
        self.services.kv.clone().ok_or_else(|| {
            Error::Unavailable(format!(
                "namespace `{}`: this host has no key-value store",
                shown(namespace)
            ))
        })
    }
}

/// A backend's error as the guest sees it, naming the namespace.
fn guest_error(namespace: &str, e: KvError) -> Error {
    let ns = shown(namespace);
    match e {
        KvError::Invalid(why) => Error::Invalid(format!("namespace `{ns}`: {why}")),
        KvError::Unavailable(why) => {
            tracing::warn!(target: "flowhost::kv", namespace = %ns, "key-value store unavailable: {why}");
            Error::Unavailable(format!("namespace `{ns}`: {why}"))
        }
    }
}

impl kv::Host for StepState {
    async fn get(&mut self, ns: String, key: String) -> Result<Option<String>, Error> {
        let store = self.kv_for(&ns)?;
        check_key(&key).map_err(|e| guest_error(&ns, e))?;
        store.get(&ns, &key).await.map_err(|e| guest_error(&ns, e))
    }

    async fn set(
        &mut self,
        ns: String,
        key: String,
        value: String,
        ttl_ms: Option<u64>,
    ) -> Result<(), Error> {
        let store = self.kv_for(&ns)?;
        check_key(&key).map_err(|e| guest_error(&ns, e))?;
        check_value(&value).map_err(|e| guest_error(&ns, e))?;
        let ttl = ttl_ms
            .map(ttl)
            .transpose()
            .map_err(|e| guest_error(&ns, e))?;
        store
            .set(&ns, &key, &value, ttl)
            .await
            .map_err(|e| guest_error(&ns, e))
    }

    async fn delete(&mut self, ns: String, key: String) -> Result<bool, Error> {
        let store = self.kv_for(&ns)?;
        check_key(&key).map_err(|e| guest_error(&ns, e))?;
        store
            .delete(&ns, &key)
            .await
            .map_err(|e| guest_error(&ns, e))
    }

    async fn increment(&mut self, ns: String, key: String, delta: i64) -> Result<i64, Error> {
        let store = self.kv_for(&ns)?;
        check_key(&key).map_err(|e| guest_error(&ns, e))?;
        store
            .increment(&ns, &key, delta)
            .await
            .map_err(|e| guest_error(&ns, e))
    }

    async fn compare_and_swap(
        &mut self,
        ns: String,
        key: String,
        expected: Option<String>,
        value: String,
    ) -> Result<bool, Error> {
        let store = self.kv_for(&ns)?;
        check_key(&key).map_err(|e| guest_error(&ns, e))?;
        check_value(&value).map_err(|e| guest_error(&ns, e))?;
        store
            .compare_and_swap(&ns, &key, expected.as_deref(), &value)
            .await
            .map_err(|e| guest_error(&ns, e))
    }
}
