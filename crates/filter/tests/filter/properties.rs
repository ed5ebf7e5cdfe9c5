//! Property tests: printing round-trips, values never reach the SQL text, nothing panics.

use pier_filter::{
    CompareOp, Comparison, DateMacro, Dialect, Expr, FilterError, Function, Ident, IdentSource,
    Limits, Literal, Modifier, Operand, Operator, Param, Quantifier, Resolved, Resolver, ValueKind,
    compile, parse_filter, parse_filter_with,
};
use proptest::prelude::*;

/// Resolves anything: record fields to text columns (`tags` to a JSON array, `views` to a
/// number), `@collection` paths to rows, request values to text.
struct Anything;

impl Resolver for Anything {
    fn resolve(&mut self, ident: &Ident) -> Result<Resolved, FilterError> {
        let name = ident.path.join("_");
        Ok(match &ident.source {
            IdentSource::Record if name == "tags" => {
                Resolved::json_array("\"t\".\"tags\"", ValueKind::Text)
            }
            IdentSource::Record if name == "views" => {
                Resolved::column("\"t\".\"views\"", ValueKind::Number)
            }
            IdentSource::Record => Resolved::column(format!("\"t\".\"{name}\""), ValueKind::Text),
            IdentSource::Collection { name, .. } => Resolved::Rows {
                sql: format!("SELECT \"{name}\".\"x\" AS value FROM \"{name}\""),
                kind: ValueKind::Any,
            },
            IdentSource::RequestBody => Resolved::Values(vec![Param::Text("v".into())]),
            _ => Resolved::Value(Param::Text("v".into())),
        })
    }
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,5}".prop_filter("keywords read as literals", |name| {
        !matches!(name.as_str(), "true" | "false" | "null")
    })
}

fn ident() -> impl Strategy<Value = Ident> {
    let source = prop_oneof![
        4 => Just(IdentSource::Record),
        1 => Just(IdentSource::RequestAuth),
        1 => Just(IdentSource::RequestBody),
        1 => Just(IdentSource::RequestQuery),
        1 => Just(IdentSource::RequestHeaders),
        1 => Just(IdentSource::RequestMethod),
        1 => Just(IdentSource::RequestContext),
        1 => (name(), proptest::option::of(name()))
            .prop_map(|(name, alias)| IdentSource::Collection { name, alias }),
    ];
    let modifier = proptest::option::of(prop_oneof![
        Just(Modifier::Isset),
        Just(Modifier::Changed),
        Just(Modifier::Length),
        Just(Modifier::Each),
        Just(Modifier::Lower),
    ]);
    (source, proptest::collection::vec(name(), 1..4), modifier).prop_map(
        |(source, path, modifier)| {
            let path = match source {
                IdentSource::RequestMethod | IdentSource::RequestContext => Vec::new(),
                _ => path,
            };
            Ident {
                source,
                path,
                modifier,
            }
        },
    )
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        any::<i64>().prop_map(Literal::Integer),
        (-1.0e9..1.0e9f64).prop_map(Literal::Real),
        "\\PC{0,12}".prop_map(Literal::Text),
        "[\"'\\\\%_ ;-]{0,6}".prop_map(Literal::Text),
    ]
}

fn simple_operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        literal().prop_map(Operand::Literal),
        ident().prop_map(Operand::Ident),
        proptest::sample::select(DateMacro::ALL.to_vec()).prop_map(Operand::Macro),
    ]
}

fn operand() -> impl Strategy<Value = Operand> {
    let strftime = (
        "\\PC{0,8}",
        simple_operand(),
        proptest::collection::vec("\\PC{0,8}", 0..3),
    )
        .prop_map(|(format, time, modifiers)| {
            Operand::Function(Function::Strftime {
                format,
                time: Box::new(time),
                modifiers,
            })
        });
    let geo = proptest::collection::vec(simple_operand(), 4).prop_map(|mut arguments| {
        let mut next = || Box::new(arguments.pop().unwrap_or(Operand::Literal(Literal::Null)));
        Operand::Function(Function::GeoDistance {
            lon_a: next(),
            lat_a: next(),
            lon_b: next(),
            lat_b: next(),
        })
    });
    prop_oneof![6 => simple_operand(), 1 => strftime, 1 => geo]
}

fn operator() -> impl Strategy<Value = Operator> {
    let comparison = proptest::sample::select(vec![
        CompareOp::Eq,
        CompareOp::NotEq,
        CompareOp::Gt,
        CompareOp::Gte,
        CompareOp::Lt,
        CompareOp::Lte,
        CompareOp::Like,
        CompareOp::NotLike,
    ]);
    let quantifier = prop_oneof![Just(Quantifier::Each), Just(Quantifier::AnyOf)];
    (comparison, quantifier).prop_map(|(comparison, quantifier)| Operator {
        comparison,
        quantifier,
    })
}

/// Canonical trees, as the parser builds them.
fn expr() -> impl Strategy<Value = Expr> {
    let leaf = (operand(), operator(), operand()).prop_map(|(left, operator, right)| {
        Expr::Compare(Comparison {
            left,
            operator,
            right,
        })
    });
    leaf.prop_recursive(4, 24, 4, |inner| {
        (any::<bool>(), proptest::collection::vec(inner, 2..4)).prop_map(|(and, children)| {
            let join = if and { Expr::and } else { Expr::or };
            let mut children = children.into_iter();
            let first = children.next().unwrap_or(Expr::And(Vec::new()));
            children.fold(first, join)
        })
    })
}

fn generous() -> Limits {
    Limits {
        max_length: usize::MAX,
        max_depth: 1000,
        max_terms: 100_000,
        max_sort_items: 1000,
    }
}

proptest! {
    #[test]
    fn printed_expressions_parse_back_to_the_same_tree(expr in expr()) {
        let printed = expr.to_string();
        let parsed = parse_filter_with(&printed, &generous());
        prop_assert_eq!(parsed, Ok(expr), "printed: {}", printed);
    }

    #[test]
    fn generated_expressions_compile_without_panicking(expr in expr()) {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let _ = compile(&expr, dialect, &mut Anything, 1);
        }
    }

    #[test]
    fn parsed_text_compiles_without_panicking(
        input in "[a-z@.:_()'\"\\\\ =!<>~?&|,0-9-]{0,60}"
    ) {
        if let Ok(expr) = parse_filter(&input) {
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let _ = compile(&expr, dialect, &mut Anything, 1);
            }
        }
    }

    #[test]
    fn injected_values_only_ever_reach_the_params(
        payload in prop_oneof![
            "\\PC{1,40}",
            "['\";\\-/*%_ a-zA-Z0-9]{1,40}",
            Just("'; DROP TABLE t; --".to_owned()),
            Just("\" OR 1=1 /*".to_owned()),
        ]
    ) {
        let quoted = Literal::Text(payload.clone()).to_string();
        for template in ["title {op} {value}", "{value} {op} title", "tags {op} {value}"] {
            for op in ["=", "!=", ">", "~", "!~", "?=", "?~", "?!~"] {
                for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                    let filter_for = |value: &str| {
                        template.replace("{op}", op).replace("{value}", value)
                    };
                    let expr = parse_filter(&filter_for(&quoted)).unwrap();
                    let compiled = compile(&expr, dialect, &mut Anything, 1).unwrap();
                    // The SQL is exactly what a harmless value gives: values never shape it.
                    let harmless = parse_filter(&filter_for("\"x\"")).unwrap();
                    let reference = compile(&harmless, dialect, &mut Anything, 1).unwrap();
                    prop_assert_eq!(&compiled.sql, &reference.sql, "{}", filter_for(&quoted));
                    for forbidden in [";", "--", "/*"] {
                        prop_assert!(!compiled.sql.contains(forbidden), "{}", compiled.sql);
                    }
                    prop_assert!(
                        compiled.params.iter().any(|param| match param {
                            Param::Text(text) => text.contains(payload.trim_matches('%'))
                                || text.replace('\\', "").contains(&payload.replace('\\', "")),
                            _ => false,
                        }),
                        "{:?} does not carry {:?}", compiled.params, payload
                    );
                }
            }
        }
    }
}
