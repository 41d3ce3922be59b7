//! The memory and table cap of one call.
//!
//! Growth past the cap traps at once with [`MemoryLimitExceeded`], so the
//! failure is typed (`memory`) rather than whatever the guest does when an
//! allocation fails.

use wasmtime::ResourceLimiter;

/// Raised (as the trap's error) when a call asks for more memory than allowed.
#[derive(Debug, thiserror::Error)]
#[error("{what} limit of {limit} exceeded: the guest asked for {requested}")]
pub(crate) struct MemoryLimitExceeded {
    what: &'static str,
    limit: String,
    requested: String,
}

pub(crate) struct Limiter {
    max_memory: usize,
    max_table_elements: usize,
    max_instances: usize,
    /// Linear memory in use, summed over the instance's memories.
    memory_in_use: usize,
    /// The most `memory_in_use` has been.
    peak: usize,
}

impl Limiter {
    pub(crate) fn new(max_memory: u64, max_table_elements: u32, max_instances: u32) -> Self {
        Limiter {
            max_memory: usize::try_from(max_memory).unwrap_or(usize::MAX),
            max_table_elements: max_table_elements as usize,
            max_instances: max_instances as usize,
            memory_in_use: 0,
            peak: 0,
        }
    }

    /// The largest linear memory the instance has had, in bytes.
    pub(crate) fn peak(&self) -> u64 {
        self.peak as u64
    }
}

fn bytes(n: usize) -> String {
    bytesize::ByteSize(n as u64).display().iec().to_string()
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_in_use - current.min(self.memory_in_use) + desired;
        if total > self.max_memory {
            return Err(MemoryLimitExceeded {
                what: "memory",
                limit: bytes(self.max_memory),
                requested: bytes(total),
            }
            .into());
        }
        self.memory_in_use = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            return Err(MemoryLimitExceeded {
                what: "table",
                limit: format!("{} elements", self.max_table_elements),
                requested: format!("{desired} elements"),
            }
            .into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_instances
    }

    fn memories(&self) -> usize {
        self.max_instances
    }
}
