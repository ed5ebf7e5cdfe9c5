//! PocketBase's filter and sort language: text is parsed into a syntax tree ([`Expr`],
//! [`SortItem`]), then compiled into a parameterised SQL fragment for SQLite or PostgreSQL.
//!
//! This crate owns the language and its SQL semantics. It must not know collections, fields or
//! storage: identifiers are mapped to SQL by a [`Resolver`] the records engine implements, and
//! values always leave as [`Param`]s bound to `$n` placeholders, never pasted into SQL.
//!
//! # Layout
//! - `lexer`, `parser`: text to tree, within [`Limits`]; errors carry a byte position.
//! - `ast`: the tree, printed back as filter text by `Display`.
//! - `resolve`: the [`Resolver`] contract.
//! - `macros`: values of `@now`, `@todayStart`, ….
#![deny(clippy::unwrap_used)]

mod ast;
mod compile;
mod error;
mod lexer;
mod macros;
mod parser;
mod resolve;
mod strftime;

pub use ast::{
    CompareOp, Comparison, DateMacro, Direction, Expr, Function, Ident, IdentSource, Literal,
    Modifier, Operand, Operator, Quantifier, SortItem, SortTarget,
};
pub use compile::{Compiled, compile, compile_sort};
pub use error::{FilterError, SyntaxError};
pub use parser::{Limits, parse_filter, parse_filter_with, parse_sort, parse_sort_with};
pub use resolve::{Dialect, Param, Resolved, Resolver, ValueKind};
