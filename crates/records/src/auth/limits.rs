//! Failed-login limits: a fixed window per key (an identity, a client address).

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

#[derive(Default)]
pub(crate) struct FailureLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

fn limit(key: &str) -> u32 {
    if key.starts_with("ip:") {
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
            let left = WINDOW.checked_sub(start.elapsed())?;
            (*n >= limit(k)).then(|| left.as_secs().max(1))
        })
    }

    /// Counts one failure against every key.
    pub(crate) fn fail(&self, keys: &[String]) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() > SWEEP_AT {
            map.retain(|_, (_, start)| start.elapsed() < WINDOW);
        }
        for k in keys {
            let e = map.entry(k.clone()).or_insert((0, Instant::now()));
            if e.1.elapsed() >= WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
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
