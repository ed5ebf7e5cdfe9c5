//! Splits filter text into tokens with byte positions. Whitespace and `//` line comments are
//! skipped. Never panics: every index is checked, and slicing only happens on char boundaries.

use crate::ast::{CompareOp, Literal, Operator, Quantifier};
use crate::error::{FilterError, SyntaxError};

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    /// Byte offset of the first character.
    pub(crate) start: usize,
    /// Byte offset just past the last character.
    pub(crate) end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    LeftParen,
    RightParen,
    Comma,
    And,
    Or,
    Operator(Operator),
    Text(String),
    Number(Literal),
    /// An identifier, keyword, macro or function name, as written.
    Word(String),
}

/// Returns whether `character` may start a word.
pub(crate) fn is_word_start(character: char) -> bool {
    character.is_ascii_alphabetic() || character == '_' || character == '@'
}

/// Returns whether `character` may continue a word.
pub(crate) fn is_word_continue(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | ':')
}

pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut lexer = Lexer {
        input,
        position: 0,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    input: &'a str,
    position: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.input.get(self.position..)?.chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        let mut chars = self.input.get(self.position..)?.chars();
        chars.next();
        chars.next()
    }

    fn bump(&mut self) -> Option<char> {
        let character = self.peek()?;
        self.position += character.len_utf8();
        Some(character)
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token {
            kind,
            start,
            end: self.position,
        });
    }

    fn run(&mut self) -> Result<(), FilterError> {
        while let Some(character) = self.peek() {
            let start = self.position;
            match character {
                c if c.is_whitespace() => {
                    self.bump();
                }
                '/' if self.peek_second() == Some('/') => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '(' | ')' | ',' => {
                    self.bump();
                    let kind = match character {
                        '(' => TokenKind::LeftParen,
                        ')' => TokenKind::RightParen,
                        _ => TokenKind::Comma,
                    };
                    self.push(kind, start);
                }
                '&' | '|' => {
                    self.bump();
                    if self.peek() != Some(character) {
                        return Err(FilterError::syntax(
                            start,
                            SyntaxError::UnexpectedCharacter(character),
                        ));
                    }
                    self.bump();
                    let kind = if character == '&' {
                        TokenKind::And
                    } else {
                        TokenKind::Or
                    };
                    self.push(kind, start);
                }
                '?' => {
                    self.bump();
                    let comparison = self.comparison().ok_or(FilterError::syntax(
                        start,
                        SyntaxError::UnexpectedCharacter('?'),
                    ))?;
                    self.push(
                        TokenKind::Operator(Operator {
                            comparison,
                            quantifier: Quantifier::AnyOf,
                        }),
                        start,
                    );
                }
                '=' | '!' | '<' | '>' | '~' => {
                    let comparison = self.comparison().ok_or(FilterError::syntax(
                        start,
                        SyntaxError::UnexpectedCharacter(character),
                    ))?;
                    self.push(
                        TokenKind::Operator(Operator {
                            comparison,
                            quantifier: Quantifier::Each,
                        }),
                        start,
                    );
                }
                '"' | '\'' => self.string(character)?,
                c if c.is_ascii_digit() => self.number()?,
                '-' | '.'
                    if self
                        .peek_second()
                        .is_some_and(|c| c.is_ascii_digit() || c == '.') =>
                {
                    self.number()?;
                }
                c if is_word_start(c) => {
                    self.bump();
                    while self.peek().is_some_and(is_word_continue) {
                        self.bump();
                    }
                    let word = self.input.get(start..self.position).unwrap_or_default();
                    self.push(TokenKind::Word(word.to_owned()), start);
                }
                other => {
                    return Err(FilterError::syntax(
                        start,
                        SyntaxError::UnexpectedCharacter(other),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads a comparison operator without its `?` prefix.
    fn comparison(&mut self) -> Option<CompareOp> {
        let first = self.bump()?;
        let followed_by_equals = self.peek() == Some('=');
        let comparison = match first {
            '=' => CompareOp::Eq,
            '~' => CompareOp::Like,
            '!' if followed_by_equals => CompareOp::NotEq,
            '!' if self.peek() == Some('~') => CompareOp::NotLike,
            '>' if followed_by_equals => CompareOp::Gte,
            '>' => CompareOp::Gt,
            '<' if followed_by_equals => CompareOp::Lte,
            '<' => CompareOp::Lt,
            _ => return None,
        };
        if matches!(
            comparison,
            CompareOp::NotEq | CompareOp::NotLike | CompareOp::Gte | CompareOp::Lte
        ) {
            self.bump();
        }
        Some(comparison)
    }

    /// Reads a quoted string. `\\` and a backslash before either quote character stand for the
    /// character itself; any other backslash is kept as written (so `"50\%"` reaches a LIKE
    /// pattern as `50\%`, as in PocketBase).
    fn string(&mut self, quote: char) -> Result<(), FilterError> {
        let start = self.position;
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(FilterError::syntax(start, SyntaxError::UnterminatedString));
                }
                Some('\\') => match self.peek() {
                    Some(c @ ('\\' | '"' | '\'')) => {
                        self.bump();
                        text.push(c);
                    }
                    _ => text.push('\\'),
                },
                Some(c) if c == quote => break,
                Some(c) => text.push(c),
            }
        }
        self.push(TokenKind::Text(text), start);
        Ok(())
    }

    /// Reads `-?digits[.digits]` (or `-?.digits`). A whole number that overflows `i64` becomes a
    /// real.
    fn number(&mut self) -> Result<(), FilterError> {
        let start = self.position;
        if self.peek() == Some('-') {
            self.bump();
        }
        let mut dots = 0;
        while let Some(c) = self.peek() {
            if c == '.' {
                dots += 1;
            } else if !c.is_ascii_digit() {
                break;
            }
            self.bump();
        }
        // Letters or underscores glued to a number (`12abc`) make it invalid, not two tokens.
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.bump();
        }
        let text = self.input.get(start..self.position).unwrap_or_default();
        let invalid = || FilterError::syntax(start, SyntaxError::InvalidNumber(text.to_owned()));
        let digits_ok = text
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.');
        if !digits_ok || dots > 1 || text.ends_with('.') {
            return Err(invalid());
        }
        let literal = if dots == 0 {
            match text.parse::<i64>() {
                Ok(value) => Literal::Integer(value),
                Err(_) => Literal::Real(text.parse::<f64>().map_err(|_| invalid())?),
            }
        } else {
            Literal::Real(text.parse::<f64>().map_err(|_| invalid())?)
        };
        self.push(TokenKind::Number(literal), start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<TokenKind> {
        tokenize(input)
            .unwrap()
            .into_iter()
            .map(|token| token.kind)
            .collect()
    }

    #[test]
    fn strings_resolve_quote_and_backslash_escapes_only() {
        assert_eq!(
            kinds(r#""a\"b" 'c\'d' "e\\f" "g\%h""#),
            vec![
                TokenKind::Text("a\"b".into()),
                TokenKind::Text("c'd".into()),
                TokenKind::Text("e\\f".into()),
                TokenKind::Text("g\\%h".into()),
            ]
        );
    }

    #[test]
    fn numbers_are_integers_or_reals() {
        assert_eq!(
            kinds("1 -2 3.5 -.5 99999999999999999999"),
            vec![
                TokenKind::Number(Literal::Integer(1)),
                TokenKind::Number(Literal::Integer(-2)),
                TokenKind::Number(Literal::Real(3.5)),
                TokenKind::Number(Literal::Real(-0.5)),
                TokenKind::Number(Literal::Real(99999999999999999999.0)),
            ]
        );
    }

    #[test]
    fn malformed_numbers_are_rejected_with_their_position() {
        for (input, position) in [("a = 12abc", 4), ("a = 1.2.3", 4), ("a = 1.", 4)] {
            let error = tokenize(input).unwrap_err();
            assert_eq!(error.position(), Some(position), "{input}");
        }
    }

    #[test]
    fn comments_run_to_the_end_of_the_line() {
        assert_eq!(
            kinds("a // = 1\n= 2"),
            vec![
                TokenKind::Word("a".into()),
                TokenKind::Operator(Operator {
                    comparison: CompareOp::Eq,
                    quantifier: Quantifier::Each
                }),
                TokenKind::Number(Literal::Integer(2)),
            ]
        );
    }
}
