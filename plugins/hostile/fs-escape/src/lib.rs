//! Hostile: tries to reach files outside its granted directories and reports
//! what happened instead of failing, so a test can assert every attempt was
//! refused:
//!
//! ```json
//! {"read_passwd": "error: ...", "read_via_symlink": [...],
//!  "writes": [{"path": "...", "result": "error: ..."}], "preopens": ["..."]}
//! ```
//!
//! A successful read shows the file's contents; a successful write shows
//! "written". Input: `{"tag": "..."}` (optional) names the files it creates.

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::Serialize;
use serde_json::Value;
use wasi::filesystem::preopens::get_directories;
use wasi::filesystem::types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags};

#[derive(Serialize)]
struct Attempt {
    path: String,
    result: String,
}

#[derive(Serialize)]
struct Report {
    read_passwd: String,
    read_via_symlink: Vec<Attempt>,
    writes: Vec<Attempt>,
    preopens: Vec<String>,
}

struct FsEscape;

impl Step for FsEscape {
    type Input = Value;
    type Output = Report;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, input: Value) -> Result<Report, StepError> {
        let tag = input.get("tag").and_then(Value::as_str).unwrap_or("fixed");
        let file = format!("flowhost-escape-{tag}.txt");
        let read_passwd =
            std::fs::read_to_string("/etc/passwd").unwrap_or_else(|e| format!("error: {e}"));

        // Through std: absolute paths, and relative ones climbing out of the cwd.
        let mut writes: Vec<Attempt> = [
            format!("/tmp/{file}"),
            "../escape.txt".into(),
            format!("../../../../tmp/{file}"),
        ]
        .into_iter()
        .map(std_write)
        .collect();

        // Every preopened directory, both through std and through the raw
        // descriptor, with paths climbing out of it.
        let mut read_via_symlink = Vec::new();
        let mut preopens = Vec::new();
        for (dir, name) in get_directories() {
            let root = name.trim_end_matches('/');
            writes.push(std_write(format!("{root}/../{file}")));
            writes.push(std_write(format!("{root}/../../../../tmp/{file}")));
            writes.push(raw_write(&dir, &name, &format!("../{file}")));
            writes.push(raw_write(&dir, &name, &format!("/tmp/{file}")));
            for target in ["/etc/passwd", "../../../../../../../../etc/passwd"] {
                read_via_symlink.push(symlink_read(&dir, &name, &file, target));
            }
            preopens.push(name);
        }
        Ok(Report {
            read_passwd,
            read_via_symlink,
            writes,
            preopens,
        })
    }
}

fn outcome<T, E: std::fmt::Display>(result: Result<T, E>, ok: impl FnOnce(T) -> String) -> String {
    match result {
        Ok(v) => ok(v),
        Err(e) => format!("error: {e}"),
    }
}

fn std_write(path: String) -> Attempt {
    let result = outcome(std::fs::write(&path, b"escaped\n"), |()| "written".into());
    Attempt { path, result }
}

/// `open_at` on the preopen itself, bypassing wasi-libc's path handling.
fn raw_write(dir: &Descriptor, dir_name: &str, path: &str) -> Attempt {
    let opened = dir.open_at(
        PathFlags::empty(),
        path,
        OpenFlags::CREATE | OpenFlags::TRUNCATE,
        DescriptorFlags::WRITE,
    );
    let result = outcome(opened, |file| {
        outcome(file.write(b"escaped\n", 0), |_| "written".into())
    });
    Attempt {
        path: format!("[{dir_name}] {path}"),
        result,
    }
}

/// Plants a symlink to `target` inside the preopen and reads through it,
/// then removes the link again.
fn symlink_read(dir: &Descriptor, dir_name: &str, file: &str, target: &str) -> Attempt {
    let link = format!("{file}.link");
    let result = match dir.symlink_at(target, &link) {
        Err(e) => format!("error: symlink: {e}"),
        Ok(()) => {
            let path = format!("{}/{link}", dir_name.trim_end_matches('/'));
            let read = outcome(std::fs::read_to_string(&path), |contents| contents);
            let _ = dir.unlink_file_at(&link);
            read
        }
    };
    Attempt {
        path: format!("[{dir_name}] {link} -> {target}"),
        result,
    }
}

export_step!(FsEscape);
