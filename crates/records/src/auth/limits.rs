//! Failed-login limits, and limits on mails sent: a fixed window per key (an identity, a
//! client address, an address mailed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per identity within the window.
const PER_IDENTITY: u32 = 5;
/// Failures allowed per client address within the window (several identities).
const PER_CLIENT: u32 = 20;
const WINDOW: Duration = Duration::from_secs(60);
/// Entries kept before old windows are swept.
const SWEEP_AT: usize = 10_000;

/// How long after a verification or reset mail the next one to the same address waits, as
/// PocketBase waits.
const RESEND_AFTER: Duration = Duration::from_secs(120);

#[derive(Default)]
pub(crate) struct FailureLimiter {
    /// When the last mail of a kind went to an address.
    sent: Mutex<HashMap<String, Instant>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Mails allowed per client address within the window (any addresses).
const MAILS_PER_CLIENT: u32 = 100;
/// One-time-password attempts allowed per record and client address, as PocketBase allows.
const OTP_ATTEMPTS: u32 = 5;
const OTP_WINDOW: Duration = Duration::from_secs(180);

fn window(key: &str) -> Duration {
    if key.starts_with("otp:") {
        OTP_WINDOW
    } else {
        WINDOW
    }
}

fn limit(key: &str) -> u32 {
    if key.starts_with("otp:") {
        OTP_ATTEMPTS
    } else if key.starts_with("mailip:") {
        MAILS_PER_CLIENT
    } else if key.starts_with("ip:") {
        PER_CLIENT
    } else {
        PER_IDENTITY
    }
}

impl FailureLimiter {
    /// Seconds until the first blocked key frees up, if any key is over its limit.
    pub(crate) fn blocked(&self, keys: &[String]) -> Option<u64> {
        let map = self.failures.lock().ok()?;
        keys.iter().find_map(|k| {
            let (n, start) = map.get(k)?;
            let left = window(k).checked_sub(start.elapsed())?;
            (*n >= limit(k)).then(|| left.as_secs().max(1))
        })
    }

    /// Counts one failure against every key.
    pub(crate) fn fail(&self, keys: &[String]) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() > SWEEP_AT {
            map.retain(|k, (_, start)| start.elapsed() < window(k));
        }
        for k in keys {
            let e = map.entry(k.clone()).or_insert((0, Instant::now()));
            if e.1.elapsed() >= window(k) {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
    }

    /// Whether a mail for `key` may go now (none went within [`RESEND_AFTER`]); notes it if so.
    pub(crate) fn may_resend(&self, key: &str) -> bool {
        let Ok(mut map) = self.sent.lock() else {
            return false;
        };
        if map.len() > SWEEP_AT {
            map.retain(|_, at| at.elapsed() < RESEND_AFTER);
        }
        match map.get(key) {
            Some(at) if at.elapsed() < RESEND_AFTER => false,
            _ => {
                map.insert(key.to_owned(), Instant::now());
                true
            }
        }
    }

    /// Forgets a key (a successful login clears its identity's count).
    pub(crate) fn clear(&self, key: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_blocked_after_five_failures() {
        let l = FailureLimiter::default();
        let keys = ["id:c:a@b.c".to_owned(), "ip:1.2.3.4".to_owned()];
        for _ in 0..PER_IDENTITY {
            assert_eq!(l.blocked(&keys), None);
            l.fail(&keys);
        }
        assert!(l.blocked(&keys).is_some_and(|s| (1..=60).contains(&s)));
        // Another identity from the same client still may try, up to the client limit.
        let other = ["id:c:x@y.z".to_owned(), "ip:1.2.3.4".to_owned()];
        assert_eq!(l.blocked(&other), None);
        l.clear(&keys[0]);
        assert_eq!(l.blocked(&keys), None);
    }
}
