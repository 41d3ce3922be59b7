//! HTTP grants: the hosts a call may reach with outbound HTTP, checked once
//! where a grant is read (a flag, a flow file, a config file) so that one that
//! could never match is an error there, not a silent denial later.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A host the guest may reach with outbound HTTP: a name
/// (`api.example.com`), an IPv4 address, or an IPv6 address in brackets
/// (`[::1]`), each with an optional port. Without a port every port of the
/// host is allowed. Checked once, where the grant is read; names compare
/// case-insensitively, addresses by value.
///
/// ```
/// let g: flowhost::HttpGrant = "API.example.com:8443".parse().unwrap();
/// assert_eq!((g.host(), g.port()), ("api.example.com", Some(8443)));
/// assert!("http://api.example.com".parse::<flowhost::HttpGrant>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpGrant {
    /// Lowercase; an address in its canonical form, IPv6 without brackets.
    host: String,
    port: Option<u16>,
}

/// Why a text is not an [`HttpGrant`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid HTTP grant `{grant}`: {reason}")]
pub struct HttpGrantError {
    grant: String,
    reason: String,
}

impl HttpGrant {
    /// The host: lowercase, an IP address in canonical form (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The one port allowed, or `None` for any port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// A warning for a grant that opens every service of this machine: a
    /// loopback host (`localhost`, `127.0.0.1`, `[::1]`, or the unspecified
    /// address, which reaches the same services) without a port, which lets
    /// a step reach flowhost's own API too. `None` for any other grant.
    ///
    /// ```
    /// let g: flowhost::HttpGrant = "localhost".parse().unwrap();
    /// assert!(g.loopback_warning().is_some());
    /// let g: flowhost::HttpGrant = "localhost:8080".parse().unwrap();
    /// assert!(g.loopback_warning().is_none());
    /// ```
    pub fn loopback_warning(&self) -> Option<String> {
        if self.port.is_some() || !is_loopback(&self.host) {
            return None;
        }
        Some(format!(
            "HTTP grant `{self}` opens every loopback service of this machine, flowhost's own API included; name the port, like `{self}:8080`"
        ))
    }

    /// Whether a request to `host` (in [`canonical_host`] form) on `port`
    /// (`None` when unknown) is allowed.
    pub(crate) fn allows(&self, host: &str, port: Option<u16>) -> bool {
        self.host == host && self.port.is_none_or(|p| port == Some(p))
    }
}

/// Whether `host` (in [`canonical_host`] form) is this machine.
fn is_loopback(host: &str) -> bool {
    let local = |ip: IpAddr| ip.is_loopback() || ip.is_unspecified();
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => {
            local(IpAddr::V6(v6)) || v6.to_ipv4_mapped().is_some_and(|v4| local(v4.into()))
        }
        Ok(ip) => local(ip),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    }
}

/// `host` as grants hold it: brackets dropped, an IP address canonical, a name lowercase.
pub(crate) fn canonical_host(host: &str) -> String {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => bare.to_ascii_lowercase(),
    }
}

impl FromStr for HttpGrant {
    type Err = HttpGrantError;

    fn from_str(text: &str) -> Result<Self, HttpGrantError> {
        let fail = |reason: String| HttpGrantError {
            grant: text.to_string(),
            reason,
        };
        let url_part = if text.contains("://") {
            Some("a scheme")
        } else if text.contains(['/', '?', '#']) {
            Some("a path")
        } else if text.contains('@') {
            Some("user info")
        } else {
            None
        };
        if let Some(part) = url_part {
            // A URL where a host belongs: suggest the host (and port) it names.
            let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
            let hint = match authority {
                "" => String::new(),
                a => format!(": `{a}`"),
            };
            return Err(fail(format!(
                "it has {part}; a grant names only a host and an optional port{hint}"
            )));
        }
        let (host, port) = split_port(text).map_err(fail)?;
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(fail(format!(
                        "the port `{p}` is not a number from 1 to 65535"
                    )));
                }
            },
        };
        Ok(HttpGrant {
            host: check_host(host).map_err(fail)?,
            port,
        })
    }
}

/// `host` and the text of the port, if any; an IPv6 address must be in brackets.
fn split_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(inner) = text.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err("a `[` without its `]`".into());
        };
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{addr}` is not an IPv6 address"));
        }
        return match after {
            "" => Ok((&text[..addr.len() + 2], None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((&text[..addr.len() + 2], Some(port))),
                None => Err(format!("unexpected `{after}` after the address")),
            },
        };
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => {
            Err("an IPv6 address goes in brackets, like `[::1]` or `[::1]:8080`".into())
        }
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((text, None)),
    }
}

/// A host name or address, in [`canonical_host`] form.
fn check_host(host: &str) -> Result<String, String> {
    if host.starts_with('[') || host.parse::<Ipv4Addr>().is_ok() {
        return Ok(canonical_host(host));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.is_empty() {
        return Err("it names no host".into());
    }
    if host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!(
            "`{host}` is not a host name (letters, digits, `-` and `_`, in labels separated by `.`)"
        ));
    }
    if host
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("`{host}` is not an IPv4 address"));
    }
    Ok(host.to_ascii_lowercase())
}

impl fmt::Display for HttpGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl TryFrom<String> for HttpGrant {
    type Error = HttpGrantError;

    fn try_from(text: String) -> Result<Self, HttpGrantError> {
        text.parse()
    }
}

impl From<HttpGrant> for String {
    fn from(grant: HttpGrant) -> String {
        grant.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(text: &str) -> (String, Option<u16>) {
        let g: HttpGrant = text.parse().unwrap();
        assert_eq!(g.to_string().parse::<HttpGrant>().unwrap(), g, "round trip");
        (g.host, g.port)
    }

    fn reason(text: &str) -> String {
        text.parse::<HttpGrant>().unwrap_err().to_string()
    }

    #[test]
    fn http_grants_parse_hosts_ports_and_addresses() {
        assert_eq!(grant("API.Example.com"), ("api.example.com".into(), None));
        assert_eq!(
            grant("svc_1.local:8080"),
            ("svc_1.local".into(), Some(8080))
        );
        assert_eq!(grant("127.0.0.1:80"), ("127.0.0.1".into(), Some(80)));
        assert_eq!(grant("[::1]"), ("::1".into(), None));
        assert_eq!(grant("[0:0::1]:8443"), ("::1".into(), Some(8443)));
        assert_eq!(grant("[2001:DB8::1]").0, "2001:db8::1");
    }

    #[test]
    fn http_grants_that_could_never_match_are_refused() {
        let cases = [
            (
                "http://api.example.com",
                "it has a scheme; a grant names only a host and an optional port: `api.example.com`",
            ),
            (
                "https://u@api.example.com:8443/v1",
                "it has a scheme; a grant names only a host and an optional port: `api.example.com:8443`",
            ),
            (
                "api.example.com/v1",
                "it has a path; a grant names only a host and an optional port: `api.example.com`",
            ),
            (
                "user@api.example.com",
                "it has user info; a grant names only a host and an optional port: `api.example.com`",
            ),
            (
                "api.example.com:99999",
                "the port `99999` is not a number from 1 to 65535",
            ),
            (
                "api.example.com:0",
                "the port `0` is not a number from 1 to 65535",
            ),
            (
                "api.example.com:",
                "the port `` is not a number from 1 to 65535",
            ),
            (
                "::1",
                "an IPv6 address goes in brackets, like `[::1]` or `[::1]:8080`",
            ),
            ("[::1", "a `[` without its `]`"),
            ("[nope]", "`nope` is not an IPv6 address"),
            ("[::1]8080", "unexpected `8080` after the address"),
            ("", "it names no host"),
            (":8080", "it names no host"),
            (
                "*.example.com",
                "`*.example.com` is not a host name (letters, digits, `-` and `_`, in labels separated by `.`)",
            ),
            (
                "api..example.com",
                "`api..example.com` is not a host name (letters, digits, `-` and `_`, in labels separated by `.`)",
            ),
            ("999.1.1.1", "`999.1.1.1` is not an IPv4 address"),
        ];
        for (text, why) in cases {
            assert_eq!(reason(text), format!("invalid HTTP grant `{text}`: {why}"));
        }
    }

    #[test]
    fn a_loopback_grant_without_a_port_is_warned_about() {
        for open in [
            "localhost",
            "LocalHost",
            "api.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "[::1]",
            "[::]",
            "[::ffff:127.0.0.1]",
        ] {
            let g: HttpGrant = open.parse().unwrap();
            let warning = g.loopback_warning().unwrap_or_else(|| panic!("{open}"));
            assert!(
                warning.starts_with(&format!("HTTP grant `{g}` opens every loopback service")),
                "{warning}"
            );
        }
        for closed in [
            "localhost:8080",
            "127.0.0.1:80",
            "[::1]:443",
            "api.example.com",
            "10.0.0.1",
            "localhost.example",
        ] {
            let g: HttpGrant = closed.parse().unwrap();
            assert_eq!(g.loopback_warning(), None, "{closed}");
        }
    }

    #[test]
    fn grants_deserialize_checked() {
        use crate::config::Grants;
        let g: Grants = serde_json::from_str(r#"{"http": ["a.example:81"]}"#).unwrap();
        assert_eq!(g.http[0].port(), Some(81));
        let e = serde_json::from_str::<Grants>(r#"{"http": ["http://a.example"]}"#).unwrap_err();
        assert!(e.to_string().contains("it has a scheme"), "{e}");
    }
}
