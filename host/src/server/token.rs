//! The API token: kept as its SHA-256 only (`api_token_hash` in
//! `flowhost.toml`, or the hash of the environment variable that
//! `api_token_env` names), checked in constant time, never logged.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ServeError;
use super::config::ServerConfig;

/// A token's SHA-256, written `sha256:HEX` (64 lowercase hex digits).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `token` hashes to this, in time independent of where they differ.
    pub fn matches(&self, token: &str) -> bool {
        let candidate: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.0.ct_eq(&candidate).into()
    }
}

// The hash is not secret, but nothing about the token needs printing.
impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl std::fmt::Display for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::str::FromStr for TokenHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            "expected `sha256:` and 64 hex digits, as `flowhost token hash` prints them".to_string()
        };
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(TokenHash(bytes))
    }
}

impl TryFrom<String> for TokenHash {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TokenHash> for String {
    fn from(h: TokenHash) -> String {
        h.to_string()
    }
}

/// The token the server requires, if any: `api_token_hash` when set, else
/// the hash of `$api_token_env` when that is set and not empty.
pub(crate) fn configured(config: &ServerConfig) -> Result<Option<TokenHash>, ServeError> {
    if let Some(hash) = &config.api_token_hash {
        return Ok(Some(hash.clone()));
    }
    match std::env::var(&config.api_token_env) {
        Ok(token) if token.trim().is_empty() => Err(ServeError::Auth(format!(
            "${} is set but empty: set it to the API token, or unset it",
            config.api_token_env
        ))),
        Ok(token) => Ok(Some(TokenHash::of(token.trim()))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ServeError::Auth(format!(
            "${} is not valid UTF-8",
            config.api_token_env
        ))),
    }
}

/// Refuses to serve beyond loopback without a token, unless told to.
pub(crate) fn check_exposure(
    config: &ServerConfig,
    token: Option<&TokenHash>,
) -> Result<(), ServeError> {
    let loopback = config.listen.ip().to_canonical().is_loopback();
    if loopback || token.is_some() || config.insecure_no_auth {
        return Ok(());
    }
    Err(ServeError::Auth(format!(
        "refusing to listen on {} without an API token: anyone who can reach it could run \
         flows and read their inputs and outputs. Set `api_token_hash` in flowhost.toml \
         (`flowhost token hash` makes it) or ${}, or listen on loopback (127.0.0.1), or pass \
         --insecure-no-auth to serve it open anyway",
        config.listen, config.api_token_env
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_round_trips_and_matches_only_its_token() {
        let h = TokenHash::of("s3cret");
        let text = h.to_string();
        assert!(
            text.starts_with("sha256:") && text.len() == 7 + 64,
            "{text}"
        );
        let parsed: TokenHash = text.parse().unwrap();
        assert!(parsed.matches("s3cret"));
        assert!(!parsed.matches("s3cret "));
        assert!(!parsed.matches(""));
        for bad in [
            "",
            "sha256:",
            "md5:00",
            &text[..70],
            &text.replace("sha256", "SHA256"),
        ] {
            assert!(bad.parse::<TokenHash>().is_err(), "{bad}");
        }
        let upper = format!("sha256:{}", text[7..].to_uppercase());
        assert_eq!(upper.parse::<TokenHash>(), Ok(h));
        assert!(
            format!("sha256:{}", "é".repeat(32))
                .parse::<TokenHash>()
                .is_err()
        );
    }

    #[test]
    fn only_loopback_serves_without_a_token() {
        let at = |listen: &str, insecure: bool| ServerConfig {
            listen: listen.parse().unwrap(),
            insecure_no_auth: insecure,
            ..ServerConfig::default()
        };
        for open in [
            "127.0.0.1:0",
            "[::1]:0",
            "127.3.4.5:80",
            "[::ffff:127.0.0.1]:0",
        ] {
            assert!(check_exposure(&at(open, false), None).is_ok(), "{open}");
        }
        let e = check_exposure(&at("0.0.0.0:8080", false), None).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("0.0.0.0:8080") && e.contains("--insecure-no-auth"),
            "{e}"
        );
        assert!(check_exposure(&at("0.0.0.0:8080", true), None).is_ok());
        let token = TokenHash::of("t");
        assert!(check_exposure(&at("[::]:8080", false), Some(&token)).is_ok());
    }
}
