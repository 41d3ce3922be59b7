//! The allow-list: which host and port a request may go to, checked once,
//! and then exactly what is dialed.

use http::Uri;
use http::uri::Authority;

use crate::config::{HttpGrant, canonical_host};

/// The hosts (and ports) one call may reach.
pub(crate) struct AllowList {
    allowed: Vec<HttpGrant>,
}

impl AllowList {
    pub(crate) fn new(allowed: &[HttpGrant]) -> Self {
        AllowList {
            allowed: allowed.to_vec(),
        }
    }

    /// Where `uri` may be sent: the host and port a grant allows, which
    /// are then exactly what is dialed. A URI without a port goes to its
    /// scheme's default port, so `name:443` allows `https://name/`. An
    /// authority with user info (`http://a@b/`) is refused: what is checked
    /// and what is dialed must be the same text.
    pub(crate) fn target(&self, uri: &Uri) -> Result<Authority, &'static str> {
        let authority = uri.authority().ok_or("the URL names no host")?;
        if authority.as_str().contains('@') {
            return Err("the URL has user info (`user@`), which steps may not send");
        }
        let host = canonical_host(authority.host());
        let port = uri
            .port_u16()
            .or(match uri.scheme_str() {
                Some("http") => Some(80),
                Some("https") => Some(443),
                _ => None,
            })
            .ok_or("the URL has no port and a scheme other than http or https")?;
        if !self.allowed.iter().any(|g| g.allows(&host, Some(port))) {
            return Err("host not in the step's `http` grant");
        }
        let text = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        text.parse().map_err(|_| "the URL's host cannot be dialed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(grants: &[&str]) -> AllowList {
        let grants: Vec<HttpGrant> = grants.iter().map(|g| g.parse().unwrap()).collect();
        AllowList::new(&grants)
    }

    #[test]
    fn allow_list_matches_host_and_port() {
        let p = policy(&[
            "API.example.com",
            "127.0.0.1:8080",
            "[::1]:443",
            "tls.example.com:443",
            "127.0.0.1:80",
        ]);
        let allows = |uri: &str| p.target(&uri.parse().unwrap()).is_ok();
        assert!(allows("http://api.example.com/v1"));
        assert!(allows("https://Api.Example.com:8443/"));
        assert!(allows("http://127.0.0.1:8080/"));
        assert!(!allows("http://127.0.0.1:8081/"));
        assert!(allows("http://127.0.0.1/"), "port 80 by default");
        assert!(!allows("https://127.0.0.1/"), "port 443, not 80 or 8080");
        assert!(
            allows("https://[0:0::1]/"),
            "IPv6 compares by value, 443 by default"
        );
        assert!(allows("https://tls.example.com/"));
        assert!(!allows("http://tls.example.com/"), "port 80, not 443");
        assert!(!allows("http://evil.example.com/"));
        assert!(!allows("http://api.example.com.evil.com/"));
    }

    #[test]
    fn what_is_dialed_is_what_was_checked() {
        let p = policy(&["localhost", "[::1]:8443"]);
        let target = |uri: &str| p.target(&uri.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(target("http://LocalHost/x").unwrap(), "localhost:80");
        assert_eq!(target("https://localhost:9000/").unwrap(), "localhost:9000");
        assert_eq!(target("https://[0::1]:8443/").unwrap(), "[::1]:8443");
        for uri in [
            "http://127.0.0.1:18502@localhost/",
            "http://user:pw@localhost:8080/",
            "http://@localhost/",
        ] {
            assert_eq!(
                target(uri).unwrap_err(),
                "the URL has user info (`user@`), which steps may not send",
                "{uri}"
            );
        }
    }
}
