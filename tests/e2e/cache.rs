//! The compile cache: hits skip compilation, bad entries are recompiled,
//! the directory is private.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flowhost::{Config, Context, Host};

use crate::support::{cached_host, flowhost, run, wasm};

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
