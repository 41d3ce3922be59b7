//! Bad usage on one line: clap's errors (several lines, with a usage block
//! and tips) are rewritten from their kind and context into
//! `flowhost: WHAT IS WRONG (see flowhost CMD --help)`, exit status 2.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Parses the command line into `T`. Help and version print as clap prints
/// them (exit 0), and so does the help a bare `flowhost` shows (exit 2).
/// Any other error is one line on stderr and exit status 2.
pub(crate) fn parse<T: clap::Parser>() -> T {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match T::try_parse_from(&args) {
        Ok(parsed) => parsed,
        Err(e) if is_help(&e, args.len()) => e.exit(),
        Err(e) => {
            let root = T::command();
            let (path, command) = command_path(&root, &args);
            eprintln!("flowhost: {} (see {path} --help)", one_line(&e, command));
            std::process::exit(2)
        }
    }
}

/// Help or version asked for, or a bare `flowhost`.
fn is_help(e: &clap::Error, args: usize) -> bool {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => true,
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => args <= 1,
        _ => false,
    }
}

/// `--timeout <TIMEOUT>` is named `--timeout`; a positional `<PLUGIN>` as is.
fn arg_name(arg: &str) -> &str {
    match arg.split_once(' ') {
        Some((flag, _)) if arg.starts_with('-') => flag,
        _ => arg,
    }
}

/// What is wrong, in one line; `command` is the (sub)command that refused.
fn one_line(e: &clap::Error, command: &clap::Command) -> String {
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => Some(v.join(", ")),
        _ => None,
    };
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) => Some(arg_name(a).to_string()),
        Some(ContextValue::Strings(v)) => {
            Some(v.iter().map(|a| arg_name(a)).collect::<Vec<_>>().join(", "))
        }
        _ => None,
    };
    let value = text(ContextKind::InvalidValue);
    let line = match (e.kind(), arg, value) {
        (ErrorKind::UnknownArgument, Some(arg), _) => {
            let mut line = format!("unexpected argument '{arg}'");
            if let Some(s) = text(ContextKind::SuggestedArg) {
                line.push_str(&format!("; did you mean '{s}'?"));
            }
            line
        }
        (ErrorKind::InvalidSubcommand, _, _) => {
            let mut line = format!(
                "unknown command '{}'",
                text(ContextKind::InvalidSubcommand).unwrap_or_default()
            );
            if let Some(s) = text(ContextKind::SuggestedSubcommand) {
                line.push_str(&format!("; did you mean '{s}'?"));
            }
            line
        }
        (ErrorKind::MissingRequiredArgument, Some(args), _) => {
            format!("missing {args}")
        }
        (
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand,
            ..,
        ) => {
            let names: Vec<&str> = command
                .get_subcommands()
                .map(clap::Command::get_name)
                .filter(|n| *n != "help")
                .collect();
            format!("missing a command: {}", names.join(", "))
        }
        (ErrorKind::InvalidValue, Some(arg), Some(value)) if value.is_empty() => {
            format!("{arg} needs a value")
        }
        (ErrorKind::InvalidValue, Some(arg), Some(value)) => {
            let mut line = format!("invalid value `{value}` for {arg}");
            if let Some(valid) = text(ContextKind::ValidValue) {
                line.push_str(&format!(": expected one of {valid}"));
            }
            line
        }
        (ErrorKind::ValueValidation, Some(arg), Some(value)) => {
            let mut line = format!("invalid value `{value}` for {arg}");
            if let Some(why) = std::error::Error::source(e) {
                line.push_str(&format!(": {why}"));
            }
            line
        }
        (ErrorKind::ArgumentConflict, Some(arg), _) => match text(ContextKind::PriorArg) {
            Some(prior) if arg_name(&prior) != arg => {
                format!("{arg} cannot be used with {}", arg_name(&prior))
            }
            _ => format!("{arg} is given more than once"),
        },
        (ErrorKind::TooManyValues, Some(arg), Some(value)) => {
            format!("unexpected value `{value}` after {arg}")
        }
        _ => {
            // Kinds this command line cannot produce: clap's first line.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        }
    };
    // A value a user typed may hold a line break: it stays on this line.
    line.replace(['\n', '\r'], " ")
}

/// `flowhost`, or the subcommand the arguments name (`flowhost cache
/// clear`), with its definition.
fn command_path<'c>(
    root: &'c clap::Command,
    args: &[std::ffi::OsString],
) -> (String, &'c clap::Command) {
    let mut path = vec![root.get_name()];
    let mut current = root;
    for arg in args.iter().skip(1).filter_map(|a| a.to_str()) {
        if let Some(sub) = current.find_subcommand(arg) {
            path.push(sub.get_name());
            current = sub;
        }
    }
    (path.join(" "), current)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[derive(clap::Parser, Debug)]
    #[command(name = "flowhost")]
    enum Cli {
        Call {
            plugin: String,
            #[arg(long, value_parser = crate::cli::args::timeout)]
            timeout: Option<std::time::Duration>,
            #[arg(long, value_enum)]
            format: Option<Format>,
        },
    }

    #[derive(Clone, Debug, clap::ValueEnum)]
    enum Format {
        Text,
        Json,
    }

    fn line(args: &[&str]) -> String {
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        let e = <Cli as clap::Parser>::try_parse_from(&args).unwrap_err();
        let root = Cli::command();
        let (path, command) = command_path(&root, &args);
        format!("{} (see {path} --help)", one_line(&e, command))
    }

    #[test]
    fn every_usage_error_is_one_line_naming_what_is_wrong() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["flowhost", "call"],
                "missing <PLUGIN> (see flowhost call --help)",
            ),
            (
                &["flowhost", "call", "p", "--bogus"],
                "unexpected argument '--bogus' (see flowhost call --help)",
            ),
            (
                &["flowhost", "call", "p", "--timeot", "1s"],
                "unexpected argument '--timeot'; did you mean '--timeout'? (see flowhost call --help)",
            ),
            (
                &["flowhost", "call", "p", "--timeout", "5x"],
                "invalid value `5x` for --timeout: expected a number and a unit, such as 500ms, 2s or 1m (see flowhost call --help)",
            ),
            (
                &["flowhost", "call", "p", "--timeout"],
                "--timeout needs a value (see flowhost call --help)",
            ),
            (
                &["flowhost", "call", "p", "--format", "yaml"],
                "invalid value `yaml` for --format: expected one of text, json (see flowhost call --help)",
            ),
            (
                &[
                    "flowhost",
                    "call",
                    "p",
                    "--timeout",
                    "1s",
                    "--timeout",
                    "2s",
                ],
                "--timeout is given more than once (see flowhost call --help)",
            ),
            (
                &["flowhost", "cal"],
                "unknown command 'cal'; did you mean 'call'? (see flowhost --help)",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(line(args), *want, "{args:?}");
        }
    }
}
