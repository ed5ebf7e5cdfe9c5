//! Record and collection ids in PocketBase's alphabet.

use rand::Rng;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A random id of `len` characters from `[a-z0-9]`.
pub(crate) fn random_id(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `len` random decimal digits (PocketBase's collection and field id suffixes are numbers).
pub(crate) fn digits(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// A 15-character record id.
pub(crate) fn record_id() -> String {
    random_id(15)
}

/// True for a valid record id: PocketBase's default id field takes exactly 15 characters of
/// `[a-z0-9]`, generated or given by the client.
pub(crate) fn is_valid_record_id(id: &str) -> bool {
    id.len() == 15
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A secret of `len` URL-safe characters.
pub(crate) fn secret(len: usize) -> String {
    const SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| SAFE[rng.random_range(0..SAFE.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = record_id();
        assert!(is_valid_record_id(&a), "{a}");
        assert_ne!(a, record_id());
        assert!(!is_valid_record_id("short"));
        assert!(!is_valid_record_id("UPPERCASE123456"));
        assert!(!is_valid_record_id("abc'; DROP x--1"));
    }
}
