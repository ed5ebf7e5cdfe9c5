//! The names in the SQL a collection definition carries: an index statement's index and table
//! names (to drop, check and re-point indexes), and the identifiers a view query names (to find
//! the views a schema change would break).
//!
//! This is a tokenizer, not a SQL parser: it knows quoted identifiers (`"x"`, `` `x` ``, `[x]`),
//! string literals and comments well enough that a name inside a string is never mistaken for
//! an identifier. Pulling in a full SQL parser for two statement shapes would cost more than it
//! buys; the statements are still run by the database, which has the last word.

use std::ops::Range;

/// One token: an identifier (bare or quoted, unquoted text in `name`) or any other symbol.
#[derive(Debug, Clone, PartialEq)]
struct Token {
    /// The identifier's text without quotes; empty for a symbol or a literal.
    name: String,
    /// Where the token sits in the source.
    span: Range<usize>,
    /// True for identifiers, bare or quoted.
    ident: bool,
    /// True for a quoted identifier (a keyword when bare is a name when quoted).
    quoted: bool,
    /// The symbol, for anything that is not an identifier (`(`, `*`, `,`, a literal's quote).
    symbol: char,
}

fn tokens(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
            }
            b'\'' => {
                i = closing(bytes, i, b'\'');
                out.push(Token {
                    name: String::new(),
                    span: start..i,
                    ident: false,
                    quoted: false,
                    symbol: '\'',
                });
            }
            b'"' | b'`' | b'[' => {
                let close = if c == b'[' { b']' } else { c };
                i = closing(bytes, i, close);
                let inner = &sql[start + 1..i.saturating_sub(1).max(start + 1)];
                let doubled = [close as char, close as char].iter().collect::<String>();
                out.push(Token {
                    name: inner.replace(&doubled, &(close as char).to_string()),
                    span: start..i,
                    ident: true,
                    quoted: true,
                    symbol: ' ',
                });
            }
            _ if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                out.push(Token {
                    name: sql[start..i].to_owned(),
                    span: start..i,
                    ident: true,
                    quoted: false,
                    symbol: ' ',
                });
            }
            _ => {
                let ch = sql[i..].chars().next().unwrap_or(' ');
                i += ch.len_utf8();
                out.push(Token {
                    name: String::new(),
                    span: start..i,
                    ident: false,
                    quoted: false,
                    symbol: ch,
                });
            }
        }
    }
    out
}

/// The index just past the quote that closes the one at `open` (a doubled quote escapes).
fn closing(bytes: &[u8], open: usize, close: u8) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == close {
            if close != b']' && bytes.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

fn is_keyword(t: &Token, word: &str) -> bool {
    t.ident && !t.quoted && t.name.eq_ignore_ascii_case(word)
}

/// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON table (...)`, as far as pier needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexSql {
    /// The index name, unquoted.
    pub(crate) name: String,
    /// The table name, unquoted.
    pub(crate) table: String,
    /// Where the table name sits in the statement.
    table_span: Range<usize>,
}

/// Reads an index statement's names; `None` when it is not one `CREATE [UNIQUE] INDEX`.
pub(crate) fn parse_index(sql: &str) -> Option<IndexSql> {
    let t = tokens(sql);
    let mut i = 0;
    let word = |i: usize, w: &str| t.get(i).is_some_and(|t| is_keyword(t, w));
    if !word(i, "create") {
        return None;
    }
    i += 1;
    if word(i, "unique") {
        i += 1;
    }
    if !word(i, "index") {
        return None;
    }
    i += 1;
    if word(i, "if") && word(i + 1, "not") && word(i + 2, "exists") {
        i += 3;
    }
    let name = t.get(i).filter(|t| t.ident)?.name.clone();
    i += 1;
    if !word(i, "on") {
        return None;
    }
    let table = t.get(i + 1).filter(|t| t.ident)?;
    if t.get(i + 2).is_none_or(|t| t.symbol != '(') || t.iter().any(|t| t.symbol == ';') {
        return None;
    }
    Some(IndexSql {
        name,
        table: table.name.clone(),
        table_span: table.span.clone(),
    })
}

impl IndexSql {
    /// The statement `sql` (which this was read from) with its table renamed to `table`.
    pub(crate) fn on_table(&self, sql: &str, table: &str) -> String {
        format!(
            "{}{}{}",
            &sql[..self.table_span.start],
            crate::schema::quote(table),
            &sql[self.table_span.end..]
        )
    }
}

/// True when `query` names `word` as an identifier, bare or quoted; case-insensitive, as SQL
/// names are.
pub(crate) fn names(query: &str, word: &str) -> bool {
    tokens(query)
        .iter()
        .any(|t| t.ident && t.name.eq_ignore_ascii_case(word))
}

/// True when `query` selects `*` anywhere (`SELECT *`, `t.*`), which uses every column.
pub(crate) fn selects_all(query: &str) -> bool {
    let t = tokens(query);
    t.iter().enumerate().any(|(i, tok)| {
        tok.symbol == '*'
            && i > 0
            && (is_keyword(&t[i - 1], "select")
                || is_keyword(&t[i - 1], "distinct")
                || t[i - 1].symbol == ','
                || t[i - 1].symbol == '.')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_statements_give_their_names() {
        for (sql, name, table) in [
            ("CREATE INDEX idx_a ON posts (title)", "idx_a", "posts"),
            (
                "create unique index if not exists \"idx b\" on `posts` (lower(title)) WHERE x != ''",
                "idx b",
                "posts",
            ),
            ("CREATE INDEX [i] ON [my\"t] (a)", "i", "my\"t"),
            ("CREATE INDEX `i` ON `po``sts` (`a`)", "i", "po`sts"),
        ] {
            let got = parse_index(sql).unwrap_or_else(|| panic!("{sql}"));
            assert_eq!(
                (got.name.as_str(), got.table.as_str()),
                (name, table),
                "{sql}"
            );
        }
        for bad in [
            "CREATE TABLE x (a)",
            "CREATE INDEX ON posts (a)",
            "CREATE INDEX i ON posts",
            "CREATE INDEX i ON posts (a); DROP TABLE posts",
            "DROP INDEX i",
            "",
        ] {
            assert_eq!(parse_index(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_index_moves_to_a_renamed_table_and_keeps_the_rest() {
        let sql = "CREATE INDEX `idx_t` ON `posts` (`title`) WHERE title != 'posts'";
        let idx = parse_index(sql).expect("an index");
        assert_eq!(
            idx.on_table(sql, "articles"),
            "CREATE INDEX `idx_t` ON \"articles\" (`title`) WHERE title != 'posts'"
        );
    }

    #[test]
    fn names_ignore_strings_and_comments_and_see_quoted_names() {
        let q = "SELECT id, \"Title\" AS t FROM posts -- body\nWHERE note = 'body' /* n */";
        assert!(names(q, "posts"));
        assert!(names(q, "title"));
        assert!(!names(q, "body"));
        assert!(!names(q, "n"));
        assert!(!names(q, "note_x"));
        assert!(selects_all("SELECT * FROM posts"));
        assert!(selects_all("SELECT p.* FROM posts p"));
        assert!(selects_all("SELECT id, * FROM posts"));
        assert!(!selects_all("SELECT id, count(*) AS n FROM posts"));
    }
}
