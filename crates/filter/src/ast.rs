//! The syntax tree of filter and sort expressions, and its canonical printing.
//!
//! `Display` prints an expression back in the filter language such that parsing the output gives
//! the same tree (the round trip is property-tested). Positions are deliberately not part of the
//! tree, so two parses of equivalent text compare equal.

use std::fmt;

/// A filter expression.
///
/// `And` and `Or` are n-ary and canonical as produced by the parser: they have at least two
/// children and never a direct child of the same kind (`a && (b && c)` parses as one `And`).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// One comparison, `left op right`.
    Compare(Comparison),
    /// Every child holds (`&&`).
    And(Vec<Expr>),
    /// At least one child holds (`||`).
    Or(Vec<Expr>),
}

impl Expr {
    /// Returns `left && right`, flattening nested `And`s.
    pub fn and(left: Expr, right: Expr) -> Expr {
        let mut children = Vec::new();
        for expr in [left, right] {
            match expr {
                Expr::And(inner) => children.extend(inner),
                other => children.push(other),
            }
        }
        Expr::And(children)
    }

    /// Returns `left || right`, flattening nested `Or`s.
    pub fn or(left: Expr, right: Expr) -> Expr {
        let mut children = Vec::new();
        for expr in [left, right] {
            match expr {
                Expr::Or(inner) => children.extend(inner),
                other => children.push(other),
            }
        }
        Expr::Or(children)
    }
}

/// `left operator right`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The left operand.
    pub left: Operand,
    /// The operator.
    pub operator: Operator,
    /// The right operand.
    pub right: Operand,
}

/// A comparison operator: what is compared, and how multi-valued operands are quantified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    /// The comparison itself.
    pub comparison: CompareOp,
    /// `Each` for the plain forms (`=`), `AnyOf` for the `?` forms (`?=`).
    pub quantifier: Quantifier,
}

/// The comparison of an [`Operator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=`
    NotEq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `~`: case-insensitive contains, or a LIKE pattern when the operand holds `%`.
    Like,
    /// `!~`: the negation of `~`.
    NotLike,
}

impl CompareOp {
    /// Returns the operator as written, without the `?` prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::NotEq => "!=",
            CompareOp::Gt => ">",
            CompareOp::Gte => ">=",
            CompareOp::Lt => "<",
            CompareOp::Lte => "<=",
            CompareOp::Like => "~",
            CompareOp::NotLike => "!~",
        }
    }
}

/// How a comparison treats multi-valued operands (JSON arrays, relation paths, request arrays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// Plain operators: every value must satisfy the comparison.
    Each,
    /// `?` operators: at least one value must satisfy the comparison.
    AnyOf,
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quantifier == Quantifier::AnyOf {
            f.write_str("?")?;
        }
        f.write_str(self.comparison.as_str())
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A string, number, `true`, `false` or `null`.
    Literal(Literal),
    /// A field path or a `@request` / `@collection` identifier.
    Ident(Ident),
    /// A date macro such as `@now` or `@todayStart`.
    Macro(DateMacro),
    /// A function call.
    Function(Function),
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A whole number that fits an `i64`.
    Integer(i64),
    /// Any other number.
    Real(f64),
    /// A quoted string, escapes resolved.
    Text(String),
}

/// An identifier: where it comes from, the dotted path below that, and an optional modifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    /// The root of the identifier.
    pub source: IdentSource,
    /// The dotted path below the source: `["author", "name"]` for `author.name`,
    /// `["id"]` for `@request.auth.id`, empty for `@request.method`.
    pub path: Vec<String>,
    /// The `:modifier` suffix, if any.
    pub modifier: Option<Modifier>,
}

/// The root of an [`Ident`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdentSource {
    /// A field of the record being filtered (`title`, `author.name`, `comments_via_post.title`).
    Record,
    /// `@request.auth.*`
    RequestAuth,
    /// `@request.body.*`
    RequestBody,
    /// `@request.query.*`
    RequestQuery,
    /// `@request.headers.*`
    RequestHeaders,
    /// `@request.method`
    RequestMethod,
    /// `@request.context`
    RequestContext,
    /// `@collection.<name>.*` or `@collection.<name>:<alias>.*`
    Collection {
        /// The collection name.
        name: String,
        /// The alias, to join the same collection more than once.
        alias: Option<String>,
    },
}

/// An identifier modifier, the `:name` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modifier {
    /// `:isset`: whether the request body carries the field (resolver-supplied).
    Isset,
    /// `:changed`: whether the request body changes the field (resolver-supplied).
    Changed,
    /// `:length`: the number of values of a multi-valued field.
    Length,
    /// `:each`: every value of a multi-valued field must match, even with a `?` operator.
    Each,
    /// `:lower`: the lowercased value.
    Lower,
}

impl Modifier {
    /// Returns the modifier's name, without the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Modifier::Isset => "isset",
            Modifier::Changed => "changed",
            Modifier::Length => "length",
            Modifier::Each => "each",
            Modifier::Lower => "lower",
        }
    }

    /// Returns the modifier for a name written without the colon.
    pub fn from_name(name: &str) -> Option<Modifier> {
        Some(match name {
            "isset" => Modifier::Isset,
            "changed" => Modifier::Changed,
            "length" => Modifier::Length,
            "each" => Modifier::Each,
            "lower" => Modifier::Lower,
            _ => return None,
        })
    }
}

/// A date macro. Its value is the resolver's (see [`crate::Resolver::resolve_macro`]); the
/// default is [`DateMacro::value_at`] the current time, in UTC, as PocketBase does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateMacro {
    /// `@now`: the current datetime.
    Now,
    /// `@second`: 0–59.
    Second,
    /// `@minute`: 0–59.
    Minute,
    /// `@hour`: 0–23.
    Hour,
    /// `@weekday`: 0–6, Sunday is 0.
    Weekday,
    /// `@day`: 1–31.
    Day,
    /// `@month`: 1–12.
    Month,
    /// `@year`.
    Year,
    /// `@todayStart`: today at 00:00:00.000.
    TodayStart,
    /// `@todayEnd`: today at 23:59:59.999.
    TodayEnd,
    /// `@monthStart`: the first day of this month at 00:00:00.000.
    MonthStart,
    /// `@monthEnd`: the last day of this month at 23:59:59.999.
    MonthEnd,
    /// `@yearStart`: January 1st at 00:00:00.000.
    YearStart,
    /// `@yearEnd`: December 31st at 23:59:59.999.
    YearEnd,
    /// `@yesterday`: now minus 24 hours.
    Yesterday,
    /// `@tomorrow`: now plus 24 hours.
    Tomorrow,
}

impl DateMacro {
    /// Every macro, in declaration order.
    pub const ALL: [DateMacro; 16] = [
        DateMacro::Now,
        DateMacro::Second,
        DateMacro::Minute,
        DateMacro::Hour,
        DateMacro::Weekday,
        DateMacro::Day,
        DateMacro::Month,
        DateMacro::Year,
        DateMacro::TodayStart,
        DateMacro::TodayEnd,
        DateMacro::MonthStart,
        DateMacro::MonthEnd,
        DateMacro::YearStart,
        DateMacro::YearEnd,
        DateMacro::Yesterday,
        DateMacro::Tomorrow,
    ];

    /// Returns the macro as written, with its `@`.
    pub fn as_str(self) -> &'static str {
        match self {
            DateMacro::Now => "@now",
            DateMacro::Second => "@second",
            DateMacro::Minute => "@minute",
            DateMacro::Hour => "@hour",
            DateMacro::Weekday => "@weekday",
            DateMacro::Day => "@day",
            DateMacro::Month => "@month",
            DateMacro::Year => "@year",
            DateMacro::TodayStart => "@todayStart",
            DateMacro::TodayEnd => "@todayEnd",
            DateMacro::MonthStart => "@monthStart",
            DateMacro::MonthEnd => "@monthEnd",
            DateMacro::YearStart => "@yearStart",
            DateMacro::YearEnd => "@yearEnd",
            DateMacro::Yesterday => "@yesterday",
            DateMacro::Tomorrow => "@tomorrow",
        }
    }

    /// Returns the macro for its written form (with the `@`).
    pub fn from_name(name: &str) -> Option<DateMacro> {
        DateMacro::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// A function call.
#[derive(Debug, Clone, PartialEq)]
pub enum Function {
    /// `strftime(format, time [, modifiers...])`: the format and modifiers are string literals.
    Strftime {
        /// The SQLite `strftime` format, e.g. `"%Y-%m"`.
        format: String,
        /// The datetime to format.
        time: Box<Operand>,
        /// SQLite datetime modifiers such as `"start of month"` or `"+1 day"`.
        modifiers: Vec<String>,
    },
    /// `geoDistance(lonA, latA, lonB, latB)`: the Haversine distance in kilometres.
    GeoDistance {
        /// Longitude of point A.
        lon_a: Box<Operand>,
        /// Latitude of point A.
        lat_a: Box<Operand>,
        /// Longitude of point B.
        lon_b: Box<Operand>,
        /// Latitude of point B.
        lat_b: Box<Operand>,
    },
}

/// One item of a sort list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortItem {
    /// What to sort by.
    pub target: SortTarget,
    /// Ascending (`field`, `+field`) or descending (`-field`).
    pub direction: Direction,
}

/// What a [`SortItem`] sorts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortTarget {
    /// A field path, possibly with a modifier.
    Field(Ident),
    /// `@random`
    Random,
    /// `@rowid`
    RowId,
}

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Smallest first.
    Ascending,
    /// Largest first.
    Descending,
}

// ---------------------------------------------------------------------------------------------
// Printing

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Compare(comparison) => write!(f, "{comparison}"),
            Expr::And(children) => write_joined(f, children, " && ", |child| {
                matches!(child, Expr::Or(_) | Expr::And(_))
            }),
            Expr::Or(children) => {
                write_joined(f, children, " || ", |child| matches!(child, Expr::Or(_)))
            }
        }
    }
}

fn write_joined(
    f: &mut fmt::Formatter<'_>,
    children: &[Expr],
    separator: &str,
    needs_parentheses: impl Fn(&Expr) -> bool,
) -> fmt::Result {
    for (index, child) in children.iter().enumerate() {
        if index > 0 {
            f.write_str(separator)?;
        }
        if needs_parentheses(child) {
            write!(f, "({child})")?;
        } else {
            write!(f, "{child}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.left, self.operator, self.right)
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Literal(literal) => write!(f, "{literal}"),
            Operand::Ident(ident) => write!(f, "{ident}"),
            Operand::Macro(date_macro) => f.write_str(date_macro.as_str()),
            Operand::Function(function) => write!(f, "{function}"),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(value) => write!(f, "{value}"),
            Literal::Integer(value) => write!(f, "{value}"),
            Literal::Real(value) => {
                let text = value.to_string();
                // NOTE: `5.0` prints as `5`, which would parse back as an integer.
                if text.contains(['.', 'e', 'E', 'N', 'n']) {
                    f.write_str(&text)
                } else {
                    write!(f, "{text}.0")
                }
            }
            Literal::Text(text) => write_quoted(f, text),
        }
    }
}

/// Writes `text` double-quoted, escaping `"` and `\` so that the parser reads it back unchanged.
fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    for character in text.chars() {
        if matches!(character, '"' | '\\') {
            f.write_str("\\")?;
        }
        write!(f, "{character}")?;
    }
    f.write_str("\"")
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = match &self.source {
            IdentSource::Record => None,
            IdentSource::RequestAuth => Some("@request.auth".to_owned()),
            IdentSource::RequestBody => Some("@request.body".to_owned()),
            IdentSource::RequestQuery => Some("@request.query".to_owned()),
            IdentSource::RequestHeaders => Some("@request.headers".to_owned()),
            IdentSource::RequestMethod => Some("@request.method".to_owned()),
            IdentSource::RequestContext => Some("@request.context".to_owned()),
            IdentSource::Collection { name, alias } => Some(match alias {
                Some(alias) => format!("@collection.{name}:{alias}"),
                None => format!("@collection.{name}"),
            }),
        };
        let mut first = true;
        if let Some(root) = root {
            f.write_str(&root)?;
            first = false;
        }
        for segment in &self.path {
            if !first {
                f.write_str(".")?;
            }
            f.write_str(segment)?;
            first = false;
        }
        if let Some(modifier) = self.modifier {
            write!(f, ":{}", modifier.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Function::Strftime {
                format,
                time,
                modifiers,
            } => {
                f.write_str("strftime(")?;
                write_quoted(f, format)?;
                write!(f, ", {time}")?;
                for modifier in modifiers {
                    f.write_str(", ")?;
                    write_quoted(f, modifier)?;
                }
                f.write_str(")")
            }
            Function::GeoDistance {
                lon_a,
                lat_a,
                lon_b,
                lat_b,
            } => write!(f, "geoDistance({lon_a}, {lat_a}, {lon_b}, {lat_b})"),
        }
    }
}

impl fmt::Display for SortItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.direction == Direction::Descending {
            f.write_str("-")?;
        }
        match &self.target {
            SortTarget::Field(ident) => write!(f, "{ident}"),
            SortTarget::Random => f.write_str("@random"),
            SortTarget::RowId => f.write_str("@rowid"),
        }
    }
}
