//! TLS to PostgreSQL: a throwaway server with a certificate made here by
//! `openssl`, reached per `sslmode`.

use std::path::Path;
use std::process::Command;

use super::throwaway_pg::ThrowawayPg;
use super::*;
use crate::store::postgres::PostgresStore;
use crate::store::{OpenOptions, StoreError};

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a server certificate it signed for 127.0.0.1, in `dir`:
/// `ca.pem`, `server.pem`, `server.key`; and another CA, `other.pem`.
fn certificates(dir: &Path) {
    let days = ["-days", "2"];
    for ca in ["ca", "other"] {
        let key = format!("{ca}.key");
        let pem = format!("{ca}.pem");
        let subject = format!("/CN=flowhost test {ca}");
        let mut args = vec!["req", "-x509", "-newkey", "rsa:2048", "-nodes"];
        args.extend(["-keyout", &key, "-out", &pem, "-subj", &subject]);
        args.extend(days);
        openssl(dir, &args);
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let mut args = vec!["x509", "-req", "-in", "server.csr", "-CA", "ca.pem"];
    args.extend(["-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem"]);
    args.extend(["-extfile", "san.ext"]);
    args.extend(days);
    openssl(dir, &args);
    // PostgreSQL refuses a key others can read; it runs as `postgres`.
    let status = Command::new("chmod")
        .args(["0600"])
        .arg(dir.join("server.key"))
        .status()
        .unwrap();
    assert!(status.success());
    let _ = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(dir.join("server.key"))
        .arg(dir.join("server.pem"))
        .status();
}

async fn open(url: &str) -> Result<PostgresStore, StoreError> {
    PostgresStore::open(&url.parse().unwrap(), &OpenOptions::default()).await
}

#[tokio::test]
async fn tls_is_used_and_checked_as_sslmode_says() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let _ = Command::new("chmod").arg("0755").arg(certs.path()).status();
    let cert = certs.path().join("server.pem");
    let key = certs.path().join("server.key");
    let pg = ThrowawayPg::start_with(&[
        "-c",
        "fsync=off",
        "-c",
        "ssl=on",
        "-c",
        &format!("ssl_cert_file={}", cert.display()),
        "-c",
        &format!("ssl_key_file={}", key.display()),
    ]);
    // Only TLS connections are let in, so that a plain one cannot pass.
    let hba = pg.dir().join("data/pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    pg.psql("SELECT pg_reload_conf()");
    let base = pg.create_db("tls");
    let ca = certs.path().join("ca.pem");
    let other = certs.path().join("other.pem");

    for mode in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
        format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ] {
        let store = open(&format!("{base}?{mode}"))
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let run = new_run("r1", "f", 1);
        store.accept(vec![run]).await.unwrap();
        assert!(store.run("r1").await.unwrap().is_some(), "{mode}");
        store.ready().await.unwrap();
        pg.psql_in("tls", "DELETE FROM runs");
    }
    // A server whose certificate another CA signed is refused.
    let url = format!("{base}?sslmode=verify-full&sslrootcert={}", other.display());
    let err = open(&url).await.expect_err("an untrusted certificate");
    assert!(
        matches!(err, StoreError::Unreachable { .. }),
        "{url}: expected unreachable, got {err}"
    );
    // Without TLS the server refuses the connection.
    let url = format!("{base}?sslmode=disable");
    assert!(open(&url).await.is_err(), "{url} connected without TLS");
}
