//! `flowhost runs list|show|cancel|rerun`: the runs a store keeps, read from
//! the store file (`--store`, or the default store) or through a running
//! server's API (`--server`).

pub(crate) mod oneshot;
mod server;
mod store;

use std::fmt::Write as _;

use flowhost::RunStatus;
use flowhost::executor::RunRecord;
use flowhost::store::{MAX_PAGE, StoreUrl};
use serde::{Deserialize, Serialize};

use self::server::ServerUrl;
use self::store::Access;
use super::{Failure, args, run, trace};

/// Arguments of `flowhost runs`.
#[derive(clap::Args)]
pub(crate) struct RunsArgs {
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(clap::Subcommand)]
enum RunsCommand {
    /// List runs, newest first, a page at a time.
    List(ListArgs),
    /// Show one run: its timeline (as `flowhost run --trace` prints it),
    /// status, output or error. Exit 1 when it failed or was cancelled.
    Show(ShowArgs),
    /// Cancel a queued or running run.
    Cancel(IdArgs),
    /// Start a new run with the same input (`--from STEP`: reusing the
    /// recorded outputs of the steps before it; needs `--server`).
    Rerun(RerunArgs),
}

/// Where the runs are: a store file or a server.
#[derive(clap::Args)]
struct Source {
    /// The store to use: `sqlite:PATH`. Default: the default store of
    /// `flowhost serve`, `flowhost.db` in $FLOWHOST_DATA_DIR, else in
    /// $XDG_DATA_HOME/flowhost, else in ~/.local/share/flowhost.
    #[arg(long, value_name = "URL", conflicts_with = "server")]
    store: Option<StoreUrl>,
    /// A running `flowhost serve` to ask instead: `http://HOST:PORT` (with
    /// $FLOWHOST_API_TOKEN sent as its API token, when set).
    #[arg(long, value_name = "URL")]
    server: Option<ServerUrl>,
}

#[derive(clap::Args)]
pub(super) struct ListArgs {
    /// Only this flow's runs.
    #[arg(long)]
    flow: Option<String>,
    /// Only runs with this status: queued, running, succeeded, failed, cancelled.
    #[arg(long, value_parser = parse_status)]
    status: Option<RunStatus>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=MAX_PAGE as i64))]
    limit: u16,
    /// Start after this cursor, from an earlier page.
    #[arg(long)]
    cursor: Option<String>,
    /// Print the page as JSON (`{"runs": [...], "next": CURSOR}`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: Source,
}

#[derive(clap::Args)]
struct ShowArgs {
    /// The run's id.
    id: String,
    /// Print the run record as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: Source,
}

#[derive(clap::Args)]
struct IdArgs {
    /// The run's id.
    id: String,
    #[command(flatten)]
    source: Source,
}

#[derive(clap::Args)]
struct RerunArgs {
    /// The run to run again.
    id: String,
    /// Run from this step (its path, as in the record), reusing the
    /// recorded outputs of the steps before it.
    #[arg(long, value_name = "STEP")]
    from: Option<String>,
    /// The input the `--from` step gets instead of its recorded one: JSON,
    /// `@FILE`, or `@-` for stdin.
    #[arg(long, value_name = "JSON", requires = "from")]
    input: Option<String>,
    #[command(flatten)]
    source: Source,
}

/// A run in a list.
#[derive(Serialize, Deserialize)]
pub(super) struct Row {
    run_id: String,
    flow: String,
    status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    accepted_at: Option<String>,
}

/// A page of runs and the cursor of the next.
#[derive(Serialize, Deserialize)]
pub(super) struct Page {
    runs: Vec<Row>,
    next: Option<String>,
}

/// One run, as `show` found it.
pub(super) enum Shown {
    Finished(Box<RunRecord>),
    Unfinished(Row),
}

/// What a cancel did.
pub(super) enum Cancelled {
    /// The server is cancelling it (it was `was`).
    Cancelling { was: RunStatus },
    /// Its final record, `cancelled`, is in the store (it was `was`).
    Recorded { was: RunStatus },
}

/// Where a command reads or writes runs, opened.
enum Runs {
    Store(store::Opened),
    Server(ServerUrl),
}

impl Source {
    /// Opens the store or names the server; with neither, the default
    /// store, said on stderr.
    async fn open(&self, access: Access, doing: &str) -> Result<Runs, Failure> {
        if let Some(server) = &self.server {
            return Ok(Runs::Server(server.clone()));
        }
        let url = match &self.store {
            Some(url) => url.clone(),
            None => {
                let url = StoreUrl::default_in(None).ok_or_else(|| {
                    Failure::usage(
                        "no data directory for the default store: use --store sqlite:PATH, --server URL or set $FLOWHOST_DATA_DIR",
                    )
                })?;
                eprintln!("flowhost: store: {url} (the default; choose with --store or --server)");
                url
            }
        };
        Ok(Runs::Store(store::open(&url, access, doing).await?))
    }

    /// The flag that names this source, for a command line to paste.
    fn flag(&self) -> Option<String> {
        match (&self.store, &self.server) {
            (Some(url), _) => Some(format!("--store {}", quoted(&url.to_string()))),
            (_, Some(url)) => Some(format!("--server {}", quoted(&url.to_string()))),
            _ => None,
        }
    }
}

pub(crate) async fn run(args: RunsArgs) -> Result<(), Failure> {
    match args.command {
        RunsCommand::List(args) => list(args).await,
        RunsCommand::Show(args) => show(args).await,
        RunsCommand::Cancel(args) => cancel(args).await,
        RunsCommand::Rerun(args) => rerun(args).await,
    }
}

async fn list(args: ListArgs) -> Result<(), Failure> {
    let page = match args.source.open(Access::Read, "list runs").await? {
        Runs::Store(store) => store.list(&args).await?,
        Runs::Server(server) => server.list(&args).await?,
    };
    if args.json {
        println!("{}", pretty(&page));
        return Ok(());
    }
    print!("{}", table(&page.runs));
    if let Some(cursor) = &page.next {
        println!("next page: {}", next_page(&args, cursor));
    }
    Ok(())
}

/// The runs as a table: id, flow, status, accepted at.
fn table(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "no runs\n".into();
    }
    let head = ["RUN ID", "FLOW", "STATUS", "ACCEPTED AT"];
    let cells: Vec<[&str; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.run_id.as_str(),
                r.flow.as_str(),
                r.status.as_str(),
                r.accepted_at.as_deref().unwrap_or("-"),
            ]
        })
        .collect();
    let mut widths = head.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&head).chain(&cells) {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
    }
    out
}

/// The command line that lists the next page.
fn next_page(args: &ListArgs, cursor: &str) -> String {
    let mut line = vec!["flowhost runs list".to_string()];
    line.extend(args.source.flag());
    if let Some(flow) = &args.flow {
        line.push(format!("--flow {}", quoted(flow)));
    }
    if let Some(status) = args.status {
        line.push(format!("--status {status}"));
    }
    line.push(format!("--limit {}", args.limit));
    line.push(format!("--cursor {}", quoted(cursor)));
    line.join(" ")
}

/// `text` as one shell word: as is when it is plain, else single-quoted.
fn quoted(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@%+=,".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

async fn show(args: ShowArgs) -> Result<(), Failure> {
    let shown = match args.source.open(Access::Read, "show runs").await? {
        Runs::Store(store) => store.show(&args.id).await?,
        Runs::Server(server) => server.show(&args.id).await?,
    };
    let record = match shown {
        Shown::Unfinished(row) if args.json => {
            println!("{}", pretty(&row));
            return Ok(());
        }
        Shown::Unfinished(row) => {
            let accepted = row
                .accepted_at
                .map(|t| format!("; accepted at {t}"))
                .unwrap_or_default();
            println!(
                "run {} of flow {}: {} (not finished{accepted})",
                row.run_id, row.flow, row.status
            );
            return Ok(());
        }
        Shown::Finished(record) => record,
    };
    if args.json {
        println!("{}", pretty(&record));
    } else {
        print!("{}", trace::timeline(&record));
    }
    if record.status != RunStatus::Succeeded {
        let lines = run::outcome(&record).err().unwrap_or_default();
        return Err(Failure::failed(lines.join("\n")));
    }
    if !args.json {
        match (&record.output, record.output_trimmed) {
            (Some(output), _) => println!("output: {output}"),
            (None, Some(trimmed)) => {
                println!("output: not kept ({} bytes)", trimmed.bytes)
            }
            (None, None) => println!("output: none"),
        }
    }
    Ok(())
}

async fn cancel(args: IdArgs) -> Result<(), Failure> {
    let id = &args.id;
    let done = match args.source.open(Access::Write, "cancel runs").await? {
        Runs::Store(store) => store.cancel(id).await?,
        Runs::Server(server) => server.cancel(id).await?,
    };
    match done {
        Cancelled::Cancelling { was } => println!("run {id}: cancelling (it was {was})"),
        Cancelled::Recorded { was } => {
            println!("run {id}: cancelled (it was {was}; no server ran on the store)")
        }
    }
    Ok(())
}

async fn rerun(args: RerunArgs) -> Result<(), Failure> {
    if args.from.is_some() && args.source.server.is_none() {
        return Err(Failure::usage(
            "--from needs a running server (it runs the flow from a step): use --server URL",
        ));
    }
    let input = match &args.input {
        Some(value) => Some(args::json_arg("--input", value).await?),
        None => None,
    };
    match args.source.open(Access::Write, "rerun runs").await? {
        Runs::Server(server) => {
            let new_id = server
                .rerun(&args.id, args.from.as_deref(), input.as_deref())
                .await?;
            eprintln!("flowhost: run {new_id} started, a rerun of {}", args.id);
            println!("{new_id}");
        }
        Runs::Store(store) => {
            let new_id = store.rerun(&args.id).await?;
            eprintln!(
                "flowhost: run {new_id} accepted, a rerun of {}; it runs when a server next starts on this store",
                args.id
            );
            println!("{new_id}");
        }
    }
    Ok(())
}

/// `value` as indented JSON.
fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// A `--status` value.
fn parse_status(s: &str) -> Result<RunStatus, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_a_shell_would_split() {
        assert_eq!(quoted("sqlite:/var/lib/f.db"), "sqlite:/var/lib/f.db");
        assert_eq!(quoted("my flow"), "'my flow'");
        assert_eq!(quoted("it's"), r"'it'\''s'");
        assert_eq!(quoted(""), "''");
    }

    #[test]
    fn lines_up_the_table() {
        let rows = vec![Row {
            run_id: "r1".into(),
            flow: "orders".into(),
            status: RunStatus::Succeeded,
            accepted_at: Some("2026-01-02T03:04:05.678Z".into()),
        }];
        assert_eq!(
            table(&rows),
            "RUN ID  FLOW    STATUS     ACCEPTED AT\n\
             r1      orders  succeeded  2026-01-02T03:04:05.678Z\n"
        );
        assert_eq!(table(&[]), "no runs\n");
    }
}
