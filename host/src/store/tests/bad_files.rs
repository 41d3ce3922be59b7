//! Every file the SQLite store refuses: the right error, naming the file,
//! and the file's bytes as they were.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::store::StoreError;

/// Opens `path` as a server and as a reader; both must be refused without
/// a byte of the file changing. Returns the server's error.
async fn refused(path: &Path) -> StoreError {
    let before = hash_of(path);
    let err = SqliteStore::open(path).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert_eq!(hash_of(path), before, "{message}: the file changed");
    let reader = SqliteStore::open_reader(path).await.unwrap_err();
    assert_eq!(
        std::mem::discriminant(&reader),
        std::mem::discriminant(&err),
        "the reader: {reader}"
    );
    assert_eq!(hash_of(path), before, "{reader}: the file changed");
    err
}

fn assert_not_a_store(err: StoreError, why: &str) {
    match &err {
        StoreError::NotAStore { why: found, .. } if found.contains(why) => {}
        _ => panic!("expected not a store ({why}), got: {err}"),
    }
    assert!(err.to_string().contains("left untouched"), "{err}");
}

/// The page size of a closed store.
fn page_size(path: &Path) -> usize {
    let header = fs::read(path).unwrap();
    usize::from(u16::from_be_bytes([header[16], header[17]]))
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    fs::write(&path, "name,price\nwidget,3\n").unwrap();
    assert_not_a_store(refused(&path).await, "not a SQLite file");
    fs::write(&path, &b"SQLite format 3\0 and then nothing"[..]).unwrap();
    assert_not_a_store(refused(&path).await, "shorter than a SQLite header");
    let folder = dir.path().join("folder.db");
    fs::create_dir(&folder).unwrap();
    let err = SqliteStore::open(&folder).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotAStore { why, .. } if why == "it is a folder"),
        "{err}"
    );
}

#[tokio::test]
async fn a_damaged_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_file(dir.path()).await;
    let good = fs::read(&path).unwrap();
    let page = page_size(&path);
    assert!(good.len() >= 4 * page, "{} bytes", good.len());

    // The schema's page overwritten after the header.
    let mut bad = good.clone();
    bad[100..page].fill(0x5a);
    fs::write(&path, &bad).unwrap();
    assert_not_a_store(refused(&path).await, "corrupt");

    // Cut in the middle of a page.
    fs::write(&path, &good[..page * 3 / 2]).unwrap();
    assert_not_a_store(refused(&path).await, "truncated");

    // Cut after the schema's page: the tables' pages are gone.
    fs::write(&path, &good[..page]).unwrap();
    assert_not_a_store(refused(&path).await, "corrupt");

    // A table's first page overwritten: the schema reads well, the table not.
    let copy = dir.path().join("copy.db");
    fs::write(&copy, &good).unwrap();
    let root: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'steps'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let root = usize::try_from(root).unwrap();
    let mut bad = good.clone();
    bad[(root - 1) * page..root * page].fill(0x5a);
    fs::write(&path, &bad).unwrap();
    assert_not_a_store(refused(&path).await, "corrupt");

    // Intact again, it opens.
    fs::write(&path, &good).unwrap();
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.usage().0, 10);
}

#[tokio::test]
async fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE runs (x);",
    )
    .unwrap();
    drop(conn);
    assert_not_a_store(
        refused(&path).await,
        "another program (tables: runs, users)",
    );
    // An empty SQLite database becomes a store.
    let empty = dir.path().join("empty.db");
    rusqlite::Connection::open(&empty)
        .unwrap()
        .execute_batch("PRAGMA page_size = 1024; VACUUM;")
        .unwrap();
    assert!(fs::metadata(&empty).unwrap().len() > 0);
    let store = SqliteStore::open(&empty).await.unwrap();
    store.accept(vec![new_run("r", "f", 1)]).await.unwrap();
    assert!(store.run("r").await.unwrap().is_some());
}

#[tokio::test]
async fn a_store_of_a_newer_flowhost_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_file(dir.path()).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = refused(&path).await;
    match &err {
        StoreError::TooNew {
            found: 99,
            known: 3,
            ..
        } => {}
        _ => panic!("expected too new, got: {err}"),
    }
    assert!(err.to_string().contains("newer flowhost"), "{err}");
}

#[tokio::test]
async fn a_store_held_by_another_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let first = SqliteStore::open(&path).await.unwrap();
    first.accept(vec![new_run("r", "f", 1)]).await.unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string())
            && message.contains("another flowhost server"),
        "{message}"
    );
    // The first server is not disturbed, and once it stops the file opens.
    first.accept(vec![new_run("s", "f", 2)]).await.unwrap();
    drop(first);
    let second = SqliteStore::open(&path).await.unwrap();
    assert!(second.run("s").await.unwrap().is_some());
}

#[tokio::test]
async fn a_read_only_file_or_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("data");
    fs::create_dir(&folder).unwrap();
    let path = store_file(&folder).await;
    let before = hash_of(&path);
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();

    mode(&path, 0o444);
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::ReadOnly { why, .. } if why.contains("the file is read-only")),
        "{err}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(hash_of(&path), before);
    // A reader needs no write access to the file.
    let reader = SqliteStore::open_reader(&path).await.unwrap();
    assert_eq!(reader.usage().0, 10);
    drop(reader);
    mode(&path, 0o644);

    mode(&folder, 0o555);
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::ReadOnly { why, .. } if why.contains("its folder is read-only")),
        "{err}"
    );
    assert_eq!(hash_of(&path), before);
    let missing = folder.join("new.db");
    let err = SqliteStore::open(&missing).await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(!missing.exists(), "nothing was created");
    mode(&folder, 0o755);
    assert!(SqliteStore::open(&path).await.is_ok());
}
