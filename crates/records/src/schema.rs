//! DDL for collection tables, per dialect. Names are validated identifiers and always quoted.

use pier_storage::Dialect;

use crate::model::{Collection, Field};

/// `"name"`, with embedded quotes doubled (names are validated, this is belt and braces).
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The column definition of a field.
pub(crate) fn column_def(field: &Field, dialect: Dialect) -> String {
    let col = quote(&field.name);
    if field.name == "id" {
        return format!("{col} TEXT PRIMARY KEY NOT NULL");
    }
    let text = match dialect {
        Dialect::Sqlite => "TEXT DEFAULT '' NOT NULL",
        // Binary collation, so sorting matches PocketBase (and SQLite) byte order.
        Dialect::Postgres => "TEXT COLLATE \"C\" DEFAULT '' NOT NULL",
    };
    let ty = match field.kind.as_str() {
        "number" => match dialect {
            Dialect::Sqlite => "REAL DEFAULT 0 NOT NULL",
            Dialect::Postgres => "DOUBLE PRECISION DEFAULT 0 NOT NULL",
        },
        "bool" => "BOOLEAN DEFAULT FALSE NOT NULL",
        "json" => "TEXT DEFAULT NULL",
        "select" | "relation" | "file" if field.is_multi() => "TEXT DEFAULT '[]' NOT NULL",
        _ => text,
    };
    format!("{col} {ty}")
}

/// `CREATE TABLE` plus the indexes of a collection.
pub(crate) fn create_table(c: &Collection, dialect: Dialect) -> String {
    let cols: Vec<String> = c.fields.iter().map(|f| column_def(f, dialect)).collect();
    let mut sql = format!("CREATE TABLE {} ({});\n", quote(&c.name), cols.join(", "));
    sql.push_str(&autodate_indexes(c));
    for idx in &c.indexes {
        sql.push_str(idx);
        sql.push_str(";\n");
    }
    sql
}

/// Indexes on autodate fields, so `sort=-created` never sorts the whole table.
pub(crate) fn autodate_indexes(c: &Collection) -> String {
    c.fields
        .iter()
        .filter(|f| f.kind == "autodate")
        .map(|f| autodate_index(c, f))
        .collect()
}

/// The name of pier's index on an autodate field's column.
pub(crate) fn autodate_index_name(c: &Collection, f: &Field) -> String {
    format!("idx_{}_{}_auto", c.id, f.name)
}

pub(crate) fn autodate_index(c: &Collection, f: &Field) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} ({});\n",
        quote(&autodate_index_name(c, f)),
        quote(&c.name),
        quote(&f.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CollectionType;

    fn field(name: &str, kind: &str) -> Field {
        let mut f = Field {
            id: String::new(),
            name: name.into(),
            kind: kind.into(),
            system: false,
            hidden: false,
            presentable: false,
            options: serde_json::Map::new(),
        };
        f.normalize();
        f
    }

    #[test]
    fn tables_get_typed_columns_and_autodate_indexes() {
        let c = Collection {
            id: "pbc_1".into(),
            name: "posts".into(),
            kind: CollectionType::Base,
            system: false,
            fields: vec![
                field("id", "text"),
                field("title", "text"),
                field("views", "number"),
                field("created", "autodate"),
            ],
            indexes: vec![],
            list_rule: None,
            view_rule: None,
            create_rule: None,
            update_rule: None,
            delete_rule: None,
            created: String::new(),
            updated: String::new(),
            options: serde_json::Map::new(),
        };
        let sql = create_table(&c, Dialect::Postgres);
        assert!(sql.starts_with("CREATE TABLE \"posts\" (\"id\" TEXT PRIMARY KEY NOT NULL, \"title\" TEXT COLLATE \"C\""), "{sql}");
        assert!(sql.contains("\"views\" DOUBLE PRECISION DEFAULT 0 NOT NULL"));
        assert!(sql.contains("ON \"posts\" (\"created\")"));
    }
}
