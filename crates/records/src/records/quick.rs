//! Rules decided in memory, without a query: when a rule only compares the record's own plain
//! fields, `@request.auth.id` and literals with `=` and `!=` (joined by `&&` and `||`), the
//! answer follows from the event's record and the caller alone. Realtime checks every event
//! against every group of subscribers; for rules such as `public = true` or
//! `owner = @request.auth.id` this saves a query per group.
//!
//! Anything else (other operators, relations, other `@request` values, modifiers, `null`, values
//! of different kinds) is left to the SQL path: [`decide`] answers `None`. A comparison the SQL
//! path would make between values of different kinds is never guessed at. The integration tests
//! check every answer given here against the SQL path's on the same records and callers.

use pier_filter::{CompareOp, Comparison, Expr, IdentSource, Literal, Operand, Quantifier};
use serde_json::{Map, Value};

use crate::auth::Auth;
use crate::model::Collection;

#[derive(Debug, PartialEq)]
enum V<'a> {
    Text(&'a str),
    Num(f64),
    Bool(bool),
}

/// The rule's answer for `record` and `auth`, when it can be given without the database.
pub(crate) fn decide(
    c: &Collection,
    expr: &Expr,
    record: &Map<String, Value>,
    auth: &Auth,
) -> Option<bool> {
    match expr {
        Expr::Compare(cmp) => compare(c, cmp, record, auth),
        Expr::And(children) => {
            let mut all = Some(true);
            for e in children {
                match decide(c, e, record, auth) {
                    Some(false) => return Some(false),
                    Some(true) => {}
                    None => all = None,
                }
            }
            all
        }
        Expr::Or(children) => {
            let mut any = Some(false);
            for e in children {
                match decide(c, e, record, auth) {
                    Some(true) => return Some(true),
                    Some(false) => {}
                    None => any = None,
                }
            }
            any
        }
    }
}

fn compare(
    c: &Collection,
    cmp: &Comparison,
    record: &Map<String, Value>,
    auth: &Auth,
) -> Option<bool> {
    if cmp.operator.quantifier != Quantifier::Each {
        return None;
    }
    let equal = match cmp.operator.comparison {
        CompareOp::Eq => true,
        CompareOp::NotEq => false,
        _ => return None,
    };
    let (l, r) = (
        value(c, &cmp.left, record, auth)?,
        value(c, &cmp.right, record, auth)?,
    );
    let same = match (l, r) {
        (V::Text(a), V::Text(b)) => a == b,
        (V::Bool(a), V::Bool(b)) => a == b,
        #[allow(clippy::float_cmp)] // SQL compares the stored numbers exactly too.
        (V::Num(a), V::Num(b)) => a == b,
        _ => return None,
    };
    Some(same == equal)
}

fn value<'a>(
    c: &Collection,
    op: &'a Operand,
    record: &'a Map<String, Value>,
    auth: &'a Auth,
) -> Option<V<'a>> {
    match op {
        Operand::Literal(Literal::Text(s)) => Some(V::Text(s)),
        Operand::Literal(Literal::Bool(b)) => Some(V::Bool(*b)),
        #[allow(clippy::cast_precision_loss)]
        Operand::Literal(Literal::Integer(n)) if n.unsigned_abs() < (1 << 53) => {
            Some(V::Num(*n as f64))
        }
        Operand::Literal(Literal::Real(f)) if f.is_finite() => Some(V::Num(*f)),
        Operand::Ident(id) if id.modifier.is_none() => match (&id.source, id.path.as_slice()) {
            (IdentSource::RequestAuth, [p]) if p == "id" => Some(V::Text(match auth {
                Auth::Guest => "",
                Auth::Superuser { id } | Auth::Record { id, .. } => id,
            })),
            (IdentSource::Record, [name]) => {
                let f = c.field(name)?;
                let v = record.get(name)?;
                match (f.kind.as_str(), v) {
                    ("text" | "email" | "url", Value::String(s)) => Some(V::Text(s)),
                    ("select" | "relation", Value::String(s)) if !f.is_multi() => Some(V::Text(s)),
                    ("bool", Value::Bool(b)) => Some(V::Bool(*b)),
                    ("number", Value::Number(n)) => n.as_f64().map(V::Num),
                    _ => None,
                }
            }
            _ => None,
        },
        _ => None,
    }
}
