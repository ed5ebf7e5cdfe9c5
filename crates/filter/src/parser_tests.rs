use super::*;
use crate::ast::{CompareOp, Comparison, Operator, Quantifier};

fn field(path: &str) -> Operand {
    Operand::Ident(Ident {
        source: IdentSource::Record,
        path: path.split('.').map(str::to_owned).collect(),
        modifier: None,
    })
}

fn text(value: &str) -> Operand {
    Operand::Literal(Literal::Text(value.into()))
}

fn int(value: i64) -> Operand {
    Operand::Literal(Literal::Integer(value))
}

fn compare(left: Operand, comparison: CompareOp, right: Operand) -> Expr {
    Expr::Compare(Comparison {
        left,
        operator: Operator {
            comparison,
            quantifier: Quantifier::Each,
        },
        right,
    })
}

fn syntax_error(input: &str) -> (usize, String) {
    let error = parse_filter(input).unwrap_err();
    (error.position().unwrap(), error.to_string())
}

#[test]
fn and_binds_tighter_than_or() {
    let expr = parse_filter("a = 1 || b = 2 && c = 3").unwrap();
    assert_eq!(
        expr,
        Expr::Or(vec![
            compare(field("a"), CompareOp::Eq, int(1)),
            Expr::And(vec![
                compare(field("b"), CompareOp::Eq, int(2)),
                compare(field("c"), CompareOp::Eq, int(3)),
            ]),
        ])
    );
}

#[test]
fn parentheses_override_precedence_and_same_operators_flatten() {
    let expr = parse_filter("(a = 1 || b = 2) && (c = 3 && (d = 4))").unwrap();
    assert_eq!(
        expr,
        Expr::And(vec![
            Expr::Or(vec![
                compare(field("a"), CompareOp::Eq, int(1)),
                compare(field("b"), CompareOp::Eq, int(2)),
            ]),
            compare(field("c"), CompareOp::Eq, int(3)),
            compare(field("d"), CompareOp::Eq, int(4)),
        ])
    );
    assert_eq!(expr.to_string(), "(a = 1 || b = 2) && c = 3 && d = 4");
}

#[test]
fn every_operator_parses_with_and_without_any_of() {
    let table = [
        ("=", CompareOp::Eq),
        ("!=", CompareOp::NotEq),
        (">", CompareOp::Gt),
        (">=", CompareOp::Gte),
        ("<", CompareOp::Lt),
        ("<=", CompareOp::Lte),
        ("~", CompareOp::Like),
        ("!~", CompareOp::NotLike),
    ];
    for (written, comparison) in table {
        for (prefix, quantifier) in [("", Quantifier::Each), ("?", Quantifier::AnyOf)] {
            let input = format!("a{prefix}{written}'x'");
            let Expr::Compare(parsed) = parse_filter(&input).unwrap() else {
                panic!("{input} is not a comparison");
            };
            assert_eq!(
                parsed.operator,
                Operator {
                    comparison,
                    quantifier
                },
                "{input}"
            );
            assert_eq!(parsed.operator.to_string(), format!("{prefix}{written}"));
        }
    }
}

#[test]
fn literals_cover_strings_numbers_booleans_and_null() {
    let expr = parse_filter(
        r#"a = "it\"s" && b = 'o\'k' && c = -1.5 && d = true && e = false && f = null"#,
    )
    .unwrap();
    let Expr::And(children) = expr else {
        panic!("not an and")
    };
    let rights: Vec<Operand> = children
        .into_iter()
        .map(|child| match child {
            Expr::Compare(comparison) => comparison.right,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        rights,
        vec![
            text("it\"s"),
            text("o'k"),
            Operand::Literal(Literal::Real(-1.5)),
            Operand::Literal(Literal::Bool(true)),
            Operand::Literal(Literal::Bool(false)),
            Operand::Literal(Literal::Null),
        ]
    );
}

#[test]
fn identifiers_cover_paths_modifiers_request_and_collections() {
    let parse_left = |input: &str| match parse_filter(input).unwrap() {
        Expr::Compare(comparison) => comparison.left,
        other => panic!("{other:?}"),
    };
    assert_eq!(parse_left("author.name = 1"), field("author.name"));
    assert_eq!(
        parse_left("comments_via_post.title = 1"),
        field("comments_via_post.title")
    );
    assert_eq!(
        parse_left("tags:length > 1"),
        Operand::Ident(Ident {
            source: IdentSource::Record,
            path: vec!["tags".into()],
            modifier: Some(Modifier::Length),
        })
    );
    for (name, modifier) in [
        ("isset", Modifier::Isset),
        ("changed", Modifier::Changed),
        ("length", Modifier::Length),
        ("each", Modifier::Each),
        ("lower", Modifier::Lower),
    ] {
        let Operand::Ident(ident) = parse_left(&format!("@request.body.tags:{name} = 1")) else {
            panic!("not an identifier")
        };
        assert_eq!(ident.source, IdentSource::RequestBody);
        assert_eq!(ident.modifier, Some(modifier));
    }
    let sources = [
        ("@request.auth.id", IdentSource::RequestAuth, vec!["id"]),
        (
            "@request.query.page",
            IdentSource::RequestQuery,
            vec!["page"],
        ),
        (
            "@request.headers.x_token",
            IdentSource::RequestHeaders,
            vec!["x_token"],
        ),
        ("@request.method", IdentSource::RequestMethod, vec![]),
        ("@request.context", IdentSource::RequestContext, vec![]),
        (
            "@collection.users.email",
            IdentSource::Collection {
                name: "users".into(),
                alias: None,
            },
            vec!["email"],
        ),
        (
            "@collection.users:u2.profile.name",
            IdentSource::Collection {
                name: "users".into(),
                alias: Some("u2".into()),
            },
            vec!["profile", "name"],
        ),
    ];
    for (written, source, path) in sources {
        let operand = parse_left(&format!("{written} = 1"));
        let Operand::Ident(ident) = &operand else {
            panic!("{written} is not an identifier")
        };
        assert_eq!(ident.source, source, "{written}");
        assert_eq!(ident.path, path, "{written}");
        assert_eq!(operand.to_string(), written);
    }
}

#[test]
fn every_date_macro_parses_and_prints_back() {
    for date_macro in DateMacro::ALL {
        let input = format!("created > {}", date_macro.as_str());
        let Expr::Compare(comparison) = parse_filter(&input).unwrap() else {
            panic!("not a comparison")
        };
        assert_eq!(comparison.right, Operand::Macro(date_macro));
        assert_eq!(comparison.to_string(), input);
    }
}

#[test]
fn functions_parse_with_their_arguments() {
    let expr = parse_filter(r#"strftime('%Y-%m', created, 'start of month') = "2024-01""#).unwrap();
    assert_eq!(
        expr.to_string(),
        r#"strftime("%Y-%m", created, "start of month") = "2024-01""#
    );
    let expr = parse_filter("geoDistance(address.lon, address.lat, 23.32, 42.69) < 25").unwrap();
    assert_eq!(
        expr.to_string(),
        "geoDistance(address.lon, address.lat, 23.32, 42.69) < 25"
    );
}

#[test]
fn whitespace_and_comments_are_ignored() {
    let expr = parse_filter("  title ~ 'a' // the title\n\t&& views > 3 // end").unwrap();
    assert_eq!(expr.to_string(), r#"title ~ "a" && views > 3"#);
}

#[test]
fn errors_name_the_token_and_its_position() {
    assert_eq!(
        syntax_error("(views > 10))"),
        (12, "unexpected token `)` at position 12".into())
    );
    assert_eq!(
        syntax_error("(nosuchfield>1"),
        (14, "unexpected end of expression at position 14".into())
    );
    assert_eq!(
        syntax_error("a = 'abc"),
        (4, "unterminated string at position 4".into())
    );
    assert_eq!(
        syntax_error("a & b"),
        (2, "unexpected character `&` at position 2".into())
    );
    assert_eq!(syntax_error("a = 1 b = 2").0, 6);
    assert_eq!(syntax_error("a = = 1").0, 4);
    assert_eq!(syntax_error("a b").0, 2);
    assert_eq!(syntax_error("a ? 1").0, 2);
    assert_eq!(syntax_error("a ! 1").0, 2);
    assert_eq!(syntax_error("a = 1 &&").0, 8);
    assert_eq!(syntax_error("").0, 0);
    assert_eq!(syntax_error("   ").0, 3);
    assert_eq!(syntax_error("a = #").0, 4);
    assert_eq!(
        syntax_error("x = @nope"),
        (4, "unknown macro `@nope` at position 4".into())
    );
    assert_eq!(
        syntax_error("x:upper = 1"),
        (0, "unknown modifier `:upper` at position 0".into())
    );
    assert_eq!(
        syntax_error("lower(x) = 1"),
        (0, "unknown function `lower` at position 0".into())
    );
    assert_eq!(
        syntax_error("a = 1 && strftime(x, y) = 1").1,
        "invalid arguments to `strftime`: the first argument must be a format string at position 9"
    );
    assert_eq!(syntax_error("geoDistance(1, 2, 3) < 1").0, 0);
    for bad in [
        "a..b = 1",
        "a. = 1",
        "@request = 1",
        "@request.nope.x = 1",
        "@request.auth = 1",
        "@request.method.x = 1",
        "@collection.users = 1",
        "@collection.1x.a = 1",
        "a:b:c = 1",
        "a.b-c = 1",
    ] {
        assert!(parse_filter(bad).is_err(), "{bad}");
    }
}

#[test]
fn limits_bound_length_depth_and_terms() {
    let limits = Limits {
        max_length: 40,
        max_depth: 2,
        max_terms: 2,
        max_sort_items: 2,
    };
    assert_eq!(
        parse_filter_with(&"a".repeat(41), &limits),
        Err(FilterError::TooLong {
            length: 41,
            max: 40
        })
    );
    assert!(parse_filter_with("((a = 1))", &limits).is_ok());
    assert_eq!(
        parse_filter_with("(((a = 1)))", &limits)
            .unwrap_err()
            .to_string(),
        "expression nested deeper than 2 levels at position 2"
    );
    assert_eq!(
        parse_filter_with("a = 1 && b = 2 && c = 3", &limits)
            .unwrap_err()
            .to_string(),
        "more than 2 terms at position 18"
    );
    assert!(parse_sort_with("a,b,c", &limits).is_err());
    let deep = format!("{}a = 1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(
        parse_filter_with(
            &deep,
            &Limits {
                max_length: usize::MAX,
                ..Limits::default()
            }
        )
        .is_err()
    );
}

#[test]
fn sort_lists_parse_directions_and_specials() {
    let items = parse_sort(" -created, +title ,views,@random,-@rowid, author.name ").unwrap();
    let printed: Vec<String> = items.iter().map(ToString::to_string).collect();
    assert_eq!(
        printed,
        vec![
            "-created",
            "title",
            "views",
            "@random",
            "-@rowid",
            "author.name"
        ]
    );
    assert_eq!(items[3].target, SortTarget::Random);
    assert_eq!(items[4].direction, Direction::Descending);
    assert_eq!(parse_sort("  "), Ok(vec![]));
}

#[test]
fn malformed_sort_lists_report_positions() {
    let position = |input: &str| parse_sort(input).unwrap_err().position().unwrap();
    assert_eq!(position("a,,b"), 2);
    assert_eq!(position("a,"), 2);
    assert_eq!(position("a, -"), 4);
    assert_eq!(position("a b"), 1);
    assert_eq!(position("x,a;drop"), 3);
    assert_eq!(position("@nope"), 0);
    assert!(parse_sort("a,b,c,d,e,f,g,h,i").is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_parsers(input in "\\PC{0,80}") {
        let _ = parse_filter(&input);
        let _ = parse_sort(&input);
    }

    #[test]
    fn filter_like_text_never_panics_the_parsers(
        input in "[a-z@.:_()'\"\\\\ =!<>~?&|,0-9+-]{0,60}"
    ) {
        let _ = parse_filter(&input);
        let _ = parse_sort(&input);
    }
}
