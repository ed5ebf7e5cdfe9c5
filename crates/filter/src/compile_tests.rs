use super::*;
use crate::ast::{DateMacro, IdentSource};
use crate::parser::{parse_filter, parse_sort};

/// A `posts` collection: title (text), views (number), active (bool), tags (JSON array),
/// data (JSON), author (relation, scalar subquery), comments (back-relation rows).
pub(super) struct Posts {
    pub(super) auth_id: &'static str,
    pub(super) body_tags: Vec<&'static str>,
}

impl Default for Posts {
    fn default() -> Posts {
        Posts {
            auth_id: "u1",
            body_tags: vec!["a", "b"],
        }
    }
}

impl Resolver for Posts {
    fn resolve(&mut self, ident: &Ident) -> Result<Resolved, FilterError> {
        let path: Vec<&str> = ident.path.iter().map(String::as_str).collect();
        Ok(match (&ident.source, path.as_slice()) {
            (IdentSource::Record, ["id"]) => Resolved::column("\"posts\".\"id\"", ValueKind::Text),
            (IdentSource::Record, ["title"]) => {
                Resolved::column("\"posts\".\"title\"", ValueKind::Text)
            }
            (IdentSource::Record, ["views"]) => {
                Resolved::column("\"posts\".\"views\"", ValueKind::Number)
            }
            (IdentSource::Record, ["active"]) => {
                Resolved::column("\"posts\".\"active\"", ValueKind::Bool)
            }
            (IdentSource::Record, ["created"]) => {
                Resolved::column("\"posts\".\"created\"", ValueKind::Text)
            }
            (IdentSource::Record, ["tags"]) => {
                Resolved::json_array("\"posts\".\"tags\"", ValueKind::Text)
            }
            (IdentSource::Record, ["scores"]) => {
                Resolved::json_array("\"posts\".\"scores\"", ValueKind::Number)
            }
            (IdentSource::Record, ["data", "x"]) => {
                Resolved::column("json_extract(\"posts\".\"data\", '$.x')", ValueKind::Any)
            }
            (IdentSource::Record, ["author", "name"]) => Resolved::column(
                "(SELECT \"users\".\"name\" FROM \"users\" WHERE \"users\".\"id\" = \"posts\".\"author\")",
                ValueKind::Text,
            ),
            (IdentSource::Record, ["comments_via_post", "title"]) => Resolved::Rows {
                sql: "SELECT \"comments\".\"title\" AS value FROM \"comments\" \
                      WHERE \"comments\".\"post\" = \"posts\".\"id\""
                    .into(),
                kind: ValueKind::Text,
            },
            (IdentSource::RequestAuth, ["id"]) => Resolved::Value(Param::Text(self.auth_id.into())),
            (IdentSource::RequestMethod, []) => Resolved::Value(Param::Text("GET".into())),
            (IdentSource::RequestBody, ["tags"]) => Resolved::Values(
                self.body_tags
                    .iter()
                    .map(|tag| Param::Text((*tag).into()))
                    .collect(),
            ),
            (IdentSource::RequestBody, ["title"]) if ident.modifier == Some(Modifier::Isset) => {
                Resolved::Value(Param::Bool(true))
            }
            (IdentSource::RequestBody, ["views"]) => Resolved::Value(Param::Text("7".into())),
            _ => return Err(FilterError::UnknownField(ident.to_string())),
        })
    }

    fn resolve_macro(&mut self, date_macro: DateMacro) -> Result<Param, FilterError> {
        Ok(Param::Text(format!("<{}>", date_macro.as_str())))
    }

    fn rowid(&mut self) -> Result<String, FilterError> {
        Ok("\"posts\".\"rowid\"".into())
    }
}

fn compiled(dialect: Dialect, filter: &str) -> Compiled {
    let expr = parse_filter(filter).unwrap();
    compile(&expr, dialect, &mut Posts::default(), 1).unwrap()
}

fn sqlite(filter: &str) -> (String, Vec<Param>) {
    let Compiled { sql, params } = compiled(Dialect::Sqlite, filter);
    (sql, params)
}

fn postgres(filter: &str) -> (String, Vec<Param>) {
    let Compiled { sql, params } = compiled(Dialect::Postgres, filter);
    (sql, params)
}

fn text(value: &str) -> Param {
    Param::Text(value.into())
}

#[test]
fn logical_operators_nest_with_parentheses() {
    let (sql, params) = sqlite("title = 'a' || views > 1 && active = true");
    assert_eq!(
        sql,
        "(\"posts\".\"title\" = $1 OR (\"posts\".\"views\" > $2 AND \"posts\".\"active\" = $3))"
    );
    assert_eq!(
        params,
        vec![text("a"), Param::Integer(1), Param::Bool(true)]
    );
}

#[test]
fn placeholders_start_at_the_given_index() {
    let expr = parse_filter("title = 'a' && views > 1").unwrap();
    let compiled = compile(&expr, Dialect::Postgres, &mut Posts::default(), 4).unwrap();
    assert_eq!(
        compiled.sql,
        "(\"posts\".\"title\" = $4::text AND \"posts\".\"views\" > $5::bigint)"
    );
}

#[test]
fn ordering_operators_bind_values_with_postgres_casts() {
    for (op, written) in [(">", ">"), (">=", ">="), ("<", "<"), ("<=", "<=")] {
        assert_eq!(
            sqlite(&format!("views {op} 10")).0,
            format!("\"posts\".\"views\" {written} $1")
        );
        assert_eq!(
            postgres(&format!("views {op} 1.5")),
            (
                format!("\"posts\".\"views\" {written} $1::double precision"),
                vec![Param::Real(1.5)]
            )
        );
    }
}

#[test]
fn literals_take_the_kind_of_the_column_they_meet() {
    assert_eq!(postgres("views > '10'").1, vec![Param::Integer(10)]);
    assert_eq!(postgres("title = 10").1, vec![text("10")]);
    assert_eq!(postgres("active = 1").1, vec![Param::Bool(true)]);
    assert_eq!(postgres("active = 'false'").1, vec![Param::Bool(false)]);
    // No number form: compared as text.
    assert_eq!(
        postgres("views = 'abc'"),
        (
            "(\"posts\".\"views\")::text = $1::text".into(),
            vec![text("abc")]
        )
    );
    assert_eq!(sqlite("views = 'abc'").0, "\"posts\".\"views\" = $1");
    // Unknown kind: bound as is, without a cast, so PostgreSQL infers it.
    assert_eq!(
        postgres("data.x > 5"),
        (
            "json_extract(\"posts\".\"data\", '$.x') > $1".into(),
            vec![Param::Integer(5)]
        )
    );
    // Two known values meet on a common kind.
    assert_eq!(
        postgres("@request.body.views > 5"),
        (
            "$1::bigint > $2::bigint".into(),
            vec![Param::Integer(7), Param::Integer(5)]
        )
    );
}

#[test]
fn equality_with_empty_values_matches_null_and_empty() {
    let empty_text = "(\"posts\".\"title\" = '' OR \"posts\".\"title\" IS NULL)";
    assert_eq!(sqlite("title = ''"), (empty_text.into(), vec![]));
    assert_eq!(sqlite("title = null"), (empty_text.into(), vec![]));
    assert_eq!(sqlite("'' = title").0, empty_text);
    assert_eq!(
        sqlite("title != \"\"").0,
        "(\"posts\".\"title\" <> '' AND \"posts\".\"title\" IS NOT NULL)"
    );
    assert_eq!(postgres("views = null").0, "\"posts\".\"views\" IS NULL");
    assert_eq!(postgres("views != ''").0, "\"posts\".\"views\" IS NOT NULL");
    assert_eq!(
        postgres("data.x = ''").0,
        "((json_extract(\"posts\".\"data\", '$.x'))::text = '' OR \
         (json_extract(\"posts\".\"data\", '$.x'))::text IS NULL)"
    );
    assert_eq!(sqlite("null = ''").0, "TRUE");
    assert_eq!(sqlite("null != ''").0, "FALSE");
    assert_eq!(sqlite("'a' = ''").0, "FALSE");
    assert_eq!(sqlite("'a' != null").0, "TRUE");
}

#[test]
fn inequality_keeps_rows_with_a_missing_value() {
    assert_eq!(
        sqlite("title != 'a'"),
        ("\"posts\".\"title\" IS NOT $1".into(), vec![text("a")])
    );
    assert_eq!(
        postgres("title != 'a'").0,
        "\"posts\".\"title\" IS DISTINCT FROM $1::text"
    );
}

#[test]
fn two_columns_compare_with_null_as_empty() {
    assert_eq!(
        sqlite("title = author.name").0,
        "COALESCE(\"posts\".\"title\", '') = COALESCE((SELECT \"users\".\"name\" FROM \"users\" \
         WHERE \"users\".\"id\" = \"posts\".\"author\"), '')"
    );
    assert_eq!(
        postgres("views != views").0,
        "\"posts\".\"views\" IS DISTINCT FROM \"posts\".\"views\""
    );
    assert_eq!(
        sqlite("views = views").0,
        "\"posts\".\"views\" IS \"posts\".\"views\""
    );
    assert_eq!(
        postgres("title = views").0,
        "COALESCE(\"posts\".\"title\", '') = COALESCE((\"posts\".\"views\")::text, '')"
    );
}

#[test]
fn request_values_are_bound_never_pasted() {
    assert_eq!(
        sqlite("id = @request.auth.id"),
        ("\"posts\".\"id\" = $1".into(), vec![text("u1")])
    );
    let expr = parse_filter("id = @request.auth.id").unwrap();
    let mut guest = Posts {
        auth_id: "",
        ..Posts::default()
    };
    let compiled = compile(&expr, Dialect::Sqlite, &mut guest, 1).unwrap();
    assert_eq!(
        compiled.sql,
        "(\"posts\".\"id\" = '' OR \"posts\".\"id\" IS NULL)"
    );
    assert_eq!(
        postgres("@request.method = 'GET'"),
        ("$1::text = $2::text".into(), vec![text("GET"), text("GET")])
    );
    assert_eq!(
        postgres("@request.body.title:isset = true"),
        (
            "$1::boolean = $2::boolean".into(),
            vec![Param::Bool(true), Param::Bool(true)]
        )
    );
}

#[test]
fn macros_are_bound_values() {
    assert_eq!(
        sqlite("created >= @todayStart"),
        (
            "\"posts\".\"created\" >= $1".into(),
            vec![text("<@todayStart>")]
        )
    );
}

#[test]
fn contains_wraps_and_escapes_or_uses_the_pattern_as_is() {
    assert_eq!(
        sqlite("title ~ 'a_b\\\\c'"),
        (
            "\"posts\".\"title\" LIKE $1 ESCAPE '\\'".into(),
            vec![text("%a\\_b\\\\c%")]
        )
    );
    assert_eq!(sqlite("title ~ 'ab%'").1, vec![text("ab%")]);
    assert_eq!(sqlite("title ~ '%50\\%'").1, vec![text("%50\\%")]);
    assert_eq!(sqlite("title ~ 'x%\\\\'").1, vec![text("x%\\\\")]);
    assert_eq!(
        postgres("title ~ 'Hello'"),
        (
            "\"posts\".\"title\" ILIKE $1::text ESCAPE '\\'".into(),
            vec![text("%Hello%")]
        )
    );
    assert_eq!(
        postgres("views !~ 12"),
        (
            "COALESCE((\"posts\".\"views\")::text, '') NOT ILIKE $1::text ESCAPE '\\'".into(),
            vec![text("%12%")]
        )
    );
    // A value on the left and a column on the right swap sides, as in PocketBase.
    assert_eq!(
        sqlite("'abc' ~ title").0,
        "\"posts\".\"title\" LIKE $1 ESCAPE '\\'"
    );
    // A column pattern is wrapped in SQL.
    assert_eq!(
        sqlite("title ~ author.name").0,
        "\"posts\".\"title\" LIKE ('%' || (SELECT \"users\".\"name\" FROM \"users\" WHERE \
         \"users\".\"id\" = \"posts\".\"author\") || '%') ESCAPE '\\'"
    );
}

#[test]
fn any_of_operators_use_exists_over_json_elements() {
    let padded = "(SELECT value FROM json_each(COALESCE(NULLIF(\"posts\".\"tags\", ''), '[]')) \
                  UNION ALL SELECT NULL WHERE NOT EXISTS (SELECT value FROM \
                  json_each(COALESCE(NULLIF(\"posts\".\"tags\", ''), '[]')))) AS _pf1";
    assert_eq!(
        sqlite("tags ?= 'a'"),
        (
            format!("EXISTS (SELECT 1 FROM {padded} WHERE _pf1.value = $1)"),
            vec![text("a")]
        )
    );
    assert_eq!(
        sqlite("tags = 'a'").0,
        format!("NOT EXISTS (SELECT 1 FROM {padded} WHERE NOT COALESCE(_pf1.value = $1, FALSE))")
    );
    // `:each` asks for the elements; the operator keeps its own any/every meaning.
    assert_eq!(
        sqlite("tags:each ?~ 'a'").0,
        format!("EXISTS (SELECT 1 FROM {padded} WHERE _pf1.value LIKE $1 ESCAPE '\\')")
    );
    let (sql, params) = postgres("scores ?> 3");
    assert_eq!(
        sql,
        "EXISTS (SELECT 1 FROM (SELECT (_pfe.value)::double precision AS value FROM \
         jsonb_array_elements_text(COALESCE(NULLIF((\"posts\".\"scores\")::text, ''), \
         '[]')::jsonb) AS _pfe(value) UNION ALL SELECT NULL WHERE NOT EXISTS (SELECT \
         (_pfe.value)::double precision AS value FROM jsonb_array_elements_text(\
         COALESCE(NULLIF((\"posts\".\"scores\")::text, ''), '[]')::jsonb) AS _pfe(value))) \
         AS _pf1 WHERE _pf1.value > $1::bigint)"
    );
    assert_eq!(params, vec![Param::Integer(3)]);
}

#[test]
fn relation_rows_and_lower_apply_per_element() {
    let (sql, _) = sqlite("comments_via_post.title:lower ?= 'hi'");
    assert!(sql.starts_with("EXISTS (SELECT 1 FROM (SELECT \"comments\".\"title\" AS value"));
    assert!(
        sql.ends_with("AS _pf1 WHERE LOWER(_pf1.value) = $1)"),
        "{sql}"
    );
    // The modifier lowers the field only, as in PocketBase.
    assert_eq!(sqlite("title:lower = 'HI'").1, vec![text("HI")]);
    assert_eq!(
        sqlite("title:lower = 'x'").0,
        "LOWER(\"posts\".\"title\") = $1"
    );
    assert_eq!(
        postgres("views:lower = 'x'").0,
        "LOWER((\"posts\".\"views\")::text) = $1::text"
    );
}

#[test]
fn length_counts_elements() {
    assert_eq!(
        sqlite("tags:length > 1").0,
        "(SELECT COUNT(*) FROM (SELECT value FROM json_each(COALESCE(NULLIF(\"posts\".\"tags\", \
         ''), '[]'))) AS _pf1) > $1"
    );
    assert_eq!(
        sqlite("@request.body.tags:length = 2").1,
        vec![Param::Integer(2), Param::Integer(2)]
    );
    let expr = parse_filter("title:length > 1").unwrap();
    assert_eq!(
        compile(&expr, Dialect::Sqlite, &mut Posts::default(), 1).unwrap_err(),
        FilterError::UnsupportedModifier {
            modifier: "length",
            operand: "title:length".into()
        }
    );
}

#[test]
fn request_arrays_expand_into_one_comparison_per_value() {
    assert_eq!(
        sqlite("@request.body.tags ?= title"),
        (
            "($1 = \"posts\".\"title\" OR $2 = \"posts\".\"title\")".into(),
            vec![text("a"), text("b")]
        )
    );
    assert_eq!(
        sqlite("@request.body.tags:each ~ 'pb_%'").0,
        "($1 LIKE $2 ESCAPE '\\' AND $3 LIKE $4 ESCAPE '\\')"
    );
    let expr = parse_filter("@request.body.tags ?= 'x'").unwrap();
    let mut empty = Posts {
        body_tags: vec![],
        ..Posts::default()
    };
    assert_eq!(
        compile(&expr, Dialect::Sqlite, &mut empty, 1).unwrap().sql,
        "(FALSE)"
    );
}

#[test]
fn strftime_compiles_per_dialect() {
    assert_eq!(
        sqlite("strftime('%Y-%m', created, 'start of month', '+1 day') = '2024-01'"),
        (
            "strftime($1, \"posts\".\"created\", $2, $3) = $4".into(),
            vec![
                text("%Y-%m"),
                text("start of month"),
                text("+1 day"),
                text("2024-01")
            ]
        )
    );
    assert_eq!(
        postgres("strftime('%Y-%m', created, 'start of month', '+1 day') = '2024-01'"),
        (
            "to_char((date_trunc('month', (NULLIF((\"posts\".\"created\")::text, \
             '')::timestamptz AT TIME ZONE 'UTC')) + ($1)::interval), $2::text) = $3::text"
                .into(),
            vec![text("+1 days"), text("YYYY\"-\"MM"), text("2024-01")]
        )
    );
    let expr = parse_filter("strftime('%w', created) = '1'").unwrap();
    assert!(matches!(
        compile(&expr, Dialect::Postgres, &mut Posts::default(), 1),
        Err(FilterError::InvalidFunction { .. })
    ));
}

#[test]
fn geo_distance_is_the_haversine_formula() {
    let (sql, params) = postgres("geoDistance(views, views, 23.3, 42) < 25");
    assert!(
        sql.starts_with(
            "(6371 * acos(LEAST(1.0, GREATEST(-1.0, cos(radians(\"posts\".\"views\")) * \
             cos(radians($2::double precision)) * cos(radians($1::double precision) - \
             radians(\"posts\".\"views\"))"
        ),
        "{sql}"
    );
    assert!(sql.ends_with(") < $3::bigint"), "{sql}");
    assert_eq!(
        params,
        vec![Param::Real(23.3), Param::Real(42.0), Param::Integer(25)]
    );
}

#[test]
fn unknown_fields_are_the_resolvers_errors() {
    let expr = parse_filter("nosuch = 1").unwrap();
    assert_eq!(
        compile(&expr, Dialect::Sqlite, &mut Posts::default(), 1)
            .unwrap_err()
            .to_string(),
        "unknown field `nosuch`"
    );
}

#[test]
fn sort_lists_compile_per_dialect() {
    let items = parse_sort("-views,title:lower,@random,@rowid").unwrap();
    assert_eq!(
        compile_sort(&items, Dialect::Sqlite, &mut Posts::default()).unwrap(),
        "\"posts\".\"views\" DESC, LOWER(\"posts\".\"title\") ASC, RANDOM(), \"posts\".\"rowid\" ASC"
    );
    assert_eq!(
        compile_sort(
            &parse_sort("-views,title").unwrap(),
            Dialect::Postgres,
            &mut Posts::default()
        )
        .unwrap(),
        "\"posts\".\"views\" DESC NULLS LAST, \"posts\".\"title\" ASC NULLS FIRST"
    );
    for bad in ["tags", "@request.auth.id", "nosuch"] {
        assert!(
            compile_sort(
                &parse_sort(bad).unwrap(),
                Dialect::Sqlite,
                &mut Posts::default()
            )
            .is_err(),
            "{bad}"
        );
    }
    assert_eq!(
        compile_sort(&[], Dialect::Sqlite, &mut Posts::default()).unwrap(),
        ""
    );
}
