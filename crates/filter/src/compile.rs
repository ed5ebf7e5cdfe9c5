//! Compiles a filter tree into a parameterised SQL `WHERE` fragment, and a sort list into an
//! `ORDER BY` list, for one [`Dialect`].
//!
//! Invariant: the SQL text is built only from fixed keywords, `$n` placeholders and the
//! resolver's fragments. Every value that comes from the filter text or the request is a
//! [`Param`] (the only exception is `NULL`, written as the keyword).

use crate::ast::{
    CompareOp, Comparison, Direction, Expr, Function, Ident, Literal, Modifier, Operand,
    Quantifier, SortItem, SortTarget,
};
use crate::error::{FilterError, SyntaxError};
use crate::resolve::{Dialect, Param, Resolved, Resolver, ValueKind};
use crate::strftime;

/// How deep a tree built in code (not by the parser, which has its own limit) may nest before
/// [`compile`] refuses it, to bound recursion.
const MAX_COMPILE_DEPTH: usize = 512;

/// A compiled filter: a SQL boolean expression and the values of its placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// The expression, with `$n` placeholders numbered from the `first_param_index` given to
    /// [`compile`]. Parenthesised, so it can be joined with `AND` as is.
    pub sql: String,
    /// The values, in placeholder order: `params[i]` binds `$(first_param_index + i)`.
    pub params: Vec<Param>,
}

/// Compiles `expr` for `dialect`, resolving identifiers with `resolver`; placeholders are
/// numbered from `first_param_index` (normally 1, or one past the caller's own parameters).
///
/// # Errors
/// The resolver's errors, [`FilterError::UnsupportedModifier`], [`FilterError::InvalidFunction`].
pub fn compile<R: Resolver + ?Sized>(
    expr: &Expr,
    dialect: Dialect,
    resolver: &mut R,
    first_param_index: usize,
) -> Result<Compiled, FilterError> {
    let mut compiler = Compiler {
        dialect,
        resolver,
        params: Vec::new(),
        first_param_index,
        aliases: 0,
    };
    let sql = compiler.expr(expr, 0)?;
    Ok(Compiled {
        sql,
        params: compiler.params,
    })
}

/// Compiles a sort list into the body of an `ORDER BY` clause (empty for an empty list).
///
/// `@random` is `RANDOM()`; `@rowid` is [`Resolver::rowid`]. On PostgreSQL, `NULLS FIRST` /
/// `NULLS LAST` is added so that NULLs sort as on SQLite (smallest).
///
/// # Errors
/// The resolver's errors, and [`FilterError::InvalidSort`] for what is not a single-valued
/// column (a multi-valued field, a request value).
pub fn compile_sort<R: Resolver + ?Sized>(
    items: &[SortItem],
    dialect: Dialect,
    resolver: &mut R,
) -> Result<String, FilterError> {
    let mut compiler = Compiler {
        dialect,
        resolver,
        params: Vec::new(),
        first_param_index: 1,
        aliases: 0,
    };
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        let sql = match &item.target {
            SortTarget::Random => {
                parts.push("RANDOM()".to_owned());
                continue;
            }
            SortTarget::RowId => compiler.resolver.rowid()?,
            SortTarget::Field(ident) => match compiler.ident(ident)?.0 {
                Term::Sql { sql, .. } if compiler.params.is_empty() => sql,
                _ => return Err(FilterError::InvalidSort(ident.to_string())),
            },
        };
        let direction = match (item.direction, dialect) {
            (Direction::Ascending, Dialect::Sqlite) => "ASC",
            (Direction::Descending, Dialect::Sqlite) => "DESC",
            (Direction::Ascending, Dialect::Postgres) => "ASC NULLS FIRST",
            (Direction::Descending, Dialect::Postgres) => "DESC NULLS LAST",
        };
        parts.push(format!("{sql} {direction}"));
    }
    Ok(parts.join(", "))
}

/// An operand once resolved.
#[derive(Debug, Clone)]
enum Term {
    /// One SQL value per row.
    Sql { sql: String, kind: ValueKind },
    /// A value bound as a parameter when used.
    Value(Param),
    /// Many SQL values per row: a `SELECT` whose column is named `value`.
    Many {
        rows: String,
        kind: ValueKind,
        lower: bool,
    },
    /// Many values known now.
    Values(Vec<Param>),
}

struct Compiler<'r, R: ?Sized> {
    dialect: Dialect,
    resolver: &'r mut R,
    params: Vec<Param>,
    first_param_index: usize,
    aliases: usize,
}

impl<R: Resolver + ?Sized> Compiler<'_, R> {
    fn is_postgres(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    fn expr(&mut self, expr: &Expr, depth: usize) -> Result<String, FilterError> {
        if depth > MAX_COMPILE_DEPTH {
            return Err(FilterError::syntax(
                0,
                SyntaxError::TooDeep(MAX_COMPILE_DEPTH),
            ));
        }
        let (children, separator) = match expr {
            Expr::Compare(comparison) => return self.comparison(comparison),
            Expr::And(children) => (children, " AND "),
            Expr::Or(children) => (children, " OR "),
        };
        let parts = children
            .iter()
            .map(|child| self.expr(child, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match parts.len() {
            // An empty `And` holds, an empty `Or` does not (only possible for trees built in code).
            0 if separator == " AND " => "TRUE".to_owned(),
            0 => "FALSE".to_owned(),
            _ => format!("({})", parts.join(separator)),
        })
    }

    fn comparison(&mut self, comparison: &Comparison) -> Result<String, FilterError> {
        // As PocketBase does: over a list of values, `?op` holds when any value matches and a
        // plain `op` when every value does; `:each` only asks for the list's elements (the
        // resolver decides what a bare multi-value field means).
        let (left, _) = self.operand(&comparison.left, 0)?;
        let (right, _) = self.operand(&comparison.right, 0)?;
        self.compare(
            left,
            comparison.operator.comparison,
            comparison.operator.quantifier,
            right,
        )
    }

    /// Resolves an operand; the flag is whether `:each` forces every-value semantics.
    fn operand(&mut self, operand: &Operand, depth: usize) -> Result<(Term, bool), FilterError> {
        if depth > MAX_COMPILE_DEPTH {
            return Err(FilterError::syntax(
                0,
                SyntaxError::TooDeep(MAX_COMPILE_DEPTH),
            ));
        }
        Ok(match operand {
            Operand::Literal(literal) => (Term::Value(literal_param(literal)), false),
            Operand::Macro(date_macro) => (
                Term::Value(self.resolver.resolve_macro(*date_macro)?),
                false,
            ),
            Operand::Ident(ident) => self.ident(ident)?,
            Operand::Function(function) => (self.function(function, depth)?, false),
        })
    }

    fn ident(&mut self, ident: &Ident) -> Result<(Term, bool), FilterError> {
        let term = match self.resolver.resolve(ident)? {
            Resolved::Column { sql, kind } => Term::Sql { sql, kind },
            Resolved::JsonArray { sql, element } => self.json_rows(&sql, element),
            Resolved::Rows { sql, kind } => Term::Many {
                rows: sql,
                kind,
                lower: false,
            },
            Resolved::Value(param) => Term::Value(param),
            Resolved::Values(params) => Term::Values(params),
        };
        Ok(match ident.modifier {
            None | Some(Modifier::Isset | Modifier::Changed) => (term, false),
            Some(Modifier::Each) => (term, true),
            Some(Modifier::Lower) => (self.lower(term), false),
            Some(Modifier::Length) => (self.length(term, ident)?, false),
        })
    }

    /// The rows of a JSON array. Blank text counts as an empty array.
    fn json_rows(&self, sql: &str, element: ValueKind) -> Term {
        match self.dialect {
            Dialect::Sqlite => Term::Many {
                rows: format!("SELECT value FROM json_each(COALESCE(NULLIF({sql}, ''), '[]'))"),
                kind: element,
                lower: false,
            },
            Dialect::Postgres => {
                let (value, kind) = match element {
                    ValueKind::Number => ("(_pfe.value)::double precision", ValueKind::Number),
                    ValueKind::Bool => ("(_pfe.value)::boolean", ValueKind::Bool),
                    ValueKind::Text | ValueKind::Any => ("_pfe.value", ValueKind::Text),
                };
                Term::Many {
                    rows: format!(
                        "SELECT {value} AS value FROM jsonb_array_elements_text(\
                         COALESCE(NULLIF(({sql})::text, ''), '[]')::jsonb) AS _pfe(value)"
                    ),
                    kind,
                    lower: false,
                }
            }
        }
    }

    fn lower(&self, term: Term) -> Term {
        match term {
            Term::Sql { sql, kind } => Term::Sql {
                sql: self.lower_sql(&sql, kind),
                kind: ValueKind::Text,
            },
            Term::Value(param) => Term::Value(lower_param(param)),
            Term::Many { rows, kind, .. } => Term::Many {
                rows,
                kind,
                lower: true,
            },
            Term::Values(params) => Term::Values(params.into_iter().map(lower_param).collect()),
        }
    }

    fn lower_sql(&self, sql: &str, kind: ValueKind) -> String {
        if kind == ValueKind::Text || !self.is_postgres() {
            format!("LOWER({sql})")
        } else {
            format!("LOWER(({sql})::text)")
        }
    }

    fn length(&mut self, term: Term, ident: &Ident) -> Result<Term, FilterError> {
        Ok(match term {
            Term::Many { rows, .. } => {
                let alias = self.alias();
                Term::Sql {
                    sql: format!("(SELECT COUNT(*) FROM ({rows}) AS {alias})"),
                    kind: ValueKind::Number,
                }
            }
            Term::Values(params) => Term::Value(Param::Integer(
                i64::try_from(params.len()).unwrap_or(i64::MAX),
            )),
            Term::Value(param) => Term::Value(Param::Integer(i64::from(!is_empty(&param)))),
            Term::Sql { .. } => {
                return Err(FilterError::UnsupportedModifier {
                    modifier: Modifier::Length.as_str(),
                    operand: ident.to_string(),
                });
            }
        })
    }

    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("_pf{}", self.aliases)
    }

    fn function(&mut self, function: &Function, depth: usize) -> Result<Term, FilterError> {
        match function {
            Function::Strftime {
                format,
                time,
                modifiers,
            } => {
                let time = match self.operand(time, depth + 1)?.0 {
                    Term::Sql { sql, .. } => sql,
                    Term::Value(param) => self.bind(Param::Text(param_text(&param)), true),
                    Term::Many { .. } | Term::Values(_) => {
                        return Err(FilterError::InvalidFunction {
                            function: "strftime",
                            reason: "the time value must be a single value".into(),
                        });
                    }
                };
                let sql = match self.dialect {
                    Dialect::Sqlite => {
                        let mut arguments =
                            vec![self.bind(Param::Text(format.clone()), false), time];
                        for modifier in modifiers {
                            arguments.push(self.bind(Param::Text(modifier.clone()), false));
                        }
                        format!("strftime({})", arguments.join(", "))
                    }
                    Dialect::Postgres => {
                        let invalid = |reason: String| FilterError::InvalidFunction {
                            function: "strftime",
                            reason,
                        };
                        let pattern = strftime::to_char_pattern(format).map_err(invalid)?;
                        let mut timestamp =
                            format!("(NULLIF(({time})::text, '')::timestamptz AT TIME ZONE 'UTC')");
                        for modifier in modifiers {
                            timestamp =
                                match strftime::postgres_modifier(modifier).map_err(invalid)? {
                                    strftime::PgModifier::Truncate(unit) => {
                                        format!("date_trunc('{unit}', {timestamp})")
                                    }
                                    strftime::PgModifier::Add(interval) => {
                                        let interval = self.bind(Param::Text(interval), false);
                                        format!("({timestamp} + ({interval})::interval)")
                                    }
                                    strftime::PgModifier::None => timestamp,
                                };
                        }
                        let pattern = self.bind(Param::Text(pattern), true);
                        format!("to_char({timestamp}, {pattern})")
                    }
                };
                Ok(Term::Sql {
                    sql,
                    kind: ValueKind::Text,
                })
            }
            Function::GeoDistance {
                lon_a,
                lat_a,
                lon_b,
                lat_b,
            } => {
                let mut coordinates = Vec::with_capacity(4);
                for operand in [lon_a, lat_a, lon_b, lat_b] {
                    let term = self.operand(operand, depth + 1)?.0;
                    coordinates.push(self.number_sql(term)?);
                }
                let [lon_a, lat_a, lon_b, lat_b] = [
                    &coordinates[0],
                    &coordinates[1],
                    &coordinates[2],
                    &coordinates[3],
                ];
                let cosine = format!(
                    "cos(radians({lat_a})) * cos(radians({lat_b})) * \
                     cos(radians({lon_b}) - radians({lon_a})) + \
                     sin(radians({lat_a})) * sin(radians({lat_b}))"
                );
                // Rounding can push the cosine just past ±1, where acos is undefined.
                let clamped = match self.dialect {
                    Dialect::Sqlite => format!("min(1.0, max(-1.0, {cosine}))"),
                    Dialect::Postgres => format!("LEAST(1.0, GREATEST(-1.0, {cosine}))"),
                };
                Ok(Term::Sql {
                    sql: format!("(6371 * acos({clamped}))"),
                    kind: ValueKind::Number,
                })
            }
        }
    }

    /// A single numeric SQL value for a function argument.
    fn number_sql(&mut self, term: Term) -> Result<String, FilterError> {
        match term {
            Term::Sql { sql, kind } => Ok(if self.is_postgres() && kind != ValueKind::Number {
                format!("({sql})::double precision")
            } else {
                sql
            }),
            Term::Value(param) => match coerce(param, ValueKind::Number) {
                Ok(Param::Null) => Ok("NULL".to_owned()),
                Ok(number) => {
                    let real = match number {
                        #[allow(clippy::cast_precision_loss)]
                        Param::Integer(n) => Param::Real(n as f64),
                        other => other,
                    };
                    Ok(self.bind(real, true))
                }
                Err(_) => Err(FilterError::InvalidFunction {
                    function: "geoDistance",
                    reason: "arguments must be numbers".into(),
                }),
            },
            Term::Many { .. } | Term::Values(_) => Err(FilterError::InvalidFunction {
                function: "geoDistance",
                reason: "arguments must be single values".into(),
            }),
        }
    }

    /// Binds a parameter and returns its placeholder; on PostgreSQL with `cast`, the placeholder
    /// carries the parameter's type so that inference never guesses.
    fn bind(&mut self, param: Param, cast: bool) -> String {
        let cast = match (&param, cast && self.is_postgres()) {
            (Param::Null, _) => return "NULL".to_owned(),
            (_, false) => "",
            (Param::Integer(_), true) => "::bigint",
            (Param::Real(_), true) => "::double precision",
            (Param::Text(_), true) => "::text",
            (Param::Bool(_), true) => "::boolean",
        };
        self.params.push(param);
        format!(
            "${}{cast}",
            self.first_param_index.saturating_add(self.params.len() - 1)
        )
    }

    fn compare(
        &mut self,
        left: Term,
        op: CompareOp,
        quantifier: Quantifier,
        right: Term,
    ) -> Result<String, FilterError> {
        // Values known now are expanded into one comparison each.
        let expand = match (&left, &right) {
            (Term::Values(values), _) => Some((values.clone(), true)),
            (_, Term::Values(values)) => Some((values.clone(), false)),
            _ => None,
        };
        if let Some((mut values, on_left)) = expand {
            if values.is_empty() {
                // An empty list behaves as one missing value, as an empty JSON array does.
                values.push(Param::Null);
            }
            let mut parts = Vec::with_capacity(values.len());
            for value in values {
                let part = if on_left {
                    self.compare(Term::Value(value), op, quantifier, right.clone())?
                } else {
                    self.compare(left.clone(), op, quantifier, Term::Value(value))?
                };
                parts.push(part);
            }
            let separator = match quantifier {
                Quantifier::AnyOf => " OR ",
                Quantifier::Each => " AND ",
            };
            return Ok(format!("({})", parts.join(separator)));
        }

        let mut sources = Vec::new();
        let left = self.element(left, &mut sources);
        let right = self.element(right, &mut sources);
        let condition = self.scalar(left, op, right)?;
        if sources.is_empty() {
            return Ok(condition);
        }
        let from = sources.join(", ");
        Ok(match quantifier {
            Quantifier::AnyOf => format!("EXISTS (SELECT 1 FROM {from} WHERE {condition})"),
            Quantifier::Each => {
                format!("NOT EXISTS (SELECT 1 FROM {from} WHERE NOT COALESCE({condition}, FALSE))")
            }
        })
    }

    /// Replaces a multi-valued term by its current element, adding its rows to `sources`. The
    /// rows are padded with one NULL when there are none, so that an empty array compares as a
    /// missing value (`tags = ""` holds for `[]`, `tags != ""` does not), as in PocketBase.
    fn element(&mut self, term: Term, sources: &mut Vec<String>) -> Term {
        let Term::Many { rows, kind, lower } = term else {
            return term;
        };
        let alias = self.alias();
        sources.push(format!(
            "({rows} UNION ALL SELECT NULL WHERE NOT EXISTS ({rows})) AS {alias}"
        ));
        let value = format!("{alias}.value");
        if lower {
            Term::Sql {
                sql: self.lower_sql(&value, kind),
                kind: ValueKind::Text,
            }
        } else {
            Term::Sql { sql: value, kind }
        }
    }

    /// Compares two single values.
    fn scalar(&mut self, left: Term, op: CompareOp, right: Term) -> Result<String, FilterError> {
        Ok(match op {
            CompareOp::Eq => self.equality(left, right, true),
            CompareOp::NotEq => self.equality(left, right, false),
            CompareOp::Like => self.like(left, right, false),
            CompareOp::NotLike => self.like(left, right, true),
            CompareOp::Gt | CompareOp::Gte | CompareOp::Lt | CompareOp::Lte => {
                let (left, right) = self.coerce_pair(left, right);
                format!("{left} {} {right}", op.as_str())
            }
        })
    }

    /// `=` and `!=` with PocketBase's rule that a missing value equals `""` (and `null`).
    fn equality(&mut self, left: Term, right: Term, equal: bool) -> String {
        let (left_empty, right_empty) = (is_empty_term(&left), is_empty_term(&right));
        let (left_known, right_known) = (is_known_term(&left), is_known_term(&right));
        let verdict = |holds: bool| if holds { "TRUE" } else { "FALSE" }.to_owned();
        if left_empty && right_empty {
            return verdict(equal);
        }
        if (left_empty && right_known) || (right_empty && left_known) {
            return verdict(!equal);
        }
        if left_empty || right_empty {
            let column = if left_empty { right } else { left };
            let Term::Sql { sql, kind } = column else {
                return verdict(!equal);
            };
            return self.empty_check(&sql, kind, equal);
        }
        if left_known || right_known {
            let (left, right) = self.coerce_pair(left, right);
            return match (equal, self.dialect) {
                (true, _) => format!("{left} = {right}"),
                (false, Dialect::Sqlite) => format!("{left} IS NOT {right}"),
                (false, Dialect::Postgres) => format!("{left} IS DISTINCT FROM {right}"),
            };
        }
        // Two SQL values: NULL and "" are equal.
        let (Term::Sql { sql: a, kind: ka }, Term::Sql { sql: b, kind: kb }) = (left, right) else {
            return verdict(!equal);
        };
        let text_like = ka != kb || matches!(ka, ValueKind::Text | ValueKind::Any);
        if !text_like {
            return match (equal, self.dialect) {
                (true, Dialect::Sqlite) => format!("{a} IS {b}"),
                (false, Dialect::Sqlite) => format!("{a} IS NOT {b}"),
                (true, Dialect::Postgres) => format!("{a} IS NOT DISTINCT FROM {b}"),
                (false, Dialect::Postgres) => format!("{a} IS DISTINCT FROM {b}"),
            };
        }
        let (a, b) = (self.as_text(&a, ka), self.as_text(&b, kb));
        let operator = if equal { "=" } else { "<>" };
        format!("COALESCE({a}, '') {operator} COALESCE({b}, '')")
    }

    fn empty_check(&self, sql: &str, kind: ValueKind, equal: bool) -> String {
        match (kind, equal) {
            (ValueKind::Number | ValueKind::Bool, true) => format!("{sql} IS NULL"),
            (ValueKind::Number | ValueKind::Bool, false) => format!("{sql} IS NOT NULL"),
            (ValueKind::Text | ValueKind::Any, _) => {
                let sql = self.as_text(sql, kind);
                if equal {
                    format!("({sql} = '' OR {sql} IS NULL)")
                } else {
                    format!("({sql} <> '' AND {sql} IS NOT NULL)")
                }
            }
        }
    }

    /// On PostgreSQL, casts a non-text expression to text.
    fn as_text(&self, sql: &str, kind: ValueKind) -> String {
        if self.is_postgres() && kind != ValueKind::Text {
            format!("({sql})::text")
        } else {
            sql.to_owned()
        }
    }

    /// `~` / `!~`: case-insensitive LIKE. A value pattern is wrapped in `%…%` with `\`, `_`
    /// escaped unless it holds a `%`; a column pattern is wrapped as `'%' || col || '%'`.
    fn like(&mut self, left: Term, right: Term, negated: bool) -> String {
        // `"abc" ~ title` means `title ~ "abc"`, as in PocketBase.
        let (left, right) = match (left, right) {
            (Term::Value(value), Term::Sql { sql, kind }) => {
                (Term::Sql { sql, kind }, Term::Value(value))
            }
            pair => pair,
        };
        let subject = match left {
            Term::Sql { sql, kind } => self.as_text(&sql, kind),
            Term::Value(Param::Null) => "NULL".to_owned(),
            Term::Value(value) => self.bind(Param::Text(param_text(&value)), true),
            Term::Many { .. } | Term::Values(_) => "NULL".to_owned(),
        };
        let pattern = match right {
            Term::Sql { sql, kind } => format!("('%' || {} || '%')", self.as_text(&sql, kind)),
            Term::Value(value) => self.bind(Param::Text(like_pattern(&param_text(&value))), true),
            Term::Many { .. } | Term::Values(_) => "NULL".to_owned(),
        };
        let like = match self.dialect {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        };
        if negated {
            // A missing value does not contain anything.
            format!("COALESCE({subject}, '') NOT {like} {pattern} ESCAPE '\\'")
        } else {
            format!("{subject} {like} {pattern} ESCAPE '\\'")
        }
    }

    /// Returns the SQL of two single values for an ordering or equality comparison, converting
    /// a value to the kind of the column it is compared with.
    fn coerce_pair(&mut self, left: Term, right: Term) -> (String, String) {
        match (left, right) {
            (Term::Sql { sql: a, kind: ka }, Term::Sql { sql: b, kind: kb }) => {
                if ka == kb || ka == ValueKind::Any || kb == ValueKind::Any {
                    (a, b)
                } else {
                    (self.as_text(&a, ka), self.as_text(&b, kb))
                }
            }
            (Term::Sql { sql, kind }, Term::Value(value)) => {
                self.column_and_value(sql, kind, value)
            }
            (Term::Value(value), Term::Sql { sql, kind }) => {
                let (column, value) = self.column_and_value(sql, kind, value);
                (value, column)
            }
            (Term::Value(a), Term::Value(b)) => {
                let target = match (param_kind(&a), param_kind(&b)) {
                    (Some(x), Some(y)) if x == y => x,
                    (Some(ValueKind::Number), _) | (_, Some(ValueKind::Number)) => {
                        ValueKind::Number
                    }
                    (Some(ValueKind::Bool), _) | (_, Some(ValueKind::Bool)) => ValueKind::Bool,
                    _ => ValueKind::Text,
                };
                let (a, b) = match (coerce(a.clone(), target), coerce(b.clone(), target)) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => (Param::Text(param_text(&a)), Param::Text(param_text(&b))),
                };
                (self.bind(a, true), self.bind(b, true))
            }
            // Multi-valued terms were replaced by their elements before.
            _ => ("NULL".to_owned(), "NULL".to_owned()),
        }
    }

    fn column_and_value(&mut self, sql: String, kind: ValueKind, value: Param) -> (String, String) {
        match coerce(value, kind) {
            Ok(value) => {
                let placeholder = self.bind(value, kind != ValueKind::Any);
                (sql, placeholder)
            }
            Err(text) => {
                let column = self.as_text(&sql, kind);
                (column, self.bind(text, true))
            }
        }
    }
}

fn literal_param(literal: &Literal) -> Param {
    match literal {
        Literal::Null => Param::Null,
        Literal::Bool(value) => Param::Bool(*value),
        Literal::Integer(value) => Param::Integer(*value),
        Literal::Real(value) => Param::Real(*value),
        Literal::Text(value) => Param::Text(value.clone()),
    }
}

fn lower_param(param: Param) -> Param {
    match param {
        Param::Text(text) => Param::Text(text.to_lowercase()),
        other => other,
    }
}

/// `null` and `""`: PocketBase's missing value.
fn is_empty(param: &Param) -> bool {
    match param {
        Param::Null => true,
        Param::Text(text) => text.is_empty(),
        _ => false,
    }
}

fn is_empty_term(term: &Term) -> bool {
    matches!(term, Term::Value(param) if is_empty(param))
}

fn is_known_term(term: &Term) -> bool {
    matches!(term, Term::Value(param) if !is_empty(param))
}

fn param_kind(param: &Param) -> Option<ValueKind> {
    match param {
        Param::Null => None,
        Param::Integer(_) | Param::Real(_) => Some(ValueKind::Number),
        Param::Text(_) => Some(ValueKind::Text),
        Param::Bool(_) => Some(ValueKind::Bool),
    }
}

/// The text form of a value: numbers in decimal, booleans as `true`/`false`, NULL as `""`.
fn param_text(param: &Param) -> String {
    match param {
        Param::Null => String::new(),
        Param::Integer(value) => value.to_string(),
        Param::Real(value) => value.to_string(),
        Param::Text(value) => value.clone(),
        Param::Bool(value) => value.to_string(),
    }
}

/// Converts `param` to `kind`, or returns it as text when it has no such form (`"abc"` for a
/// number column).
fn coerce(param: Param, kind: ValueKind) -> Result<Param, Param> {
    Ok(match (kind, param) {
        (ValueKind::Any, param) | (_, param @ Param::Null) => param,
        (ValueKind::Number, param @ (Param::Integer(_) | Param::Real(_))) => param,
        (ValueKind::Number, Param::Bool(value)) => Param::Integer(i64::from(value)),
        (ValueKind::Number, Param::Text(text)) => {
            let trimmed = text.trim();
            if let Ok(value) = trimmed.parse::<i64>() {
                Param::Integer(value)
            } else if let Some(value) = trimmed.parse::<f64>().ok().filter(|v| v.is_finite()) {
                Param::Real(value)
            } else {
                return Err(Param::Text(text));
            }
        }
        (ValueKind::Text, param) => Param::Text(param_text(&param)),
        (ValueKind::Bool, param @ Param::Bool(_)) => param,
        (ValueKind::Bool, Param::Integer(value)) => Param::Bool(value != 0),
        (ValueKind::Bool, Param::Real(value)) => Param::Bool(value != 0.0),
        (ValueKind::Bool, Param::Text(text)) => match text.as_str() {
            "true" | "1" => Param::Bool(true),
            "false" | "0" => Param::Bool(false),
            _ => return Err(Param::Text(text)),
        },
    })
}

/// The LIKE pattern for the right operand of `~`: as written when it holds a `%` (a trailing
/// lone backslash is doubled so that PostgreSQL accepts it), otherwise `%text%` with `\`, `_`
/// escaped so that the text is matched literally.
fn like_pattern(text: &str) -> String {
    if text.contains('%') {
        let trailing = text.chars().rev().take_while(|c| *c == '\\').count();
        let mut pattern = text.to_owned();
        if trailing % 2 == 1 {
            pattern.push('\\');
        }
        return pattern;
    }
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for character in text.chars() {
        if matches!(character, '\\' | '_') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
