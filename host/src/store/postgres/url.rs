//! `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?PARAMS]`: how to connect, and
//! how to name the database in messages without its password.
//!
//! tokio-postgres reads the URL, except two TLS parameters it does not know
//! that libpq users expect: `sslmode=verify-ca|verify-full` and
//! `sslrootcert=FILE`, read here (see [`super::tls`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::SslMode;

/// How the connection is encrypted and what of the server is checked, as
/// libpq's `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, its certificate unchecked (libpq's
    /// default).
    Prefer,
    /// TLS or no connection; the certificate is checked against
    /// `sslrootcert` when one is given (as libpq does), else not.
    Require,
    /// TLS, the certificate signed by a trusted root; any host name.
    VerifyCa,
    /// TLS, the certificate signed by a trusted root and naming the host.
    VerifyFull,
}

/// A PostgreSQL store's URL, as given (its password included).
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    text: String,
}

/// What connecting needs: the client's settings and the TLS to use.
#[derive(Debug, Clone)]
pub(crate) struct Connect {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: TlsMode,
    /// `sslrootcert`: the roots to trust instead of the Web's.
    pub(crate) root_cert: Option<PathBuf>,
}

/// How long opening a connection may take unless the URL says
/// (`connect_timeout=SECONDS`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl PgUrl {
    /// The URL as given, password included: for the config file, never for
    /// messages.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URL without its password, for messages and the start line.
    pub fn shown(&self) -> String {
        shown(&self.text)
    }

    /// The client's settings and TLS.
    pub(crate) fn connect(&self) -> Result<Connect, String> {
        let (base, query) = match self.text.split_once('?') {
            Some((base, query)) => (base, query),
            None => (self.text.as_str(), ""),
        };
        let mut tls = None;
        let mut root_cert = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    tls = Some(match decode(value)?.as_str() {
                        "disable" => TlsMode::Disable,
                        "prefer" | "allow" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        other => {
                            return Err(format!(
                                "`sslmode={other}` is not one of disable, prefer, require, \
                                 verify-ca, verify-full"
                            ));
                        }
                    })
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(decode(value)?)),
                _ => rest.push(pair),
            }
        }
        let tls = tls.unwrap_or(TlsMode::Prefer);
        let url = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            // The parser's message never holds the URL: no password leaks.
            format!("not a PostgreSQL URL tokio-postgres can use: {e}")
        })?;
        if config.get_hosts().is_empty() {
            return Err("the URL names no host: `postgres://USER@HOST:PORT/DB`".into());
        }
        config.ssl_mode(match tls {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A cut network shows within seconds on an idle connection (the
        // LISTEN one), not after the system's two hours.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("flowhost");
        }
        Ok(Connect {
            config,
            tls,
            root_cert,
        })
    }
}

/// `text` without the password of its user part and without a `password=`
/// parameter.
fn shown(text: &str) -> String {
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| !p.starts_with("password="))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// A percent-encoded URL parameter's value.
fn decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = value
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("`{value}`: a bad %-escape"))?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{value}`: not UTF-8 once decoded"))
}

impl FromStr for PgUrl {
    type Err = String;

    /// Checks the URL as the client will read it.
    fn from_str(text: &str) -> Result<Self, String> {
        let url = PgUrl {
            text: text.to_string(),
        };
        url.connect()
            .map_err(|why| format!("`{}`: {why}", url.shown()))?;
        Ok(url)
    }
}

/// Shows the URL without its password.
impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

/// Shows the URL without its password.
impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::Host;

    fn url(text: &str) -> PgUrl {
        text.parse().unwrap()
    }

    #[test]
    fn the_password_is_never_shown() {
        let u = url("postgres://app:s3cret@db.example:6432/runs?sslmode=require&password=other");
        assert_eq!(
            u.shown(),
            "postgres://app@db.example:6432/runs?sslmode=require"
        );
        assert_eq!(format!("{u} {u:?}"), format!("{0} {0}", u.shown()));
        assert!(u.as_str().contains("s3cret"), "kept for connecting");
        assert_eq!(
            url("postgresql://h/db").shown(),
            "postgresql://h/db",
            "nothing to hide"
        );
        assert_eq!(
            url("postgres://a:p%40ss@h:1/d?password=x").shown(),
            "postgres://a@h:1/d"
        );
        let e = "postgres://u:hunter2@h:notaport/d"
            .parse::<PgUrl>()
            .unwrap_err();
        assert!(
            !e.contains("hunter2") && e.contains("postgres://u@h:notaport/d"),
            "{e}"
        );
    }

    #[test]
    fn urls_become_client_settings() {
        let c = url("postgres://app:pw@127.0.0.1:5433/runs")
            .connect()
            .unwrap();
        assert_eq!(c.config.get_user(), Some("app"));
        assert_eq!(c.config.get_password(), Some(&b"pw"[..]));
        assert_eq!(c.config.get_dbname(), Some("runs"));
        assert_eq!(c.config.get_ports(), [5433]);
        assert!(matches!(&c.config.get_hosts()[0], Host::Tcp(h) if h == "127.0.0.1"));
        assert_eq!((c.tls, c.root_cert), (TlsMode::Prefer, None));
        assert_eq!(c.config.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(c.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        let c = url("postgres://h/d?connect_timeout=2&application_name=x")
            .connect()
            .unwrap();
        assert_eq!(
            c.config.get_connect_timeout(),
            Some(&Duration::from_secs(2))
        );
        assert_eq!(c.config.get_application_name(), Some("x"));
    }

    #[test]
    fn sslmode_and_sslrootcert_choose_the_tls() {
        for (mode, tls, client) in [
            ("disable", TlsMode::Disable, SslMode::Disable),
            ("prefer", TlsMode::Prefer, SslMode::Prefer),
            ("require", TlsMode::Require, SslMode::Require),
            ("verify-ca", TlsMode::VerifyCa, SslMode::Require),
            ("verify-full", TlsMode::VerifyFull, SslMode::Require),
        ] {
            let c = url(&format!("postgres://h/d?sslmode={mode}&user=u"))
                .connect()
                .unwrap();
            assert_eq!((c.tls, c.config.get_ssl_mode()), (tls, client), "{mode}");
            assert_eq!(c.config.get_user(), Some("u"), "other parameters kept");
        }
        let c = url("postgres://h/d?sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem")
            .connect()
            .unwrap();
        assert_eq!(c.root_cert, Some(PathBuf::from("/etc/ca x.pem")));
        let e = "postgres://h/d?sslmode=sometimes"
            .parse::<PgUrl>()
            .unwrap_err();
        assert!(e.contains("`sslmode=sometimes` is not one of"), "{e}");
        let e = "postgres://h/d?frobnicate=1".parse::<PgUrl>().unwrap_err();
        assert!(e.contains("postgres://h/d?frobnicate=1"), "{e}");
    }
}
