//! Request ids: generated once per request at the outermost layer, kept when a client (or a
//! gateway in front) sent a sane one.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A random per-process prefix and a counter: 24 lowercase hex digits, unique per process.
pub struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

impl RequestIds {
    /// A generator with a fresh random prefix.
    pub fn new() -> RequestIds {
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        RequestIds {
            prefix: h.finish(),
            counter: AtomicU64::new(0),
        }
    }

    /// The next id.
    pub fn next(&self) -> [u8; 24] {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 24];
        hex(&mut buf[..16], self.prefix);
        hex(&mut buf[16..], n);
        buf
    }
}

fn hex(out: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// A client-supplied id is kept when it is 1 to 128 characters of `[A-Za-z0-9._:-]`.
pub fn is_sane(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_sane() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert!(is_sane(&a));
    }

    #[test]
    fn odd_client_ids_are_refused() {
        for bad in ["", "has space", "semi;colon", &"x".repeat(129), "quote\""] {
            assert!(!is_sane(bad.as_bytes()), "{bad:?}");
        }
        assert!(is_sane(b"abc-123_x.y:z"));
    }
}
