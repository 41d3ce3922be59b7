//! Dialing one connection for the pool: TCP to exactly the authority the
//! allow-list checked, with TLS (rustls, the Web's roots) for `https`.
//!
//! The pool asks for a connection with only a URI, so the request's connect
//! deadline reaches the connector through a task-local ([`CONNECT_BY`]) set
//! around the request: the pool calls the connector while it polls the
//! request, which is when the deadline is read and bound into the dial.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

tokio::task_local! {
    /// When the connect of the request being polled must be done by.
    pub(super) static CONNECT_BY: Instant;
}

/// A connect with no [`CONNECT_BY`] in scope (none is expected) gives up
/// after this, so no dial outlives the call that started it by much.
const CONNECT_FALLBACK: Duration = Duration::from_secs(30);

/// Why a connection could not be made; the pool turns it into the guest's
/// `error-code`.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    #[error("connect timed out")]
    Timeout,
    #[error("the URL has no host or port to dial")]
    NoTarget,
    #[error("{0}")]
    Io(io::Error),
    #[error("TLS: {0}")]
    Tls(io::Error),
    #[error("not a name TLS can verify: {0}")]
    ServerName(String),
}

/// Dials TCP, and TLS for `https`. Cheap to clone (the pool clones it per connect).
#[derive(Clone)]
pub(super) struct Connector {
    tls: TlsConnector,
}

impl Connector {
    pub(super) fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Connector {
            tls: TlsConnector::from(tls),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let by = CONNECT_BY
            .try_with(|by| *by)
            .unwrap_or_else(|_| crate::duration::after(Instant::now(), CONNECT_FALLBACK));
        let tls = self.tls.clone();
        Box::pin(async move {
            let left = by.saturating_duration_since(Instant::now());
            tokio::time::timeout(left, dial(&uri, &tls))
                .await
                .unwrap_or(Err(ConnectError::Timeout))
        })
    }
}

/// Connects to `uri`'s host and port: the allow-list set both.
async fn dial(uri: &Uri, tls: &TlsConnector) -> Result<Conn, ConnectError> {
    let host = uri.host().ok_or(ConnectError::NoTarget)?;
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    // `host` keeps an IPv6 address's brackets, so this parses as an address.
    let tcp = TcpStream::connect(format!("{host}:{port}"))
        .await
        .map_err(ConnectError::Io)?;
    // Requests are small and interactive: do not wait to fill segments.
    let _ = tcp.set_nodelay(true);
    if !https {
        return Ok(Conn(TokioIo::new(Stream::Plain(tcp))));
    }
    let name = server_name(host)?;
    let stream = tls.connect(name, tcp).await.map_err(ConnectError::Tls)?;
    Ok(Conn(TokioIo::new(Stream::Tls(Box::new(stream)))))
}

/// The name TLS verifies the certificate against: the host, or its address.
fn server_name(host: &str) -> Result<ServerName<'static>, ConnectError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    ServerName::try_from(bare.to_string()).map_err(|_| ConnectError::ServerName(bare.to_string()))
}

/// The TLS settings every pooled `https` connection uses: ring, the Web's
/// roots (webpki-roots), HTTP/1.1.
pub(super) fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One dialed connection, as the pool drives it.
pub(super) struct Conn(TokioIo<Stream>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_verifies_the_host_or_its_address() {
        assert_eq!(
            server_name("api.example.com").unwrap(),
            ServerName::try_from("api.example.com").unwrap()
        );
        assert_eq!(
            server_name("[::1]").unwrap(),
            ServerName::from("::1".parse::<IpAddr>().unwrap())
        );
        assert_eq!(
            server_name("127.0.0.1").unwrap(),
            ServerName::from("127.0.0.1".parse::<IpAddr>().unwrap())
        );
    }

    #[test]
    fn tls_settings_build() {
        let config = tls_config().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
