//! `flowhost new`: scaffold a step project in Rust, JavaScript, Python or C.
//!
//! The templates are the files under `plugins/templates/<lang>/`, embedded at
//! build time; `{{name}}` (and for Rust `{{crate}}`, `{{sdk_path}}`) are
//! substituted. Every project gets a copy of `wit/step.wit`, a `build.sh`
//! writing `NAME.wasm` (installing the language's toolchain into the project
//! when it is missing), a `step.toml`, a README and a `.gitignore`.

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

impl Lang {
    fn title(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Js => "JavaScript",
            Lang::Python => "Python",
            Lang::C => "C",
        }
    }

    /// An input the template's step accepts.
    fn sample_input(self) -> &'static str {
        match self {
            Lang::C => r#"{"id":7}"#,
            _ => r#"{"name":"Ada"}"#,
        }
    }

    fn files(self) -> &'static [File] {
        match self {
            Lang::Rust => RUST,
            Lang::Js => JS,
            Lang::Python => PYTHON,
            Lang::C => C,
        }
    }
}

/// A template file: its path in the project and its text.
type File = (&'static str, &'static str);

const WIT: File = ("wit/step.wit", include_str!("../../../wit/step.wit"));

/// A template's own files, then the four every template has.
macro_rules! template {
    ($lang:literal, $($path:literal),+ $(,)?) => {
        template!(@files $lang, $($path,)+ "build.sh", "step.toml", "README.md", ".gitignore")
    };
    (@files $lang:literal, $($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../../../plugins/templates/", $lang, "/", $path)))),+]
    };
}

const RUST: &[File] = template!("rust", "Cargo.toml", "src/lib.rs",);
const JS: &[File] = template!(
    "js",
    "app.js",
    "step.js",
    "package.json",
    "package-lock.json",
);
const PYTHON: &[File] = template!("python", "app.py", "flowhost_step.py", "requirements.txt",);
const C: &[File] = template!(
    "c",
    "app.c",
    "flowhost_step.h",
    "gen/step.c",
    "gen/step.h",
    "gen/component_type.c",
    "componentize.mjs",
    "package.json",
    "package-lock.json",
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
    let crate_name = args.name.replace('-', "_");
    for (path, text) in args.lang.files().iter().chain(std::iter::once(&WIT)) {
        let text = text
            .replace("{{name}}", &args.name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk_path}}", &sdk);
        write(&dir.join(path), &text).map_err(Failure::failed)?;
    }
    // The command alone on the last line, to copy as it is.
    println!(
        "created {}: a {} step named {}. Build it and call it with:",
        dir.display(),
        args.lang.title(),
        args.name
    );
    println!(
        "cd {} && ./build.sh && flowhost call {}.wasm --input '{}'",
        shell_word(&dir.to_string_lossy()),
        args.name,
        args.lang.sample_input()
    );
    Ok(())
}

/// `word` as one shell word: as it is when that is safe, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./+@%:,=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
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
    fn shell_words() {
        assert_eq!(shell_word("greet"), "greet");
        assert_eq!(shell_word("../steps/greet-2"), "../steps/greet-2");
        assert_eq!(shell_word("my steps/greet"), "'my steps/greet'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    fn file(files: &[File], path: &str) -> &'static str {
        files.iter().find(|(p, _)| *p == path).unwrap().1
    }

    /// The same versions as the bundled plugins' toolchains: one download
    /// serves both, and the docs name one version.
    #[test]
    fn templates_pin_the_bundled_toolchain_versions() {
        let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        let bundled = json(include_str!("../../../plugins/js/package.json"));
        for files in [JS, C] {
            let pinned = json(file(files, "package.json"))["devDependencies"].clone();
            for (package, version) in pinned.as_object().unwrap() {
                assert_eq!(&bundled["devDependencies"][package], version, "{package}");
            }
            let lock = json(file(files, "package-lock.json"));
            assert_eq!(lock["packages"][""]["devDependencies"], pinned);
        }
        assert_eq!(
            file(PYTHON, "requirements.txt"),
            include_str!("../../../plugins/python/requirements.txt")
        );
    }

    #[test]
    fn every_template_names_its_output() {
        for files in [RUST, JS, PYTHON, C] {
            assert!(file(files, "step.toml").contains(r#"output = "{{name}}.wasm""#));
            assert!(file(files, "build.sh").contains("{{name}}.wasm"));
            assert!(file(files, ".gitignore").contains("*.wasm"));
        }
    }
}
