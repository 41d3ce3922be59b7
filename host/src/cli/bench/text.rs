//! The figures as text for a terminal.

use std::fmt::Write;

use super::figures::Figures;

/// The figures, a block of lines ending in a newline.
pub(crate) fn render(f: &Figures) -> String {
    let mut out = String::new();
    let stopped = if f.interrupted {
        format!(
            ", stopped by Ctrl-C ({} in flight cancelled, not counted)",
            f.cancelled_in_flight
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "flow `{}`: {} runs in {:.2} s at concurrency {}, after {} warm-up runs{stopped}",
        f.flow, f.runs, f.elapsed_s, f.concurrency, f.warmup_runs
    );
    let _ = writeln!(out, "throughput   {:.1} runs/s", f.throughput_per_s);
    let l = &f.latency_ms;
    let _ = writeln!(
        out,
        "latency      p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        l.p50, l.p90, l.p99, l.max
    );
    if f.failures.is_empty() {
        let _ = writeln!(out, "failures     none");
    } else {
        let _ = writeln!(out, "failures     {} of {} runs", f.failed, f.runs);
        for failure in &f.failures {
            let _ = writeln!(
                out,
                "  {:<16} {:>8}   e.g. {}",
                failure.kind.as_str(),
                failure.runs,
                failure.example
            );
        }
    }
    if f.steps.is_empty() {
        return out;
    }
    let width = f
        .steps
        .iter()
        .map(|s| s.path.chars().count())
        .max()
        .unwrap_or(0)
        .max("step".len());
    let _ = writeln!(
        out,
        "\n{:<width$}  {:>8}  {:>7}  {:>10}  {:>12}  {:>10}",
        "step", "count", "failed", "p50 ms", "p50 fuel", "p50 memory"
    );
    for s in &f.steps {
        let fuel = s
            .fuel_p50
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        let memory = s.peak_memory_p50.map_or_else(|| "-".to_string(), size);
        let _ = writeln!(
            out,
            "{:<width$}  {:>8}  {:>7}  {:>10.2}  {:>12}  {:>10}",
            s.path, s.count, s.failed, s.duration_ms_p50, fuel, memory
        );
    }
    out
}

/// `1.1 MiB`, `64.0 KiB`, `512 B`.
fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(64 << 10), "64.0 KiB");
        assert_eq!(size(1_153_434), "1.1 MiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }
}
