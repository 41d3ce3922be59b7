//! The fleet's notices: one connection of its own `LISTEN`s on channel
//! `flowhost`; every worker `NOTIFY`s in the transaction that makes the news
//! (so a notice never announces what did not commit). Payloads: `queued`,
//! `finished RUN`, `cancel RUN`.
//!
//! The connection is pinged every few seconds. When it is lost, it is opened
//! again with backoff, and [`Notice::Resync`] tells the subscribers that
//! notices may have been missed meanwhile.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, Client};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use super::open::{Opened, pg_error};
use super::url::Connect;
use crate::store::{Notice, StoreError};

/// How often the listening connection is checked.
const PING_EVERY: Duration = Duration::from_secs(3);
/// How long a check may take before the connection counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest wait between attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts listening (the first connection is made now: a database that
/// cannot be reached fails the open) and forwards notices to `notices`
/// until `stop`.
pub(super) async fn listen(
    opened: &Opened,
    what: &str,
    notices: broadcast::Sender<Notice>,
    stop: CancellationToken,
) -> Result<(), StoreError> {
    let first = connect(&opened.connect, &opened.tls, what).await?;
    let listener = Listener {
        connect: opened.connect.clone(),
        tls: opened.tls.clone(),
        what: what.to_string(),
        notices,
        stop,
    };
    tokio::spawn(listener.run(first));
    Ok(())
}

/// The notice of a payload, if it is one.
fn parse(payload: &str) -> Option<Notice> {
    match payload.split_once(' ') {
        None if payload == "queued" => Some(Notice::Queued),
        Some(("finished", run)) => Some(Notice::Finished(run.to_string())),
        Some(("cancel", run)) => Some(Notice::Cancel(run.to_string())),
        _ => None,
    }
}

type Listening = (Client, mpsc::UnboundedReceiver<Notice>);

/// A connection that LISTENs, its notices forwarded by the task driving it.
async fn connect(
    connect: &Connect,
    tls: &MakeRustlsConnect,
    what: &str,
) -> Result<Listening, StoreError> {
    let (client, mut connection) = connect
        .config
        .connect(tls.clone())
        .await
        .map_err(|e| pg_error(what, e))?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message
                && let Some(notice) = parse(n.payload())
                && tx.send(notice).is_err()
            {
                break;
            }
        }
    });
    client
        .batch_execute("LISTEN flowhost")
        .await
        .map_err(|e| pg_error(what, e))?;
    Ok((client, rx))
}

struct Listener {
    connect: Connect,
    tls: MakeRustlsConnect,
    what: String,
    notices: broadcast::Sender<Notice>,
    stop: CancellationToken,
}

impl Listener {
    async fn run(self, first: Listening) {
        let mut current = Some(first);
        let mut delay = Duration::from_millis(100);
        loop {
            if let Some((client, rx)) = current.take() {
                if self.serve(&client, rx).await {
                    return;
                }
                tracing::warn!(store = %self.what, "lost the connection listening for the fleet's notices; reconnecting");
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            match connect(&self.connect, &self.tls, &self.what).await {
                Ok(listening) => {
                    current = Some(listening);
                    delay = Duration::from_millis(100);
                    let _ = self.notices.send(Notice::Resync);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot listen for the fleet's notices yet");
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Forwards notices until the connection is lost (`false`) or the store
    /// stops (`true`).
    async fn serve(&self, client: &Client, mut rx: mpsc::UnboundedReceiver<Notice>) -> bool {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return true,
                notice = rx.recv() => match notice {
                    Some(notice) => {
                        let _ = self.notices.send(notice);
                    }
                    None => return false,
                },
                _ = ping.tick() => {
                    let answered = tokio::time::timeout(PING_TIMEOUT, client.simple_query("")).await;
                    if !matches!(answered, Ok(Ok(_))) {
                        return false;
                    }
                }
            }
        }
    }
}
