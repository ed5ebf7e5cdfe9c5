//! File names: PocketBase's stored name for an upload (the original name in snake case, cut to
//! 100 characters, plus `_` and ten random characters, plus a cleaned extension), and the check
//! that a name asked for in a URL can only be one pier made.

use rand::Rng;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `n` random characters of `[a-z0-9]`.
pub fn random(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// The extension of `name` with its dot, keeping a double one (`.tar.gz`).
fn extension(name: &str) -> &str {
    let Some(primary) = name.rfind('.') else {
        return "";
    };
    match name[..primary].rfind('.') {
        Some(secondary) => &name[secondary..],
        None => &name[primary..],
    }
}

/// Words of ASCII letters and digits joined by `_`, lowercase, with `_` before an upper-case
/// letter that follows a lower-case one (`helloWorld` → `hello_world`).
fn snake_case(s: &str) -> String {
    let mut out = String::new();
    for word in s
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('_');
        }
        let mut prev_upper = true;
        for c in word.chars() {
            if c.is_ascii_uppercase() && !prev_upper {
                out.push('_');
            }
            prev_upper = c.is_ascii_uppercase();
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The name an upload is stored under. `original` is what the client sent (only its last path
/// segment counts); `sniffed_ext` is used when the original has no usable extension.
pub fn stored_name(original: &str, sniffed_ext: Option<&str>) -> String {
    let base = original
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .replace('\0', "");
    // Cut very long names from the front, on a character boundary.
    let mut name = base.as_str();
    if name.len() > 300 {
        let mut start = name.len() - 300;
        while !name.is_char_boundary(start) {
            start += 1;
        }
        name = &name[start..];
    }
    let original_ext = extension(name);
    let cleaned: String = original_ext
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_.*-+=#".contains(*c))
        .collect();
    let mut ext = format!(".{}", cleaned.trim_matches('.'));
    if ext == "." {
        ext = sniffed_ext.map(|e| format!(".{e}")).unwrap_or_default();
    }
    if ext.len() > 20 {
        ext = format!(".{}", ext[ext.len() - 20..].trim_matches('.'));
    }
    let stem = name[..name.len() - original_ext.len()].trim_matches('.');
    let mut clean = snake_case(stem);
    if clean.len() < 3 {
        clean.push_str(&random(10));
    } else if clean.len() > 100 {
        clean.truncate(100);
    }
    format!("{clean}_{}{ext}", random(10))
}

/// True when `name` could be a stored name: one path segment of the characters
/// [`stored_name`] writes (what a URL asks for is checked with this before any lookup).
pub fn is_stored_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 160
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.*-+=#".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(name: &str) -> (String, String) {
        // stem_random.ext → (stem, ext)
        let (left, ext) = match name.find('.') {
            Some(i) => (&name[..i], &name[i..]),
            None => (name, ""),
        };
        let (stem, rand) = left.rsplit_once('_').unwrap();
        assert_eq!(rand.len(), 10, "{name}");
        (stem.to_owned(), ext.to_owned())
    }

    #[test]
    fn names_follow_pocketbase() {
        assert_eq!(
            shape(&stored_name("photo.png", None)),
            ("photo".into(), ".png".into())
        );
        assert_eq!(
            shape(&stored_name("../../etc/pa ss wd.TXT", None)),
            ("pa_ss_wd".into(), ".TXT".into())
        );
        assert_eq!(
            shape(&stored_name("helloWorld.tar.gz", None)).1,
            ".tar.gz".to_owned()
        );
        assert_eq!(shape(&stored_name("helloWorld.x", None)).0, "hello_world");
        let long = format!("{}.txt", "x".repeat(500));
        let (stem, ext) = shape(&stored_name(&long, None));
        assert_eq!((stem.len(), ext.as_str()), (100, ".txt"));
        // Too short: a random part is added.
        let (stem, ext) = shape(&stored_name(".hidden", None));
        assert_eq!((stem.len(), ext.as_str()), (10, ".hidden"));
        assert_eq!(shape(&stored_name("noext", Some("png"))).1, ".png");
        assert!(is_stored_name(&stored_name("a\0b/<script>.svg", None)));
        assert!(!is_stored_name("../x"));
        assert!(!is_stored_name("a/b"));
        assert!(!is_stored_name(".env"));
        assert!(!is_stored_name("a\0b"));
    }
}
