//! The WIT `kv` interface, as a call's guest sees it.

use crate::runtime::bindings::flowhost::step::kv::{self, Error};
use crate::runtime::state::StepState;

fn todo() -> Error {
    Error::Denied("not built yet".into())
}

impl kv::Host for StepState {
    async fn get(&mut self, _ns: String, _key: String) -> Result<Option<String>, Error> {
        Err(todo())
    }
    async fn set(
        &mut self,
        _ns: String,
        _key: String,
        _value: String,
        _ttl_ms: Option<u64>,
    ) -> Result<(), Error> {
        Err(todo())
    }
    async fn delete(&mut self, _ns: String, _key: String) -> Result<bool, Error> {
        Err(todo())
    }
    async fn increment(&mut self, _ns: String, _key: String, _delta: i64) -> Result<i64, Error> {
        Err(todo())
    }
    async fn compare_and_swap(
        &mut self,
        _ns: String,
        _key: String,
        _expected: Option<String>,
        _value: String,
    ) -> Result<bool, Error> {
        Err(todo())
    }
}
