//! Feeds arbitrary bytes to the filter and sort parsers. Checks that nothing panics, that a
//! parsed filter prints back to text that parses to the same tree, and that compiling it for
//! both dialects does not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pier_filter::{
    Dialect, FilterError, Ident, IdentSource, Limits, Param, Resolved, Resolver, ValueKind,
    compile, compile_sort, parse_filter, parse_filter_with, parse_sort,
};

/// Resolves every identifier: `tags` is a JSON array, `@collection` paths are rows, request
/// values are text, anything else a text column.
struct Anything;

impl Resolver for Anything {
    fn resolve(&mut self, ident: &Ident) -> Result<Resolved, FilterError> {
        let name = ident.path.join("_");
        Ok(match &ident.source {
            IdentSource::Record if name == "tags" => Resolved::json_array("tags", ValueKind::Text),
            IdentSource::Record => Resolved::column(format!("\"{name}\""), ValueKind::Text),
            IdentSource::Collection { name, .. } => Resolved::Rows {
                sql: format!("SELECT x AS value FROM \"{name}\""),
                kind: ValueKind::Any,
            },
            IdentSource::RequestBody => Resolved::Values(vec![Param::Text("v".into())]),
            _ => Resolved::Value(Param::Text("v".into())),
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expr) = parse_filter(text) {
        let printed = expr.to_string();
        let limits = Limits {
            max_length: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(
            parse_filter_with(&printed, &limits),
            Ok(expr.clone()),
            "{printed}"
        );
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let _ = compile(&expr, dialect, &mut Anything, 1);
        }
    }
    if let Ok(items) = parse_sort(text) {
        let _ = compile_sort(&items, Dialect::Sqlite, &mut Anything);
    }
});
