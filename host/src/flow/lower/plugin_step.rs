//! A plugin step's own fields: config, retry, circuit breaker, fallback,
//! grants, limits and whether it is safe to replay.

use super::exprs::Scope;
use super::{Cx, Fields};
use crate::ErrorKind;
use crate::error::words;
use crate::flow::model::{CircuitBreaker, Jitter, LimitOverrides, PluginStep, RetryPolicy};
use crate::flow::yaml::{Kind, Node};
use crate::{DirGrant, DirMode, Grants, HttpGrant, Limits};

const RETRY_FIELDS: &[&str] = &[
    "max_attempts",
    "initial_interval",
    "backoff_coefficient",
    "max_interval",
    "jitter",
    "non_retryable",
    "retry_on",
];

impl Cx<'_> {
    pub(super) fn plugin_step(&mut self, fields: &Fields<'_>, scope: Scope) -> Option<PluginStep> {
        let plugin = fields.get("plugin").and_then(|n| self.plugin_name(n));
        let config = fields.get("config").map(Node::to_json).unwrap_or_default();
        let retry = match fields.get("retry") {
            Some(n) => self.retry(n),
            None => Some(RetryPolicy::default()),
        };
        let circuit_breaker = fields.get("circuit_breaker").and_then(|n| {
            let f = self.fields(
                n,
                "`circuit_breaker`",
                &["failure_threshold", "reset_timeout"],
            )?;
            let mut cb = CircuitBreaker::default();
            if let Some(n) = f.get("failure_threshold") {
                cb.failure_threshold = self
                    .integer(n, "failure_threshold", 1)?
                    .min(u32::MAX as u64) as u32;
            }
            if let Some(n) = f.get("reset_timeout") {
                cb.reset_timeout = self.timeout(n, "reset_timeout")?;
            }
            Some(cb)
        });
        let fallback = fields.get("fallback").and_then(|n| {
            let scope = Scope {
                error: true,
                ..scope
            };
            self.call(n, "`fallback`", scope)
        });
        let grants = match fields.get("allow") {
            Some(n) => self.grants(n),
            None => Some(Grants::default()),
        };
        let limits = match fields.get("limits") {
            Some(n) => self.limits(n),
            None => Some(LimitOverrides::default()),
        };
        let replay_safe = match fields.get("replay") {
            Some(n) => self.replay_safe(n),
            None => Some(false),
        };
        Some(PluginStep {
            plugin: plugin?,
            config,
            retry: retry?,
            circuit_breaker,
            fallback,
            grants: grants?,
            limits: limits?,
            replay_safe: replay_safe?,
        })
    }

    /// `replay: safe`: `flowhost replay` and the serve-side replay gate may
    /// call the step with its grants.
    fn replay_safe(&mut self, node: &Node) -> Option<bool> {
        match &node.kind {
            Kind::Str(s) if s == "safe" => Some(true),
            _ => {
                let text = node
                    .scalar_text()
                    .unwrap_or_else(|| node.describe().to_string());
                self.err(
                    node.pos,
                    format!("invalid `replay` value `{text}`: expected safe"),
                );
                None
            }
        }
    }

    pub(super) fn retry(&mut self, node: &Node) -> Option<RetryPolicy> {
        let f = self.fields(node, "`retry`", RETRY_FIELDS)?;
        let mut p = RetryPolicy::block_default();
        let mut ok = true;
        if let Some(n) = f.get("max_attempts") {
            match self.integer(n, "max_attempts", 1) {
                Some(v) => p.max_attempts = v.min(u32::MAX as u64) as u32,
                None => ok = false,
            }
        }
        if let Some(n) = f.get("initial_interval") {
            match self.duration(n, "initial_interval") {
                Some(v) => p.initial_interval = v,
                None => ok = false,
            }
        }
        if let Some(n) = f.get("max_interval") {
            match self.duration(n, "max_interval") {
                Some(v) => p.max_interval = v,
                None => ok = false,
            }
        }
        if let Some(n) = f.get("backoff_coefficient") {
            match self.number(n, "backoff_coefficient") {
                Some(v) if v >= 1.0 && v.is_finite() => p.backoff_coefficient = v,
                Some(_) => {
                    self.err(n.pos, "`backoff_coefficient` must be at least 1.0");
                    ok = false;
                }
                None => ok = false,
            }
        }
        if let Some(n) = f.get("jitter") {
            match n.kind {
                Kind::Str(ref s) if s == "none" => p.jitter = Jitter::None,
                Kind::Str(ref s) if s == "full" => p.jitter = Jitter::Full,
                Kind::Str(ref s) if s == "equal" => p.jitter = Jitter::Equal,
                _ => {
                    let text = n.scalar_text().unwrap_or_else(|| n.describe().to_string());
                    self.err(
                        n.pos,
                        format!("invalid jitter `{text}`: expected none, full or equal"),
                    );
                    ok = false;
                }
            }
        }
        for (field, slot) in [("non_retryable", 0), ("retry_on", 1)] {
            let Some(n) = f.get(field) else { continue };
            let Some(items) = self.list(n, field) else {
                ok = false;
                continue;
            };
            let mut kinds = Vec::new();
            for item in items {
                let kind = match &item.kind {
                    Kind::Str(s) => s.parse::<ErrorKind>().ok(),
                    _ => None,
                };
                match kind.filter(|k| RetryPolicy::accepts(*k)) {
                    Some(kind) => kinds.push(kind),
                    None => {
                        let text = item
                            .scalar_text()
                            .unwrap_or_else(|| item.describe().to_string());
                        let accepted: Vec<_> = ErrorKind::ALL
                            .iter()
                            .copied()
                            .filter(|k| RetryPolicy::accepts(*k))
                            .collect();
                        self.err(
                            item.pos,
                            format!(
                                "unknown error kind `{text}` in `{field}`; expected one of: {}",
                                words(&accepted)
                            ),
                        );
                        ok = false;
                    }
                }
            }
            if slot == 0 {
                p.non_retryable = kinds;
            } else {
                p.retry_on = Some(kinds);
            }
        }
        ok.then_some(p)
    }

    pub(super) fn grants(&mut self, node: &Node) -> Option<Grants> {
        let f = self.fields(node, "`allow`", &["dirs", "env", "http", "sql", "kv"])?;
        let mut grants = Grants::default();
        if let Some(n) = f.get("dirs") {
            for item in self.list(n, "dirs")? {
                let Some(d) = self.fields(item, "a directory grant", &["host", "guest", "mode"])
                else {
                    continue;
                };
                let Some(host) = self
                    .required(&d, "host", "a directory grant", item.pos)
                    .and_then(|n| self.string(n, "host"))
                else {
                    continue;
                };
                let guest = d.get("guest").and_then(|n| self.string(n, "guest"));
                let mode = match d.get("mode") {
                    None => DirMode::Ro,
                    Some(n) => match &n.kind {
                        Kind::Str(s) if s == "ro" => DirMode::Ro,
                        Kind::Str(s) if s == "rw" => DirMode::Rw,
                        _ => {
                            let text = n.scalar_text().unwrap_or_else(|| n.describe().to_string());
                            self.err(n.pos, format!("invalid mode `{text}`: expected ro or rw"));
                            continue;
                        }
                    },
                };
                grants.dirs.push(DirGrant {
                    host: host.into(),
                    guest,
                    mode,
                });
            }
        }
        if let Some(n) = f.get("env") {
            grants.env = self.strings(n, "env");
        }
        if let Some(n) = f.get("http") {
            // Checked here, so a grant that could never match is a load error.
            for item in self.list(n, "http").unwrap_or_default() {
                let Some(text) = self.string(item, "http") else {
                    continue;
                };
                match text.parse::<HttpGrant>() {
                    Ok(grant) => {
                        if let Some(warning) = grant.loopback_warning() {
                            self.warn(item.pos, &warning);
                        }
                        grants.http.push(grant);
                    }
                    Err(e) => self.err(item.pos, e.to_string()),
                }
            }
        }
        if let Some(n) = f.get("sql") {
            grants.sql = self.strings(n, "sql");
        }
        if let Some(n) = f.get("kv") {
            for item in self.list(n, "kv").unwrap_or_default() {
                let Some(name) = self.string(item, "kv") else {
                    continue;
                };
                match crate::kv::check_namespace(&name) {
                    Ok(()) => grants.kv.push(name),
                    Err(why) => self.err(item.pos, why),
                }
            }
        }
        Some(grants)
    }

    pub(super) fn limits(&mut self, node: &Node) -> Option<LimitOverrides> {
        let f = self.fields(node, "`limits`", &["fuel", "memory"])?;
        // Both fields are read before giving up, so each error is reported.
        let fuel = f.get("fuel").map(|n| self.integer(n, "fuel", 1));
        let memory = f.get("memory").map(|n| {
            let size = self.size(n, "memory")?;
            if size < Limits::MIN_MEMORY {
                self.err(
                    n.pos,
                    "`memory` must be at least 64KiB (one WebAssembly page)",
                );
                return None;
            }
            Some(size)
        });
        Some(LimitOverrides {
            fuel: fuel.map_or(Some(None), |v| v.map(Some))?,
            max_memory: memory.map_or(Some(None), |v| v.map(Some))?,
        })
    }
}
