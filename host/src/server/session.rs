//! UI sessions: random ids handed out by the login form, each with an
//! expiry, at most [`MAX_SESSIONS`] at once, kept in memory (a restart signs
//! everyone out).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The cookie that carries a session id.
pub(crate) const COOKIE: &str = "flowhost_session";

/// Sessions alive at once; past it, a login ends the oldest.
const MAX_SESSIONS: usize = 1000;

/// The live sessions, by the SHA-256 of their id: a lookup's timing says
/// nothing about the ids.
#[derive(Debug)]
pub(crate) struct Sessions {
    lifetime: Duration,
    live: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Sessions {
    pub(crate) fn new(lifetime: Duration) -> Sessions {
        Sessions {
            lifetime,
            live: Mutex::default(),
        }
    }

    /// How long a session lasts.
    pub(crate) fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new session; its id, or `None` when the system has no randomness.
    pub(crate) fn open(&self) -> Option<String> {
        let mut id = [0u8; 32];
        getrandom::fill(&mut id).ok()?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, expires| *expires > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(key(&id), now + self.lifetime);
        Some(id)
    }

    /// Whether `id` is a session that has not expired.
    pub(crate) fn valid(&self, id: &str) -> bool {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(&key(id)).is_some_and(|e| *e > Instant::now())
    }

    /// Ends a session.
    pub(crate) fn close(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(&key(id));
    }
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The session id in the request's `Cookie` headers, if any.
pub(crate) fn from_cookies(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_end_and_are_bounded() {
        let s = Sessions::new(Duration::from_secs(60));
        let a = s.open().unwrap();
        assert_eq!(a.len(), 64);
        assert!(s.valid(&a) && !s.valid("nope") && !s.valid(""));
        s.close(&a);
        assert!(!s.valid(&a));
        let first = s.open().unwrap();
        for _ in 0..MAX_SESSIONS {
            s.open().unwrap();
        }
        assert!(!s.valid(&first), "the oldest session makes room");
        assert_eq!(s.live.lock().unwrap().len(), MAX_SESSIONS);
        let short = Sessions::new(Duration::ZERO);
        let gone = short.open().unwrap();
        assert!(!short.valid(&gone));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; b=2".parse().unwrap());
        assert_eq!(from_cookies(&h), None);
        h.append(
            http::header::COOKIE,
            "x=y;  flowhost_session=abc ; z".parse().unwrap(),
        );
        assert_eq!(from_cookies(&h), Some("abc"));
    }
}
