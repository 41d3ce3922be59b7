//! `flowhost token hash`: the `api_token_hash` setting of a token read from
//! stdin, so the token itself never sits in a file or a shell history.

use flowhost::server::TokenHash;

use super::Failure;

/// Arguments of `flowhost token`.
#[derive(clap::Args)]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Read a token from stdin (one line) and print `sha256:HEX`, the value
    /// of `api_token_hash`.
    Hash,
}

pub(crate) async fn run(args: TokenArgs) -> Result<(), Failure> {
    match args.command {
        TokenCommand::Hash => {
            let mut text = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut text)
                .await
                .map_err(|e| Failure::usage(format!("cannot read the token from stdin: {e}")))?;
            let token = text.trim();
            if token.is_empty() {
                return Err(Failure::usage(
                    "no token on stdin: pipe one in, e.g. `openssl rand -hex 32 | tee token | flowhost token hash`",
                ));
            }
            if token.lines().count() > 1 {
                return Err(Failure::usage("the token on stdin must be one line"));
            }
            println!("{}", TokenHash::of(token));
            Ok(())
        }
    }
}
