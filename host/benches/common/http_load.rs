//! Load over real HTTP: keep-alive clients POSTing back to back, their
//! latencies and errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http::header::{CONTENT_TYPE, HOST};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// When a load phase ends.
#[derive(Clone, Copy)]
pub(crate) enum Limit {
    Time(Duration),
    Runs(usize),
}

/// Latencies of the runs answered `200`, and everything else counted as errors.
pub(crate) struct Stats {
    pub(crate) latencies: Vec<Duration>,
    pub(crate) errors: usize,
    pub(crate) elapsed: Duration,
}

impl Stats {
    pub(crate) fn p(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1]
    }

    pub(crate) fn row(&self, name: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{name:<34} {:>8} {:>9.0} {:>9.2} {:>9.2} {:>7}",
            self.latencies.len(),
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            ms(self.p(0.5)),
            ms(self.p(0.99)),
            self.errors
        );
    }
}

/// `clients` tasks, each on its own keep-alive connection, POSTing `body` to
/// `path` back to back until `limit`.
pub(crate) async fn load(
    addr: SocketAddr,
    path: &str,
    body: &Bytes,
    clients: usize,
    limit: Limit,
) -> Stats {
    let started = Instant::now();
    let issued = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (path, body, issued) = (path.to_string(), body.clone(), issued.clone());
            tokio::spawn(async move {
                let mut conn: Option<Conn> = None;
                let mut latencies = Vec::new();
                let mut errors = 0;
                loop {
                    let more = match limit {
                        Limit::Time(d) => started.elapsed() < d,
                        Limit::Runs(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
                    };
                    if !more {
                        break;
                    }
                    let t = Instant::now();
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match Conn::open(addr).await {
                            Ok(c) => conn.insert(c),
                            Err(_) => {
                                errors += 1;
                                continue;
                            }
                        },
                    };
                    match c.post(&path, &body).await {
                        Ok((200, _)) => latencies.push(t.elapsed()),
                        Ok((status, _)) => {
                            errors += 1;
                            if status == 429 {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                        Err(_) => {
                            errors += 1;
                            conn = None;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut stats = Stats {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latencies, errors) = task.await.unwrap();
        stats.latencies.extend(latencies);
        stats.errors += errors;
    }
    stats.elapsed = started.elapsed();
    stats.latencies.sort();
    stats
}

/// A keep-alive HTTP/1.1 connection: hyper's client on one TCP stream, one
/// request at a time, as the hand-written client before it (no pool, no
/// per-request connection).
pub(crate) struct Conn(SendRequest<Full<Bytes>>);

pub(crate) type ClientError = Box<dyn std::error::Error + Send + Sync>;

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> Result<Conn, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // Drives the connection until the sender is dropped.
        tokio::spawn(connection);
        Ok(Conn(sender))
    }

    /// GETs `path`; returns the status and the body.
    pub(crate) async fn get(&mut self, path: &str) -> Result<(u16, Bytes), ClientError> {
        self.0.ready().await?;
        let request = Request::get(path)
            .header(HOST, "bench")
            .body(Full::new(Bytes::new()))?;
        let response = self.0.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// POSTs a JSON body; returns the status and the body.
    pub(crate) async fn post(
        &mut self,
        path: &str,
        body: &Bytes,
    ) -> Result<(u16, Bytes), ClientError> {
        self.0.ready().await?;
        let request = Request::post(path)
            .header(HOST, "bench")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))?;
        let response = self.0.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
