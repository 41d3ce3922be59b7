//! `flowhost serve` as a child process: started on a store, killed (SIGKILL)
//! when dropped, with the CPU time it used.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `flowhost serve`.
pub(crate) struct Served {
    child: Child,
    pub(crate) addr: SocketAddr,
}

/// What a served process runs on.
pub(crate) struct ServeOptions<'a> {
    /// Holds `plugins/`, `flows/`, and gets a `cache/` and `server-N.toml`.
    pub(crate) dir: &'a Path,
    /// `--store`.
    pub(crate) store: &'a str,
    /// `workers` of the server.
    pub(crate) workers: usize,
    /// `--lease`, for a shared store.
    pub(crate) lease: Option<&'a str>,
}

impl Served {
    /// Starts the benchmarked build's `flowhost serve` and waits for its
    /// `listening on` line; panics with its stderr without it.
    pub(crate) fn start(o: &ServeOptions<'_>) -> Served {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let config = o.dir.join(format!("server-{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "workers = {}\nqueue_capacity = 1000\ndrain_timeout = \"1s\"\n",
                o.workers
            ),
        )
        .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowhost"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(o.dir.join("plugins"))
            .arg("--flows")
            .arg(o.dir.join("flows"))
            .arg("--config")
            .arg(&config)
            .args(["--store", o.store])
            .arg("--cache-dir")
            .arg(o.dir.join("cache"))
            .env("FLOWHOST_LOG", "warn")
            .env("FLOWHOST_DATA_DIR", o.dir.join(format!("data-{n}")))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(lease) = o.lease {
            cmd.args(["--lease", lease]);
        }
        let mut child = cmd.spawn().expect("spawn flowhost serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                // Keep draining after the start line, so the child never
                // blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => match line.strip_prefix("flowhost: listening on http://") {
                    Some(a) => {
                        return Served {
                            child,
                            addr: a.trim().parse().unwrap(),
                        };
                    }
                    None => seen.push(line),
                },
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "flowhost serve --store {} did not start ({e}):\n{}",
                        o.store,
                        seen.join("\n")
                    );
                }
            }
        }
    }

    /// SIGKILL, and reaped.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// CPU time (user + system) it used so far.
    pub(crate) fn cpu(&self) -> Duration {
        cpu_of(self.child.id())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// CPU time (user + system) process `pid` used so far, from `/proc`; zero
/// when it is gone.
pub(crate) fn cpu_of(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let fields = stat_fields(&stat);
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime, in USER_HZ (100 on every Linux this runs on).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The fields of a `/proc/PID/stat` after the command name (which may hold
/// spaces): index 0 is the state, 1 the parent's pid.
pub(crate) fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rfind(')')
        .map(|i| stat[i + 1..].split_whitespace().collect())
        .unwrap_or_default()
}
