//! The compile cache: hits skip compilation, bad entries are recompiled,
//! the directory is private, and nothing another user could have written
//! is ever loaded.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flowhost::{Config, Context, Host};

use crate::support::{cached_host, flowhost, run, wasm};

/// `flowhost call PLUGIN --input INPUT` with its own cache and key file.
fn call(cache: &Path, key: &Path, plugin: &str, input: &str) -> (i32, String, String) {
    run(flowhost()
        .arg("call")
        .arg(wasm(plugin))
        .args(["--input", input])
        .env("FLOWHOST_CACHE_DIR", cache)
        .env("FLOWHOST_CACHE_KEY", key))
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    all.sort();
    all
}

async fn echo_works(host: &Host) -> flowhost::Plugin {
    let p = host.load(wasm("testing/echo")).await.expect("load");
    let out = host.call(&p, &Context::direct("echo"), r#"{"a":1}"#).await;
    assert_eq!(out.expect("call"), r#"{"a":1}"#);
    p
}

#[tokio::test]
async fn a_hit_skips_compilation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");

    let cold = cached_host(&dir);
    let p = echo_works(&cold).await;
    assert!(!p.cached());
    assert_eq!(cold.compile_count(), 1);
    assert_eq!(cold.cache_stats().unwrap().stored, 1);
    assert_eq!(entries(&dir).len(), 1);

    let warm = cached_host(&dir);
    let p = echo_works(&warm).await;
    assert!(p.cached());
    assert_eq!(warm.compile_count(), 0, "a hit compiles nothing");
    let stats = warm.cache_stats().unwrap();
    assert_eq!((stats.hits, stats.misses, stats.stored), (1, 0, 0));

    // Without a cache, nothing is counted as cached.
    let plain = Host::new(Config::default()).unwrap();
    assert!(plain.cache_stats().is_none());
    assert!(!echo_works(&plain).await.cached());
    assert_eq!(plain.compile_count(), 1);
}

#[tokio::test]
async fn corrupt_truncated_and_foreign_entries_are_recompiled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    echo_works(&cached_host(&dir)).await;
    let entry = entries(&dir).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    let mut foreign = good.clone();
    foreign[20] ^= 1; // inside the key
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("corrupt", flipped),
        ("truncated", good[..good.len() - 100].to_vec()),
        ("foreign", foreign),
        ("empty", Vec::new()),
        ("garbage", b"\x7fELF not ours".to_vec()),
    ];
    for (case, bytes) in cases {
        std::fs::write(&entry, &bytes).unwrap();
        let host = cached_host(&dir);
        let p = echo_works(&host).await; // still works
        assert!(!p.cached(), "{case}");
        assert_eq!(host.compile_count(), 1, "{case}: recompiled");
        let stats = host.cache_stats().unwrap();
        assert_eq!((stats.discarded, stats.stored), (1, 1), "{case}");
        // The entry was rewritten and is sound again.
        let again = cached_host(&dir);
        assert!(echo_works(&again).await.cached(), "{case}");
        assert_eq!(again.compile_count(), 0, "{case}");
    }
}

#[tokio::test]
async fn the_cache_directory_is_private_and_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/cache");
    let host = cached_host(&dir);
    let mode = |d: &Path| std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "created private");
    drop(host);

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _host = cached_host(&dir);
    assert_eq!(mode(&dir), 0o700, "narrowed");

    // A file where the directory should be is refused.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = Host::new(Config::default().cache(Some(file)))
        .err()
        .unwrap();
    assert!(err.to_string().contains("compile cache"), "{err}");

    // A limit smaller than two entries keeps only the newest.
    let small = tmp.path().join("small");
    let host = Host::new(Config::default().cache(Some(small.clone())).cache_limit(1)).unwrap();
    host.load(wasm("testing/echo")).await.unwrap();
    host.load(wasm("testing/counter")).await.unwrap();
    assert!(entries(&small).len() <= 1);
    assert!(host.cache_stats().unwrap().evicted >= 1);
}

#[tokio::test]
async fn cache_info_and_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    echo_works(&cached_host(&dir)).await;

    let (code, out, err) = run(flowhost()
        .args(["cache", "info", "--json"])
        .env("FLOWHOST_CACHE_DIR", &dir));
    assert_eq!(code, 0, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["entries"], 1);
    assert_eq!(info["limit"], 1u64 << 30);
    assert_eq!(info["dir"], dir.to_str().unwrap());

    let (code, out, _) = run(flowhost()
        .args(["cache", "clear"])
        .env("FLOWHOST_CACHE_DIR", &dir));
    assert_eq!(code, 0);
    assert!(out.contains("1 entries deleted"), "{out}");
    assert!(entries(&dir).is_empty());

    let (code, out, _) = run(flowhost().args(["cache", "info", "--cache-dir"]).arg(&dir));
    assert_eq!(code, 0);
    assert!(out.contains("entries:  0"), "{out}");
}

/// Another local user who could write the cache directory plants env.wasm's
/// compiled code under echo.wasm's name, its header rewritten to echo's key
/// (the header's SHA-256 covered only the payload, and anyone can compute
/// one). The call still runs echo: the entry's MAC does not verify.
#[test]
fn a_planted_entry_of_another_component_is_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, key) = (tmp.path().join("cache"), tmp.path().join("cache.key"));
    let (code, _, err) = call(&cache, &key, "testing/echo", "{}");
    assert_eq!(code, 0, "{err}");
    let echo_entry = entries(&cache).pop().unwrap();
    let (code, _, err) = call(&cache, &key, "testing/env", "{}");
    assert_eq!(code, 0, "{err}");
    let env_entry = entries(&cache)
        .into_iter()
        .find(|e| *e != echo_entry)
        .unwrap();

    let echo = std::fs::read(&echo_entry).unwrap();
    let mut planted = std::fs::read(&env_entry).unwrap();
    planted[12..44].copy_from_slice(&echo[12..44]);
    std::fs::write(&echo_entry, &planted).unwrap();

    let (code, out, err) = call(&cache, &key, "testing/echo", r#"{"a":1}"#);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), r#"{"a":1}"#, "echo ran, not the planted code");
    assert!(
        err.contains("compile cache: discarding entry: its MAC does not verify")
            && err.contains(echo_entry.to_str().unwrap()),
        "{err}"
    );
    // Recompiled and stored again: the next call is a sound hit.
    assert_ne!(std::fs::read(&echo_entry).unwrap(), planted);
}

/// Entries in a directory others could write are deleted, never loaded.
#[tokio::test]
async fn a_world_writable_directory_s_entries_are_not_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    echo_works(&cached_host(&dir)).await;
    assert_eq!(entries(&dir).len(), 1);

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let host = cached_host(&dir);
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "narrowed");
    let p = echo_works(&host).await;
    assert!(!p.cached(), "the old entry was not loaded");
    assert_eq!(host.compile_count(), 1);
    let stats = host.cache_stats().unwrap();
    assert_eq!((stats.hits, stats.misses, stats.stored), (0, 1, 1));
}

/// An entry that is a symlink (even to a sound entry) or a FIFO is
/// discarded, never followed or waited on.
#[tokio::test]
async fn symlinked_and_special_entries_are_not_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    echo_works(&cached_host(&dir)).await;
    let entry = entries(&dir).pop().unwrap();
    let elsewhere = tmp.path().join("elsewhere.cwasm");
    std::fs::rename(&entry, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();

    let host = cached_host(&dir);
    assert!(!echo_works(&host).await.cached());
    assert_eq!(host.cache_stats().unwrap().discarded, 1);
    let meta = std::fs::symlink_metadata(&entry).unwrap();
    assert!(meta.is_file(), "the symlink was replaced by a real entry");
    assert!(elsewhere.exists(), "its target was left alone");

    std::fs::remove_file(&entry).unwrap();
    let mode = rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR;
    rustix::fs::mkfifoat(rustix::fs::CWD, &entry, mode).unwrap();
    let host = cached_host(&dir);
    let load = tokio::time::timeout(std::time::Duration::from_secs(30), echo_works(&host));
    assert!(!load.await.expect("a FIFO entry does not block").cached());
    assert_eq!(host.cache_stats().unwrap().discarded, 1);
}

/// The key lives outside the cache directory, private; a key file others
/// could read means no cache (with a warning naming it), never a weak one.
#[test]
fn the_key_file_is_private_and_a_wide_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, key) = (tmp.path().join("cache"), tmp.path().join("keys/cache.key"));
    let (code, _, err) = call(&cache, &key, "testing/echo", "{}");
    assert_eq!(code, 0, "{err}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(entries(&cache).len(), 1);

    let (code, out, _) = run(flowhost()
        .args(["cache", "info"])
        .env("FLOWHOST_CACHE_DIR", &cache)
        .env("FLOWHOST_CACHE_KEY", &key));
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("key:      {}", key.display())),
        "{out}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) = call(&cache, &key, "testing/echo", r#"{"b":2}"#);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), r#"{"b":2}"#);
    let want = format!(
        "running without the compile cache: compile cache key {}: mode is 644: others could read it; it must be 600",
        key.display()
    );
    assert!(err.contains(&want), "{err}");
}
