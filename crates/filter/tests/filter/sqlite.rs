//! Compiled filters run against an in-memory SQLite database select the right rows.

use pier_filter::{Dialect, Param, compile, compile_sort, parse_filter, parse_sort};
use rusqlite::types::Value;

use crate::helpers::Posts;

fn database() -> rusqlite::Connection {
    let connection = rusqlite::Connection::open_in_memory().unwrap();
    connection
        .execute_batch(
            r#"
            CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT);
            CREATE TABLE posts (id TEXT PRIMARY KEY, title TEXT, views NUMERIC, active BOOLEAN,
                                tags JSON, created TEXT, author TEXT);
            CREATE TABLE comments (id TEXT PRIMARY KEY, post TEXT, title TEXT);
            INSERT INTO users VALUES ('u1', 'Alice'), ('u2', 'bob');
            INSERT INTO posts VALUES
              ('p1', 'Hello World', 10, 1, '["a","b"]', '2024-01-15 10:00:00.000Z', 'u1'),
              ('p2', '', 5, 0, '[]', '2024-02-01 08:00:00.000Z', 'u2'),
              ('p3', NULL, NULL, NULL, NULL, NULL, NULL),
              ('p4', '50% off_sale', 20, 1, '["b"]', '2023-12-31 23:00:00.000Z', 'u1');
            INSERT INTO comments VALUES ('c1', 'p1', 'Nice'), ('c2', 'p1', 'meh'),
                                        ('c3', 'p4', 'Great');
            "#,
        )
        .unwrap();
    connection
}

/// Rewrites `$n` into SQLite's `?n`, as pier-storage does.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn bind(param: &Param) -> Value {
    match param {
        Param::Null => Value::Null,
        Param::Integer(value) => Value::Integer(*value),
        Param::Real(value) => Value::Real(*value),
        Param::Text(value) => Value::Text(value.clone()),
        Param::Bool(value) => Value::Integer(i64::from(*value)),
    }
}

fn select(connection: &rusqlite::Connection, filter: &str, auth_id: &str) -> Vec<String> {
    let expr = parse_filter(filter).unwrap();
    let mut resolver = Posts {
        auth_id: auth_id.into(),
    };
    let compiled = compile(&expr, Dialect::Sqlite, &mut resolver, 1).unwrap();
    let sql = format!(
        "SELECT id FROM posts WHERE {} ORDER BY id",
        numbered(&compiled.sql)
    );
    let mut statement = connection
        .prepare(&sql)
        .unwrap_or_else(|error| panic!("{filter}: {error}\n{sql}"));
    let params: Vec<Value> = compiled.params.iter().map(bind).collect();
    statement
        .query_map(rusqlite::params_from_iter(params), |row| row.get(0))
        .unwrap()
        .collect::<Result<Vec<String>, _>>()
        .unwrap_or_else(|error| panic!("{filter}: {error}\n{sql}"))
}

#[test]
fn filters_select_the_rows_pocketbase_would() {
    let connection = database();
    let cases: &[(&str, &[&str])] = &[
        ("title = ''", &["p2", "p3"]),
        ("title = null", &["p2", "p3"]),
        ("title != ''", &["p1", "p4"]),
        ("title != 'Hello World'", &["p2", "p3", "p4"]),
        ("title ~ 'hello'", &["p1"]),
        ("title ~ 'WORLD' && title ~ 'o w'", &["p1"]),
        ("title ~ '50%'", &["p4"]),
        ("title ~ '_'", &["p4"]),
        ("title ~ '%o%d'", &["p1"]),
        ("title !~ 'hello'", &["p2", "p3", "p4"]),
        ("'sale' ~ title", &["p4"]),
        ("views > 6", &["p1", "p4"]),
        ("views > '6'", &["p1", "p4"]),
        ("views <= 10", &["p1", "p2"]),
        ("views = ''", &["p3"]),
        ("views != 10", &["p2", "p3", "p4"]),
        ("active = true", &["p1", "p4"]),
        ("active = false", &["p2"]),
        ("tags ?= 'a'", &["p1"]),
        ("tags = 'b'", &["p4"]),
        ("tags ?= 'b'", &["p1", "p4"]),
        ("tags ?!= 'b'", &["p1", "p2", "p3"]),
        ("tags = ''", &["p2", "p3"]),
        ("tags != ''", &["p1", "p4"]),
        ("tags ?~ 'A'", &["p1"]),
        ("tags:each ?~ 'b'", &["p1", "p4"]),
        ("tags:each ~ 'b'", &["p4"]),
        ("tags:length = 0", &["p2", "p3"]),
        ("tags:length >= 2", &["p1"]),
        ("author.name = 'alice'", &[]),
        ("author.name:lower = 'alice'", &["p1", "p4"]),
        ("author.name = ''", &["p3"]),
        ("comments_via_post.title ?~ 'great'", &["p4"]),
        ("comments_via_post.title ?= 'Nice'", &["p1"]),
        ("comments_via_post.title = 'Nice'", &[]),
        ("comments_via_post.title = ''", &["p2", "p3"]),
        ("comments_via_post.title:length > 1", &["p1"]),
        ("id = @request.auth.id", &["p2"]),
        ("@request.auth.id != '' && author.name = 'bob'", &["p2"]),
        ("@request.body.tags ?= tags", &["p1", "p4"]),
        ("@request.body.tags:length = 2 && views > 15", &["p4"]),
        ("@request.body.title:isset = false && views = 5", &["p2"]),
        ("strftime('%Y', created) = '2024'", &["p1", "p2"]),
        (
            "strftime('%Y-%m', created, '+1 hour') = '2024-01'",
            &["p1", "p4"],
        ),
        ("created < @now", &["p1", "p4"]),
        ("created >= '2024-01-01' && views < 15", &["p1", "p2"]),
        (
            "(views > 15 || title ~ 'hello') && active = true",
            &["p1", "p4"],
        ),
        ("views > 15 || title ~ 'hello' && active = false", &["p4"]),
        ("title = \"'; DROP TABLE posts; --\"", &[]),
        ("title ~ \"' OR 1=1 /*\"", &[]),
    ];
    for (filter, expected) in cases {
        let actual = select(&connection, filter, "p2");
        assert_eq!(&actual, expected, "{filter}");
    }
    let count: i64 = connection
        .query_row("SELECT COUNT(*) FROM posts", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 4);
}

#[test]
fn geo_distance_runs_when_sqlite_has_math_functions() {
    let connection = database();
    let has_math = connection
        .query_row("SELECT acos(1.0)", [], |row| row.get::<_, f64>(0))
        .is_ok();
    if !has_math {
        return;
    }
    let near = select(
        &connection,
        "geoDistance(23.32, 42.69, 23.33, 42.70) < 2 && views > 6",
        "",
    );
    assert_eq!(near, vec!["p1", "p4"]);
    let far = select(&connection, "geoDistance(0, 0, 90, 0) < 10000", "");
    assert!(far.is_empty());
}

#[test]
fn sort_lists_order_the_rows() {
    let connection = database();
    let order = |sort: &str| -> Vec<String> {
        let items = parse_sort(sort).unwrap();
        let mut resolver = Posts {
            auth_id: String::new(),
        };
        let order_by = compile_sort(&items, Dialect::Sqlite, &mut resolver).unwrap();
        let sql = format!("SELECT id FROM posts ORDER BY {order_by}");
        let mut statement = connection.prepare(&sql).unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<Vec<String>, _>>()
            .unwrap()
    };
    assert_eq!(order("-views"), vec!["p4", "p1", "p2", "p3"]);
    assert_eq!(order("title:lower,id"), vec!["p3", "p2", "p4", "p1"]);
    assert_eq!(order("-@rowid"), vec!["p4", "p3", "p2", "p1"]);
    assert_eq!(order("@random").len(), 4);
}
