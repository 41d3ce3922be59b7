//! `flowhost new`: scaffold a step project in Rust, JavaScript, Python or C.
//!
//! The templates are the files under `plugins/templates/<lang>/`, embedded at
//! build time; `{{name}}` (and for Rust `{{crate}}`, `{{sdk_path}}`) are
//! substituted. Every project gets a copy of `wit/step.wit`, a `build.sh`
//! writing `NAME.wasm`, a `step.toml` and a README.

use std::path::{Path, PathBuf};

use super::Failure;

/// Arguments of `flowhost new`.
#[derive(clap::Args)]
pub(crate) struct NewArgs {
    /// The step's language.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The plugin name: lowercase letters, digits and `-`, starting with a letter.
    name: String,
    /// Where to create the project (default: ./NAME). Must not exist or be empty.
    dir: Option<PathBuf>,
    /// Rust only: the `plugin-sdk` directory of a flowhost checkout, for the
    /// path dependency on flowhost-sdk. Default: $FLOWHOST_SDK_PATH, else the
    /// checkout this binary was built from, when it still exists.
    #[arg(long)]
    sdk_path: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Lang {
    Rust,
    Js,
    Python,
    C,
}

/// A template file: its path in the project and its text.
type File = (&'static str, &'static str);

const WIT: File = ("wit/step.wit", include_str!("../../../wit/step.wit"));

macro_rules! template {
    ($lang:literal, $($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../../../plugins/templates/", $lang, "/", $path)))),+]
    };
}

const RUST: &[File] = template!(
    "rust",
    "Cargo.toml",
    "src/lib.rs",
    "build.sh",
    "step.toml",
    "README.md",
    ".gitignore"
);
const JS: &[File] = template!(
    "js",
    "app.js",
    "step.js",
    "package.json",
    "build.sh",
    "step.toml",
    "README.md",
    ".gitignore"
);
const PYTHON: &[File] = template!(
    "python",
    "app.py",
    "flowhost_step.py",
    "requirements.txt",
    "build.sh",
    "step.toml",
    "README.md",
    ".gitignore"
);
const C: &[File] = template!(
    "c",
    "app.c",
    "flowhost_step.h",
    "gen/step.c",
    "gen/step.h",
    "gen/component_type.c",
    "componentize.mjs",
    "build.sh",
    "step.toml",
    "README.md",
    ".gitignore"
);

pub(crate) async fn run(args: NewArgs) -> Result<(), Failure> {
    check_name(&args.name).map_err(Failure::usage)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .map_err(|e| Failure::usage(format!("{}: {e}", dir.display())))?
            .next()
            .is_none();
        if !empty {
            return Err(Failure::usage(format!(
                "{} exists and is not empty",
                dir.display()
            )));
        }
    }
    let sdk = match args.lang {
        Lang::Rust => {
            let from_env = std::env::var_os("FLOWHOST_SDK_PATH").map(PathBuf::from);
            sdk_path(args.sdk_path.as_deref().or(from_env.as_deref()))?
        }
        _ => String::new(),
    };
    let files = match args.lang {
        Lang::Rust => RUST,
        Lang::Js => JS,
        Lang::Python => PYTHON,
        Lang::C => C,
    };
    let crate_name = args.name.replace('-', "_");
    for (path, text) in files.iter().chain(std::iter::once(&WIT)) {
        let text = text
            .replace("{{name}}", &args.name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk_path}}", &sdk);
        write(&dir.join(path), &text).map_err(Failure::failed)?;
    }
    println!(
        "created {} ({:?} step {}): cd {} && ./build.sh && flowhost call {}.wasm --input '{}'",
        dir.display(),
        args.lang,
        args.name,
        dir.display(),
        args.name,
        if args.lang == Lang::C {
            r#"{"id":7}"#
        } else {
            r#"{"name":"Ada"}"#
        }
    );
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad step name {name:?}: use lowercase letters, digits and '-', starting with a letter"
        ))
    }
}

/// The flowhost-sdk directory for a Rust project, as an absolute path with `/`.
fn sdk_path(given: Option<&Path>) -> Result<String, Failure> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => {
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
            if !built_from.join("Cargo.toml").is_file() {
                return Err(Failure::usage(
                    "a Rust step depends on flowhost-sdk by path: pass --sdk-path DIR (or set \
                     FLOWHOST_SDK_PATH) to the plugin-sdk directory of a flowhost checkout",
                ));
            }
            built_from
        }
    };
    if !path.join("Cargo.toml").is_file() {
        return Err(Failure::usage(format!(
            "{} is not the flowhost-sdk crate (no Cargo.toml)",
            path.display()
        )));
    }
    let path = path
        .canonicalize()
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    Ok(path.to_string_lossy().replace('\\', "/"))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    std::fs::write(path, text).map_err(fail)?;
    #[cfg(unix)]
    if path.extension().is_some_and(|e| e == "sh") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("greet").is_ok());
        assert!(check_name("my-step-2").is_ok());
        for bad in ["", "Greet", "2x", "a_b", "a-", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_template_names_its_output() {
        for files in [RUST, JS, PYTHON, C] {
            let toml = files.iter().find(|(p, _)| *p == "step.toml").unwrap().1;
            assert!(toml.contains(r#"output = "{{name}}.wasm""#));
            let build = files.iter().find(|(p, _)| *p == "build.sh").unwrap().1;
            assert!(build.contains("{{name}}.wasm"));
        }
    }
}
