//! Small SQL text helpers shared by the engines.

use std::borrow::Cow;

/// Rewrites PostgreSQL placeholders (`$1`) into SQLite's numbered form (`?1`), leaving string
/// literals, quoted identifiers and comments alone.
pub(crate) fn to_sqlite(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == q {
                        // A doubled quote is an escaped quote inside the literal.
                        if bytes.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push_str(&sql[last..i]);
                out.push('?');
                i += 1;
                last = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[last.min(sql.len())..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_literals() {
        assert_eq!(to_sqlite("SELECT $1, $12"), "SELECT ?1, ?12");
        assert_eq!(
            to_sqlite("SELECT '$1', \"a$2\", $3 -- $4\n, $5 /* $6 */"),
            "SELECT '$1', \"a$2\", ?3 -- $4\n, ?5 /* $6 */"
        );
        assert_eq!(to_sqlite("SELECT 'it''s $1', $2"), "SELECT 'it''s $1', ?2");
        assert_eq!(to_sqlite("SELECT $a"), "SELECT $a");
        assert!(matches!(to_sqlite("SELECT 1"), Cow::Borrowed(_)));
    }

    #[test]
    fn unterminated_input_never_panics() {
        for s in ["'", "\"abc", "/*", "--", "$", "$1'", "'$1", "/* $1"] {
            let _ = to_sqlite(s);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_input_is_rewritten_without_panicking(sql in ".*") {
            let out = to_sqlite(&sql);
            if !sql.contains('$') {
                proptest::prop_assert_eq!(out.as_ref(), sql.as_str());
            }
        }

        #[test]
        fn plain_placeholders_all_become_numbered(ns in proptest::collection::vec(1u16..999, 0..20)) {
            let sql: String = ns.iter().map(|n| format!("${n}, ")).collect();
            let want: String = ns.iter().map(|n| format!("?{n}, ")).collect();
            proptest::prop_assert_eq!(to_sqlite(&sql).into_owned(), want);
        }
    }
}
