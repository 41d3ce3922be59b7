//! A throwaway PostgreSQL for tests: `initdb` into a temporary folder, a
//! server on a free loopback port, stopped and removed on drop. Tests never
//! use a server that happens to be running on the machine.
//!
//! Shared by the store's unit tests and the e2e tests (which include this
//! file by path), so it uses only the standard library and `tempfile`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running PostgreSQL; dropping it stops the server and removes its files.
pub struct ThrowawayPg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

/// Where PostgreSQL's server programs are: the newest
/// `/usr/lib/postgresql/N/bin`, else `pg_config --bindir`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((n, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let out = Command::new("pg_config").arg("--bindir").output();
    match out {
        Ok(out) if out.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
        _ => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, no pg_config): \
             run the README's setup command, or `apt-get install -y postgresql`"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl ThrowawayPg {
    /// Starts one, with durability off (`fsync=off`): for tests that do not
    /// measure it. Panics with the server's log when it cannot start.
    pub fn start() -> ThrowawayPg {
        Self::start_with(&["-c", "fsync=off"])
    }

    /// Starts one with extra `postgres` options (`["-c", "fsync=on"]`).
    pub fn start_with(options: &[&str]) -> ThrowawayPg {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("flowhost-pg-")
            .tempdir_in(std::env::temp_dir())
            .expect("a temporary folder for PostgreSQL");
        // initdb refuses to run as root: run the server as `postgres`.
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of {} failed", dir.path().display());
        }
        let data = dir.path().join("data");
        let pg = |program: &str| {
            let mut cmd = if as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin.join(program));
                c
            } else {
                Command::new(bin.join(program))
            };
            cmd.stdin(Stdio::null());
            cmd
        };
        let out = pg("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = dir.path().join("server.log");
        // A free port can be taken between our check and the server's bind:
        // try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
                dir.path().display()
            );
            for o in options {
                opts.push(' ');
                opts.push_str(o);
            }
            let status = pg("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "30", "-o", &opts, "start"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run pg_ctl");
            if status.success() {
                return ThrowawayPg {
                    bin,
                    dir,
                    port,
                    as_postgres,
                };
            }
        }
        panic!(
            "PostgreSQL did not start; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `db` on this server.
    pub fn url_of(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (a fresh one per test keeps tests apart on
    /// one server) and returns its URL.
    pub fn create_db(&self, name: &str) -> String {
        self.psql(&format!("CREATE DATABASE \"{name}\""));
        self.url_of(name)
    }

    /// Runs SQL with `psql` on database `postgres`; panics on failure.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs SQL with `psql` on database `db`; returns its unaligned output.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db])
            .args(["-p", &self.port.to_string(), "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed on `{sql}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The folder its files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ThrowawayPg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
