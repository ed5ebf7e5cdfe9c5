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
//! - `compile`: tree to SQL ([`compile`], [`compile_sort`]); `strftime`: PostgreSQL translation.
//!
//! # Example
//! ```
//! use pier_filter::{Dialect, FilterError, Ident, Resolved, Resolver, ValueKind};
//!
//! struct Posts;
//! impl Resolver for Posts {
//!     fn resolve(&mut self, ident: &Ident) -> Result<Resolved, FilterError> {
//!         match ident.path.as_slice() {
//!             [field] if field == "title" => Ok(Resolved::column(r#""posts"."title""#, ValueKind::Text)),
//!             [field] if field == "views" => Ok(Resolved::column(r#""posts"."views""#, ValueKind::Number)),
//!             _ => Err(FilterError::UnknownField(ident.to_string())),
//!         }
//!     }
//! }
//!
//! let expr = pier_filter::parse_filter("title ~ 'rust' && views > 10")?;
//! let compiled = pier_filter::compile(&expr, Dialect::Postgres, &mut Posts, 1)?;
//! assert_eq!(
//!     compiled.sql,
//!     r#"("posts"."title" ILIKE $1::text ESCAPE '\' AND "posts"."views" > $2::bigint)"#
//! );
//! # Ok::<(), FilterError>(())
//! ```
//!
#![doc = include_str!("../docs/semantics.md")]
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
