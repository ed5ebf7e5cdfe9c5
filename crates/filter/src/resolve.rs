//! The contract between the compiler and the records engine: the [`Resolver`] trait, what an
//! identifier resolves to ([`Resolved`]), and the bound values ([`Param`]).

use std::time::SystemTime;

use crate::ast::{DateMacro, Ident};
use crate::error::FilterError;

/// The SQL dialect to compile for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite 3.38 or newer (JSON functions built in).
    Sqlite,
    /// PostgreSQL 12 or newer.
    Postgres,
}

/// A value bound to a `$n` placeholder. The records engine converts it to its storage value;
/// on SQLite a [`Param::Bool`] is bound as the integer 0 or 1.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// SQL NULL. The compiler writes `NULL` in the SQL instead of binding it.
    Null,
    /// A whole number.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// A boolean.
    Bool(bool),
}

/// The type of the values behind a SQL expression, as far as comparisons care.
///
/// Literals compared with a column are converted to the column's kind first (see the crate
/// documentation), which mirrors SQLite's column affinity and keeps PostgreSQL's strict typing
/// happy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// Text (PostgreSQL: `text`-compatible).
    Text,
    /// A number (PostgreSQL: any numeric type).
    Number,
    /// A boolean (SQLite: 0/1 integers; PostgreSQL: `boolean`).
    Bool,
    /// Unknown, e.g. a value extracted from a JSON document. Literals are bound unconverted;
    /// PostgreSQL infers the parameter type from the expression, which must then be
    /// `text`-compatible for `=` with `""` and for `~`.
    Any,
}

/// What an identifier stands for in SQL. Every `sql` fragment belongs to the resolver: it is
/// pasted into the statement as is, so it must be built from trusted names (quoted identifiers),
/// never from request data, and must not contain placeholders.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// A single value per row: a column (`"posts"."title"`) or a scalar subquery
    /// (`(SELECT "name" FROM "users" WHERE "users"."id" = "posts"."author")`).
    Column {
        /// The SQL expression.
        sql: String,
        /// The kind of its values.
        kind: ValueKind,
    },
    /// A column or expression holding a JSON array (multi-select, multi-relation and multi-file
    /// fields). Comparisons quantify over its elements; `:length` counts them. A NULL counts as
    /// an empty array; anything that is not an array is the resolver's mistake.
    JsonArray {
        /// The SQL expression of the JSON text (PostgreSQL: cast to `jsonb` by the compiler).
        sql: String,
        /// The kind of its elements. On PostgreSQL elements are read as text
        /// (`jsonb_array_elements_text`) and cast to `double precision` or `boolean` for
        /// [`ValueKind::Number`] and [`ValueKind::Bool`].
        element: ValueKind,
    },
    /// Several values per row from a subquery, e.g. a relation path (`tags.name`) or a
    /// back-relation (`comments_via_post.title`): a full `SELECT` whose single result column is
    /// named `value`, correlated with the outer row as needed.
    Rows {
        /// The `SELECT … AS value FROM …` statement, without parentheses.
        sql: String,
        /// The kind of the `value` column.
        kind: ValueKind,
    },
    /// A value known before the query runs (`@request.auth.id`, `@request.method`, `:isset`):
    /// always bound as a parameter.
    Value(Param),
    /// Several values known before the query runs (an array in `@request.body`): comparisons
    /// quantify over them as over a [`Resolved::JsonArray`].
    Values(Vec<Param>),
}

impl Resolved {
    /// Returns a single-valued column of `kind`.
    pub fn column(sql: impl Into<String>, kind: ValueKind) -> Resolved {
        Resolved::Column {
            sql: sql.into(),
            kind,
        }
    }

    /// Returns a JSON array column whose elements are of `element` kind.
    pub fn json_array(sql: impl Into<String>, element: ValueKind) -> Resolved {
        Resolved::JsonArray {
            sql: sql.into(),
            element,
        }
    }
}

/// Maps identifiers to SQL: the records engine implements it per collection and request.
///
/// Modifiers: for `:isset` and `:changed` the resolver returns the final answer (normally a
/// [`Resolved::Value`] holding a [`Param::Bool`]); for `:length`, `:each` and `:lower` it returns
/// the identifier's own value, ignoring the modifier, and the compiler applies the modifier.
/// Relation paths, back-relations and `@collection` joins are the resolver's: it returns a
/// scalar subquery ([`Resolved::Column`]) or a [`Resolved::Rows`] subquery.
pub trait Resolver {
    /// Returns what `ident` stands for, or [`FilterError::UnknownField`] /
    /// [`FilterError::FieldNotAllowed`] (a 400 for the client).
    ///
    /// # Errors
    /// Whatever the resolver decides; the compiler passes it through unchanged.
    fn resolve(&mut self, ident: &Ident) -> Result<Resolved, FilterError>;

    /// Returns the value of a date macro. The default is [`DateMacro::value_at`] the current
    /// system time; override it to pin the time for a whole request or in tests.
    ///
    /// # Errors
    /// None by default.
    fn resolve_macro(&mut self, date_macro: DateMacro) -> Result<Param, FilterError> {
        Ok(date_macro.value_at(SystemTime::now()))
    }

    /// Returns the SQL expression `@rowid` sorts by (SQLite: `"posts"."rowid"`). The default
    /// refuses `@rowid`.
    ///
    /// # Errors
    /// [`FilterError::InvalidSort`] by default.
    fn rowid(&mut self) -> Result<String, FilterError> {
        Err(FilterError::InvalidSort("@rowid".to_owned()))
    }
}
