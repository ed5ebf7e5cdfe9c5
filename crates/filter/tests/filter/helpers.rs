use pier_filter::{
    DateMacro, FilterError, Ident, IdentSource, Modifier, Param, Resolved, Resolver, ValueKind,
};

/// The `posts` collection of the tests, for SQLite.
pub(crate) struct Posts {
    pub(crate) auth_id: String,
}

impl Resolver for Posts {
    fn resolve(&mut self, ident: &Ident) -> Result<Resolved, FilterError> {
        let path: Vec<&str> = ident.path.iter().map(String::as_str).collect();
        let column = |name: &str, kind| Resolved::column(format!("\"posts\".\"{name}\""), kind);
        Ok(match (&ident.source, path.as_slice()) {
            (IdentSource::Record, ["id" | "title" | "created"]) => column(path[0], ValueKind::Text),
            (IdentSource::Record, ["views"]) => column("views", ValueKind::Number),
            (IdentSource::Record, ["active"]) => column("active", ValueKind::Bool),
            (IdentSource::Record, ["tags"]) => {
                Resolved::json_array("\"posts\".\"tags\"", ValueKind::Text)
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
            (IdentSource::RequestAuth, ["id"]) => {
                Resolved::Value(Param::Text(self.auth_id.clone()))
            }
            (IdentSource::RequestBody, ["tags"]) => {
                Resolved::Values(vec![Param::Text("a".into()), Param::Text("b".into())])
            }
            (IdentSource::RequestBody, ["title"]) if ident.modifier == Some(Modifier::Isset) => {
                Resolved::Value(Param::Bool(false))
            }
            _ => return Err(FilterError::UnknownField(ident.to_string())),
        })
    }

    fn resolve_macro(&mut self, date_macro: DateMacro) -> Result<Param, FilterError> {
        Ok(match date_macro {
            DateMacro::Year => Param::Integer(2024),
            _ => Param::Text("2024-01-20 00:00:00.000Z".into()),
        })
    }

    fn rowid(&mut self) -> Result<String, FilterError> {
        Ok("\"posts\".\"rowid\"".into())
    }
}
