//! The rows the SQL backends keep: a run, a journal entry and a finished
//! record, serialised once on the caller's side (so that a writer spends its
//! time on the database alone), and a run decoded from its columns.

use std::time::SystemTime;

use serde_json::value::RawValue;

use super::{NewRun, StepEntry, StoreError, unix_ms};
use crate::executor::{RunRecord, RunStatus};

/// The columns a run is read from, in [`RunColumns`]' order; a backend may
/// select more after them.
pub(crate) const RUN_COLUMNS: &str = "run_id, flow, flow_version, plugins, input, accepted_ms, \
                                      idempotency_key, derived_from, hop, started_ms";

/// How many columns [`RUN_COLUMNS`] names: the index of the first one after.
pub(crate) const RUN_COLUMN_COUNT: usize = 10;

/// A run to insert, serialised.
#[derive(Debug)]
pub(crate) struct RunRow {
    pub(crate) run_id: String,
    pub(crate) flow: String,
    pub(crate) flow_version: String,
    /// JSON object: plugin name → content hash.
    pub(crate) plugins: String,
    /// The input's JSON text, as it arrived.
    pub(crate) input: Box<str>,
    pub(crate) accepted_ms: i64,
    pub(crate) idempotency_key: Option<String>,
    /// JSON of a [`DerivedFrom`](crate::store::DerivedFrom).
    pub(crate) derived_from: Option<String>,
    /// Its event hop count.
    pub(crate) hop: i64,
}

impl RunRow {
    /// Runs being accepted, serialised.
    pub(crate) fn all(runs: Vec<NewRun>) -> Result<Vec<RunRow>, StoreError> {
        runs.into_iter()
            .map(|run| {
                Ok(RunRow {
                    plugins: to_json("plugins", &run.plugins)?,
                    derived_from: run
                        .derived_from
                        .as_ref()
                        .map(|d| to_json("derived_from", d))
                        .transpose()?,
                    accepted_ms: unix_ms::from(run.accepted_at),
                    input: run.input.into(),
                    run_id: run.run_id,
                    flow: run.flow,
                    flow_version: run.flow_version,
                    idempotency_key: run.idempotency_key,
                    hop: i64::from(run.hop),
                })
            })
            .collect()
    }
}

/// A journal entry to write, serialised.
#[derive(Debug)]
pub(crate) struct StepRow {
    pub(crate) run_id: String,
    pub(crate) path: String,
    /// JSON of the [`StepEntry`] without its output.
    pub(crate) entry: String,
    pub(crate) output: Option<Box<str>>,
}

impl StepRow {
    /// `entry` of `run_id`, serialised, its output kept beside as it is.
    pub(crate) fn new(run_id: &str, mut entry: StepEntry) -> Result<StepRow, StoreError> {
        let output = entry.output.take().map(Into::into);
        Ok(StepRow {
            run_id: run_id.to_string(),
            entry: to_json("a journal entry", &entry)?,
            path: entry.path,
            output,
        })
    }
}

/// A finished run's record, serialised.
#[derive(Debug)]
pub(crate) struct FinishRow {
    pub(crate) run_id: String,
    pub(crate) status: RunStatus,
    /// JSON of the [`RunRecord`] without its output.
    pub(crate) record: String,
    pub(crate) output: Option<Box<str>>,
    /// When it was stored, on this process's clock.
    pub(crate) finished_ms: i64,
}

impl FinishRow {
    /// `record` serialised, its output kept beside as it is.
    pub(crate) fn new(record: &RunRecord) -> Result<FinishRow, StoreError> {
        let mut kept = record.clone();
        let output = kept.output.take().map(Into::into);
        Ok(FinishRow {
            run_id: kept.run_id.clone(),
            status: kept.status,
            record: to_json("a run record", &kept)?,
            output,
            finished_ms: unix_ms::from(SystemTime::now()),
        })
    }
}

pub(crate) fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("cannot serialise {what}: {e}")))
}

/// A run's columns ([`RUN_COLUMNS`]) as a backend read them.
#[derive(Debug)]
pub(crate) struct RunColumns {
    pub(crate) run_id: String,
    pub(crate) flow: String,
    pub(crate) flow_version: String,
    pub(crate) plugins: String,
    pub(crate) input: String,
    pub(crate) accepted_ms: i64,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) derived_from: Option<String>,
    pub(crate) hop: i64,
    pub(crate) started_ms: Option<i64>,
}

impl RunColumns {
    /// The run as accepted, and when it started; `store` names the store in
    /// the error of a row that does not decode (changed by hand, damaged).
    pub(crate) fn decode(self, store: &str) -> Result<(NewRun, Option<i64>), StoreError> {
        let run_id = self.run_id;
        let damaged = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Backend(format!(
                "{store}: run {run_id}: its stored {what} cannot be read: {e}"
            ))
        };
        let plugins = serde_json::from_str(&self.plugins).map_err(|e| damaged("plugins", &e))?;
        let input = RawValue::from_string(self.input).map_err(|e| damaged("input", &e))?;
        let derived_from = self
            .derived_from
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(|e| damaged("derived_from", &e))?;
        let hop = u32::try_from(self.hop).map_err(|e| damaged("hop", &e))?;
        let new = NewRun {
            flow: self.flow,
            flow_version: self.flow_version,
            plugins,
            input,
            accepted_at: unix_ms::to(self.accepted_ms),
            idempotency_key: self.idempotency_key,
            derived_from,
            hop,
            run_id,
        };
        Ok((new, self.started_ms))
    }
}
