//! Parses filter and sort text into the syntax tree of [`crate::ast`], within [`Limits`].
//!
//! Grammar (`&&` binds tighter than `||`; both are left-associative and flattened):
//!
//! ```text
//! filter     := and ( "||" and )*
//! and        := primary ( "&&" primary )*
//! primary    := "(" filter ")" | operand operator operand
//! operand    := string | number | "true" | "false" | "null" | identifier | macro
//!             | name "(" operand ( "," operand )* ")"
//! sort       := item ( "," item )*          item := [ "+" | "-" ] ( identifier | "@random" | "@rowid" )
//! ```

use crate::ast::{
    DateMacro, Direction, Expr, Function, Ident, IdentSource, Literal, Modifier, Operand, SortItem,
    SortTarget,
};
use crate::error::{FilterError, SyntaxError};
use crate::lexer::{Token, TokenKind, is_word_continue, is_word_start, tokenize};

/// Bounds on what the parser accepts, against abusive input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted input, in bytes. PocketBase's limit is 3500.
    pub max_length: usize,
    /// Deepest nesting of parentheses and function calls.
    pub max_depth: usize,
    /// Most comparisons in one filter. PocketBase's limit is 200.
    pub max_terms: usize,
    /// Most items in one sort list. PocketBase's limit is 8.
    pub max_sort_items: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_length: 3500,
            max_depth: 64,
            max_terms: 200,
            max_sort_items: 8,
        }
    }
}

/// Parses a filter expression with the default [`Limits`].
///
/// An empty or blank filter is an error ([`SyntaxError::UnexpectedEnd`]): callers that treat an
/// empty `?filter=` as "no filter" check for it first.
///
/// # Errors
/// [`FilterError::Syntax`] with the byte position of the problem, or [`FilterError::TooLong`].
pub fn parse_filter(input: &str) -> Result<Expr, FilterError> {
    parse_filter_with(input, &Limits::default())
}

/// Parses a filter expression within `limits`.
///
/// # Errors
/// As [`parse_filter`].
pub fn parse_filter_with(input: &str, limits: &Limits) -> Result<Expr, FilterError> {
    if input.len() > limits.max_length {
        return Err(FilterError::TooLong {
            length: input.len(),
            max: limits.max_length,
        });
    }
    let tokens = tokenize(input)?;
    let mut parser = Parser {
        input,
        tokens,
        index: 0,
        depth: 0,
        terms: 0,
        limits,
    };
    let expr = parser.filter()?;
    match parser.tokens.get(parser.index) {
        None => Ok(expr),
        Some(token) => Err(parser.unexpected(token)),
    }
}

/// Parses a sort list (`-created,title,@random`) with the default [`Limits`]. An empty or blank
/// input gives an empty list.
///
/// # Errors
/// [`FilterError::Syntax`] with the byte position of the problem, or [`FilterError::TooLong`].
pub fn parse_sort(input: &str) -> Result<Vec<SortItem>, FilterError> {
    parse_sort_with(input, &Limits::default())
}

/// Parses a sort list within `limits`.
///
/// # Errors
/// As [`parse_sort`].
pub fn parse_sort_with(input: &str, limits: &Limits) -> Result<Vec<SortItem>, FilterError> {
    if input.len() > limits.max_length {
        return Err(FilterError::TooLong {
            length: input.len(),
            max: limits.max_length,
        });
    }
    if input.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    let mut offset = 0;
    for piece in input.split(',') {
        let piece_start = offset;
        offset += piece.len() + 1;
        let leading = piece.len() - piece.trim_start().len();
        let trimmed = piece.trim();
        let mut position = piece_start + leading;
        if trimmed.is_empty() {
            let comma = piece_start + piece.len();
            return Err(if comma < input.len() {
                FilterError::syntax(comma, SyntaxError::UnexpectedToken(",".into()))
            } else {
                FilterError::syntax(input.len(), SyntaxError::UnexpectedEnd)
            });
        }
        if items.len() == limits.max_sort_items {
            return Err(FilterError::syntax(
                position,
                SyntaxError::TooManyTerms(limits.max_sort_items),
            ));
        }
        let (direction, word) = match trimmed.strip_prefix('-') {
            Some(rest) => (Direction::Descending, rest),
            None => (
                Direction::Ascending,
                trimmed.strip_prefix('+').unwrap_or(trimmed),
            ),
        };
        if word.len() != trimmed.len() {
            position += 1;
        }
        let mut chars = word.char_indices();
        match chars.next() {
            None => return Err(FilterError::syntax(position, SyntaxError::UnexpectedEnd)),
            Some((_, c)) if !is_word_start(c) => {
                return Err(FilterError::syntax(
                    position,
                    SyntaxError::UnexpectedCharacter(c),
                ));
            }
            Some(_) => {}
        }
        if let Some((index, c)) = chars.find(|(_, c)| !is_word_continue(*c)) {
            return Err(FilterError::syntax(
                position + index,
                SyntaxError::UnexpectedCharacter(c),
            ));
        }
        let target = match word {
            "@random" => SortTarget::Random,
            "@rowid" => SortTarget::RowId,
            _ => SortTarget::Field(parse_identifier(word, position)?),
        };
        items.push(SortItem { target, direction });
    }
    Ok(items)
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    index: usize,
    depth: usize,
    terms: usize,
    limits: &'a Limits,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.index)
    }

    fn next(&mut self) -> Result<Token, FilterError> {
        let token = self
            .tokens
            .get(self.index)
            .cloned()
            .ok_or(FilterError::syntax(
                self.input.len(),
                SyntaxError::UnexpectedEnd,
            ))?;
        self.index += 1;
        Ok(token)
    }

    fn unexpected(&self, token: &Token) -> FilterError {
        let text = self.input.get(token.start..token.end).unwrap_or_default();
        let shown: String = text.chars().take(32).collect();
        FilterError::syntax(token.start, SyntaxError::UnexpectedToken(shown))
    }

    fn enter(&mut self, position: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(FilterError::syntax(
                position,
                SyntaxError::TooDeep(self.limits.max_depth),
            ));
        }
        Ok(())
    }

    fn expect(&mut self, kind: &TokenKind) -> Result<Token, FilterError> {
        let token = self.next()?;
        if &token.kind == kind {
            Ok(token)
        } else {
            Err(self.unexpected(&token))
        }
    }

    fn filter(&mut self) -> Result<Expr, FilterError> {
        let mut expr = self.and()?;
        while self.peek().is_some_and(|t| t.kind == TokenKind::Or) {
            self.index += 1;
            let right = self.and()?;
            expr = Expr::or(expr, right);
        }
        Ok(expr)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut expr = self.primary()?;
        while self.peek().is_some_and(|t| t.kind == TokenKind::And) {
            self.index += 1;
            let right = self.primary()?;
            expr = Expr::and(expr, right);
        }
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        if let Some(token) = self.peek()
            && token.kind == TokenKind::LeftParen
        {
            let start = token.start;
            self.index += 1;
            self.enter(start)?;
            let expr = self.filter()?;
            self.expect(&TokenKind::RightParen)?;
            self.depth -= 1;
            return Ok(expr);
        }
        let start = self.peek().map_or(self.input.len(), |t| t.start);
        let left = self.operand()?;
        let token = self.next()?;
        let TokenKind::Operator(operator) = token.kind else {
            return Err(self.unexpected(&token));
        };
        let right = self.operand()?;
        self.terms += 1;
        if self.terms > self.limits.max_terms {
            return Err(FilterError::syntax(
                start,
                SyntaxError::TooManyTerms(self.limits.max_terms),
            ));
        }
        Ok(Expr::Compare(crate::ast::Comparison {
            left,
            operator,
            right,
        }))
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        let token = self.next()?;
        match token.kind {
            TokenKind::Text(text) => Ok(Operand::Literal(Literal::Text(text))),
            TokenKind::Number(number) => Ok(Operand::Literal(number)),
            TokenKind::Word(ref word) => {
                if self.peek().is_some_and(|t| t.kind == TokenKind::LeftParen) {
                    return self.function(word, token.start);
                }
                parse_word(word, token.start)
            }
            _ => Err(self.unexpected(&token)),
        }
    }

    fn function(&mut self, name: &str, start: usize) -> Result<Operand, FilterError> {
        let function: &'static str = match name {
            "strftime" => "strftime",
            "geoDistance" => "geoDistance",
            _ => {
                return Err(FilterError::syntax(
                    start,
                    SyntaxError::UnknownFunction(name.to_owned()),
                ));
            }
        };
        self.enter(start)?;
        self.expect(&TokenKind::LeftParen)?;
        let mut arguments = Vec::new();
        if self.peek().is_some_and(|t| t.kind == TokenKind::RightParen) {
            self.index += 1;
        } else {
            loop {
                arguments.push(self.operand()?);
                let token = self.next()?;
                match token.kind {
                    TokenKind::Comma => {}
                    TokenKind::RightParen => break,
                    _ => return Err(self.unexpected(&token)),
                }
            }
        }
        self.depth -= 1;
        let invalid =
            |reason| FilterError::syntax(start, SyntaxError::InvalidArguments { function, reason });
        let function = if function == "strftime" {
            let mut arguments = arguments.into_iter();
            let Some(Operand::Literal(Literal::Text(format))) = arguments.next() else {
                return Err(invalid("the first argument must be a format string"));
            };
            let time = arguments
                .next()
                .ok_or_else(|| invalid("a time value is required"))?;
            let modifiers = arguments
                .map(|argument| match argument {
                    Operand::Literal(Literal::Text(text)) => Ok(text),
                    _ => Err(invalid("modifiers must be strings")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Function::Strftime {
                format,
                time: Box::new(time),
                modifiers,
            }
        } else {
            let Ok([lon_a, lat_a, lon_b, lat_b]) = <[Operand; 4]>::try_from(arguments) else {
                return Err(invalid("exactly 4 arguments are required"));
            };
            Function::GeoDistance {
                lon_a: Box::new(lon_a),
                lat_a: Box::new(lat_a),
                lon_b: Box::new(lon_b),
                lat_b: Box::new(lat_b),
            }
        };
        Ok(Operand::Function(function))
    }
}

/// Turns a word token into a literal keyword, a macro or an identifier.
fn parse_word(word: &str, position: usize) -> Result<Operand, FilterError> {
    Ok(match word {
        "true" => Operand::Literal(Literal::Bool(true)),
        "false" => Operand::Literal(Literal::Bool(false)),
        "null" => Operand::Literal(Literal::Null),
        _ => match DateMacro::from_name(word) {
            Some(date_macro) => Operand::Macro(date_macro),
            None => Operand::Ident(parse_identifier(word, position)?),
        },
    })
}

/// Parses `a.b.c[:modifier]`, `@request.<part>[.path][:modifier]` or
/// `@collection.<name>[:alias].path[:modifier]`.
fn parse_identifier(word: &str, position: usize) -> Result<Ident, FilterError> {
    let invalid = || FilterError::syntax(position, SyntaxError::InvalidIdentifier(word.into()));
    let mut segments: Vec<&str> = word.split('.').collect();
    let mut modifier = None;
    if let Some(last) = segments.last_mut()
        && let Some((name, modifier_name)) = last.split_once(':')
    {
        modifier = Some(Modifier::from_name(modifier_name).ok_or_else(|| {
            FilterError::syntax(
                position,
                SyntaxError::UnknownModifier(modifier_name.to_owned()),
            )
        })?);
        *last = name;
    }
    let first = segments.first().copied().unwrap_or_default();
    let (source, path) = match first {
        "@request" => {
            let part = segments.get(1).copied().ok_or_else(invalid)?;
            let rest = segments.get(2..).unwrap_or_default();
            let source = match part {
                "auth" => IdentSource::RequestAuth,
                "body" => IdentSource::RequestBody,
                "query" => IdentSource::RequestQuery,
                "headers" => IdentSource::RequestHeaders,
                "method" => IdentSource::RequestMethod,
                "context" => IdentSource::RequestContext,
                _ => return Err(invalid()),
            };
            let takes_path = !matches!(
                source,
                IdentSource::RequestMethod | IdentSource::RequestContext
            );
            if takes_path == rest.is_empty() {
                return Err(invalid());
            }
            (source, rest)
        }
        "@collection" => {
            let name_segment = segments.get(1).copied().ok_or_else(invalid)?;
            let (name, alias) = match name_segment.split_once(':') {
                Some((name, alias)) => (name, Some(alias)),
                None => (name_segment, None),
            };
            if !is_name(name) || alias.is_some_and(|alias| !is_name(alias)) {
                return Err(invalid());
            }
            let rest = segments.get(2..).unwrap_or_default();
            if rest.is_empty() {
                return Err(invalid());
            }
            let source = IdentSource::Collection {
                name: name.to_owned(),
                alias: alias.map(str::to_owned),
            };
            (source, rest)
        }
        other if other.starts_with('@') => {
            return Err(FilterError::syntax(
                position,
                SyntaxError::UnknownMacro(word.to_owned()),
            ));
        }
        _ => (IdentSource::Record, segments.as_slice()),
    };
    if !path.iter().all(|segment| is_segment(segment)) {
        return Err(invalid());
    }
    if source == IdentSource::Record && !path.first().is_some_and(|s| is_name(s)) {
        return Err(invalid());
    }
    Ok(Ident {
        source,
        path: path.iter().map(|segment| (*segment).to_owned()).collect(),
        modifier,
    })
}

/// A path segment: letters, digits and `_` (digits alone index JSON arrays).
fn is_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A field or collection name: a segment that does not start with a digit.
fn is_name(name: &str) -> bool {
    is_segment(name) && !name.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
