//! `flowhost cache info` and `flowhost cache clear`, and the cache flags
//! shared by commands that load plugins.

use std::path::PathBuf;

use flowhost::{
    Config, DEFAULT_CACHE_LIMIT, cache_clear, cache_info, default_cache_dir, prepare_cache_dir,
    prepare_cache_key,
};

use super::{Failure, args};

/// Where the compile cache is, for commands that load plugins.
#[derive(clap::Args)]
pub(crate) struct CacheFlags {
    /// The compile cache directory. Default: $FLOWHOST_CACHE_DIR, else
    /// $XDG_CACHE_HOME/flowhost, else ~/.cache/flowhost. Its secret key is
    /// $FLOWHOST_CACHE_KEY, else $XDG_CONFIG_HOME/flowhost/cache.key, else
    /// ~/.config/flowhost/cache.key.
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// Compile every plugin; neither read nor write the compile cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// The compile cache's size limit, for example 512MiB (default 1GiB).
    #[arg(long, global = true, value_parser = args::size)]
    cache_limit: Option<u64>,
}

impl CacheFlags {
    fn dir(&self) -> Option<PathBuf> {
        self.cache_dir.clone().or_else(default_cache_dir)
    }

    fn limit(&self) -> u64 {
        self.cache_limit.unwrap_or(DEFAULT_CACHE_LIMIT)
    }

    /// The host configuration: the defaults with this cache, if it can be
    /// used safely (otherwise a warning, and no cache).
    pub(crate) fn config(&self) -> Config {
        self.apply(Config::default())
    }

    /// `config` with this cache, if it can be used safely.
    pub(crate) fn apply(&self, config: Config) -> Config {
        let config = config.cache_limit(self.limit());
        if self.no_cache {
            return config;
        }
        let Some(dir) = self.dir() else {
            tracing::warn!("no compile cache: set FLOWHOST_CACHE_DIR, XDG_CACHE_HOME or HOME");
            return config;
        };
        // Host::new checks the directory and the key too; check them here
        // first so a bad one means "no cache" rather than "no host".
        match prepare_cache_dir(&dir).and_then(|()| prepare_cache_key(&dir)) {
            Ok(_) => config.cache(Some(dir)),
            Err(e) => {
                tracing::warn!("running without the compile cache: {e}");
                config
            }
        }
    }
}

/// Arguments of `flowhost cache`.
#[derive(clap::Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
    #[command(flatten)]
    flags: CacheFlags,
}

#[derive(clap::Subcommand)]
enum CacheCommand {
    /// Print the cache's location, entries, total size, limit and key file.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete every cache entry.
    Clear,
}

pub(crate) async fn run(args: CacheArgs) -> Result<(), Failure> {
    let dir = args.flags.dir().ok_or_else(|| {
        Failure::usage("no cache directory: pass --cache-dir or set FLOWHOST_CACHE_DIR")
    })?;
    let limit = args.flags.limit();
    match args.command {
        CacheCommand::Info { json } => {
            let info = tokio::task::spawn_blocking(move || cache_info(&dir, limit))
                .await
                .map_err(Failure::failed)?
                .map_err(Failure::failed)?;
            if json {
                let text = serde_json::to_string_pretty(&info).map_err(Failure::failed)?;
                println!("{text}");
            } else {
                let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
                println!("location: {}", info.dir.display());
                println!("entries:  {}", info.entries);
                println!("size:     {}", size(info.total_bytes));
                println!("limit:    {}", size(info.limit));
                match &info.key_file {
                    Some(key) => println!("key:      {}", key.display()),
                    None => println!("key:      none (set FLOWHOST_CACHE_KEY or HOME)"),
                }
            }
        }
        CacheCommand::Clear => {
            let shown = dir.display().to_string();
            let n = tokio::task::spawn_blocking(move || cache_clear(&dir))
                .await
                .map_err(Failure::failed)?
                .map_err(Failure::failed)?;
            println!("{shown}: {n} entries deleted");
        }
    }
    Ok(())
}
