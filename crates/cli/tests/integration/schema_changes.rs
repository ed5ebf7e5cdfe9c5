//! Changing a collection that holds records, on both engines: fields are matched by id, so a
//! rename keeps the values; what cannot follow a rename or removal is refused with a 400 before
//! anything changes. Each case reads the records back afterwards, so a lost value fails it.

use serde_json::{Value, json};

use crate::records::{Api, on_both_engines};

impl Api {
    /// Creates `name` with `fields` (and any other keys of `extra`) and one record of `values`.
    async fn collection_with(&self, name: &str, fields: Value, extra: Value, values: Value) {
        let mut def = json!({"name": name, "fields": fields});
        for (k, v) in extra.as_object().unwrap() {
            def[k] = v.clone();
        }
        let (status, body) = self.su("POST", "/api/collections", Some(def)).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = self
            .su(
                "POST",
                &format!("/api/collections/{name}/records"),
                Some(values),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// The stored definition of `name`, its fields edited by `edit` (ids kept), sent back with
    /// the other keys of `extra`: what the dashboard and `pb.collections.update` send.
    async fn change(
        &self,
        name: &str,
        edit: impl Fn(&mut Vec<Value>),
        extra: Value,
    ) -> (u16, Value) {
        let (status, mut def) = self
            .su("GET", &format!("/api/collections/{name}"), None)
            .await;
        assert_eq!(status, 200, "{def}");
        let mut fields = def["fields"].as_array().unwrap().clone();
        edit(&mut fields);
        def["fields"] = Value::Array(fields);
        for (k, v) in extra.as_object().unwrap() {
            def[k] = v.clone();
        }
        self.su("PATCH", &format!("/api/collections/{name}"), Some(def))
            .await
    }

    /// The one record of `name`.
    async fn only_record(&self, name: &str) -> Value {
        let (status, body) = self
            .su("GET", &format!("/api/collections/{name}/records"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["totalItems"], 1, "{body}");
        body["items"][0].clone()
    }
}

/// Renames the field called `from` to `to`, keeping its id and options.
fn rename(from: &'static str, to: &'static str) -> impl Fn(&mut Vec<Value>) {
    move |fields| {
        for f in fields.iter_mut().filter(|f| f["name"] == from) {
            f["name"] = json!(to);
        }
    }
}

fn no_change() -> Value {
    json!({})
}

async fn a_renamed_field_keeps_its_values(api: Api) {
    let fields = json!([
        {"name": "title", "type": "text"},
        {"name": "views", "type": "number"},
        {"name": "tags", "type": "select", "values": ["a", "b"], "maxSelect": 2},
        {"name": "created", "type": "autodate", "onCreate": true}
    ]);
    let values = json!({"title": "hello", "views": 3, "tags": ["a", "b"]});
    api.collection_with("posts", fields, no_change(), values)
        .await;
    let before = api.only_record("posts").await;
    let (status, body) = api
        .change(
            "posts",
            |f| {
                rename("title", "headline")(f);
                rename("tags", "labels")(f);
                rename("created", "made")(f);
            },
            no_change(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let after = api.only_record("posts").await;
    assert_eq!(after["headline"], "hello", "{after}");
    assert_eq!(after["labels"], json!(["a", "b"]), "{after}");
    assert_eq!(after["made"], before["created"], "{after}");
    assert_eq!(after["views"], 3);
    assert!(after.get("title").is_none(), "{after}");
    // The renamed columns filter and sort under their new names.
    let (status, list) = api
        .su(
            "GET",
            "/api/collections/posts/records?filter=headline%3D%22hello%22&sort=-made",
            None,
        )
        .await;
    assert_eq!(
        (status, list["totalItems"].clone()),
        (200, json!(1)),
        "{list}"
    );
}

async fn a_rename_with_new_options_applies_both(api: Api) {
    api.collection_with(
        "posts",
        json!([{"name": "title", "type": "text"}]),
        no_change(),
        json!({"title": "hello"}),
    )
    .await;
    let (status, body) = api
        .change(
            "posts",
            |fields| {
                for f in fields.iter_mut().filter(|f| f["name"] == "title") {
                    f["name"] = json!("headline");
                    f["max"] = json!(5);
                    f["required"] = json!(true);
                }
            },
            no_change(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.only_record("posts").await["headline"], "hello");
    let (status, body) = api
        .su(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"headline": "too long"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["data"]["headline"]["code"].is_string(), "{body}");
}

async fn two_fields_swap_names(api: Api) {
    api.collection_with(
        "pairs",
        json!([{"name": "left", "type": "text"}, {"name": "right", "type": "text"}]),
        no_change(),
        json!({"left": "L", "right": "R"}),
    )
    .await;
    let (status, body) = api
        .change(
            "pairs",
            |fields| {
                for f in fields.iter_mut() {
                    if f["name"] == "left" {
                        f["name"] = json!("right");
                    } else if f["name"] == "right" {
                        f["name"] = json!("left");
                    }
                }
            },
            no_change(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let r = api.only_record("pairs").await;
    assert_eq!(
        (r["left"].clone(), r["right"].clone()),
        (json!("R"), json!("L"))
    );
}

async fn an_index_follows_only_when_its_statement_does(api: Api) {
    api.collection_with(
        "posts",
        json!([{"name": "title", "type": "text"}]),
        json!({"indexes": ["CREATE UNIQUE INDEX idx_title ON posts (title)"]}),
        json!({"title": "hello"}),
    )
    .await;
    // The index still names `title`: refused on the index, as PocketBase does, and nothing
    // changes.
    let (status, body) = api
        .change("posts", rename("title", "headline"), no_change())
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["indexes"]["0"]["code"], "validation_invalid_index_expression",
        "{body}"
    );
    assert_eq!(api.only_record("posts").await["title"], "hello");
    // With the index changed in the same request, it is renamed and still unique.
    let (status, body) = api
        .change(
            "posts",
            rename("title", "headline"),
            json!({"indexes": ["CREATE UNIQUE INDEX idx_title ON posts (headline)"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.only_record("posts").await["headline"], "hello");
    let (status, body) = api
        .su(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"headline": "hello"})),
        )
        .await;
    assert_eq!(status, 400, "the unique index holds: {body}");
    // An index removed from the list is gone from the table.
    let (status, body) = api.change("posts", |_| {}, json!({"indexes": []})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .su(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"headline": "hello"})),
        )
        .await;
    assert_eq!(status, 200, "the dropped index no longer holds: {body}");
}

async fn a_collection_and_its_field_rename_at_once(api: Api) {
    api.collection_with(
        "posts",
        json!([{"name": "title", "type": "text"}]),
        json!({"indexes": ["CREATE INDEX idx_posts_title ON posts (title)"]}),
        json!({"title": "hello"}),
    )
    .await;
    let (status, body) = api
        .change(
            "posts",
            rename("title", "heading"),
            json!({"name": "articles", "indexes": ["CREATE INDEX idx_posts_title ON posts (heading)"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The index moved to the renamed table with the collection.
    assert_eq!(
        body["indexes"],
        json!(["CREATE INDEX idx_posts_title ON \"articles\" (heading)"]),
        "{body}"
    );
    assert_eq!(api.only_record("articles").await["heading"], "hello");
    let (status, _) = api.su("GET", "/api/collections/posts", None).await;
    assert_eq!(status, 404);
}

async fn a_change_of_type_is_refused_and_keeps_the_values(api: Api) {
    api.collection_with(
        "posts",
        json!([{"name": "title", "type": "text"}, {"name": "views", "type": "number"}]),
        no_change(),
        json!({"title": "12", "views": 3}),
    )
    .await;
    let (status, body) = api
        .change(
            "posts",
            |fields| {
                for f in fields.iter_mut().filter(|f| f["name"] == "title") {
                    f["type"] = json!("number");
                }
            },
            no_change(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["fields"]["1"]["code"], "validation_field_type_change",
        "{body}"
    );
    // A definition from elsewhere: the same name under another id and another type is a type
    // change too, never a silent drop and re-create.
    let (status, body) = api
        .change(
            "posts",
            |fields| {
                for f in fields.iter_mut().filter(|f| f["name"] == "views") {
                    f["id"] = json!("text_from_elsewhere");
                    f["type"] = json!("text");
                }
            },
            no_change(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let r = api.only_record("posts").await;
    assert_eq!(
        (r["title"].clone(), r["views"].clone()),
        (json!("12"), json!(3))
    );
    // The same name and type under another id keeps the field and its values.
    let (status, body) = api
        .change(
            "posts",
            |fields| {
                for f in fields.iter_mut().filter(|f| f["name"] == "views") {
                    f["id"] = json!("number_from_elsewhere");
                }
            },
            no_change(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.only_record("posts").await["views"], 3);
}

async fn what_cannot_follow_a_rename_is_refused(api: Api) {
    api.collection_with(
        "posts",
        json!([{"name": "title", "type": "text"}, {"name": "body", "type": "text"}]),
        json!({"listRule": "title != 'secret'"}),
        json!({"title": "hello", "body": "text"}),
    )
    .await;
    // Its own rule names the old name: refused, as PocketBase refuses it.
    let (status, body) = api
        .change("posts", rename("title", "headline"), no_change())
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["listRule"]["code"], "validation_invalid_rule",
        "{body}"
    );
    // Another collection's rule and a view read `body`.
    let (status, body) = api
        .su(
            "POST",
            "/api/collections",
            Some(json!({
                "name": "notes",
                "fields": [{"name": "text", "type": "text"}],
                "listRule": "@collection.posts.body ?= text"
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "bodies", "type": "view", "viewQuery": "SELECT id, body FROM posts"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for edit in [
        Box::new(rename("body", "content")) as Box<dyn Fn(&mut Vec<Value>)>,
        Box::new(|f: &mut Vec<Value>| f.retain(|f| f["name"] != "body")),
    ] {
        let (status, body) = api.change("posts", edit, no_change()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["data"]["fields"]["code"], "validation_field_in_use",
            "{body}"
        );
        assert!(
            body["data"]["fields"]["message"]
                .as_str()
                .unwrap()
                .contains("bodies"),
            "{body}"
        );
    }
    let (status, body) = api
        .change("posts", |_| {}, json!({"name": "articles"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["name"]["code"], "validation_collection_in_use",
        "{body}"
    );
    // Without the view, the other collection's rule still holds the rename back.
    let (status, _) = api.su("DELETE", "/api/collections/bodies", None).await;
    assert_eq!(status, 204);
    let (status, body) = api
        .change("posts", rename("body", "content"), no_change())
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["data"]["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("notes"),
        "{body}"
    );
    let r = api.only_record("posts").await;
    assert_eq!(
        (r["title"].clone(), r["body"].clone()),
        (json!("hello"), json!("text"))
    );
    // With the other rule changed first, the rename goes through.
    let (status, body) = api
        .su(
            "PATCH",
            "/api/collections/notes",
            Some(json!({"listRule": "@collection.posts.title ?= text"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .change("posts", rename("body", "content"), no_change())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.only_record("posts").await["content"], "text");
}

async fn system_fields_are_not_renamed(api: Api) {
    let (status, body) = api
        .change("users", rename("email", "mail"), no_change())
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["fields"]["code"], "validation_system_field_change",
        "{body}"
    );
    let (status, body) = api
        .change(
            "users",
            |f| f.retain(|f| f["name"] != "verified"),
            no_change(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["fields"]["code"], "validation_system_field_change",
        "{body}"
    );
}

async fn an_import_renames_by_id_and_keeps_values(api: Api) {
    api.collection_with(
        "posts",
        json!([{"name": "title", "type": "text"}, {"name": "old", "type": "text"}]),
        no_change(),
        json!({"title": "hello", "old": "gone"}),
    )
    .await;
    let (_, mut def) = api.su("GET", "/api/collections/posts", None).await;
    let mut fields = def["fields"].as_array().unwrap().clone();
    rename("title", "headline")(&mut fields);
    fields.retain(|f| f["name"] != "old");
    def["fields"] = Value::Array(fields);
    let (status, body) = api
        .su(
            "PUT",
            "/api/collections/import",
            Some(json!({"collections": [def], "deleteMissing": false})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let r = api.only_record("posts").await;
    assert_eq!(r["headline"], "hello", "{r}");
    assert!(
        r.get("old").is_none(),
        "a field left out of the import is removed: {r}"
    );
}

async fn a_failed_import_keeps_nothing_of_itself(api: Api) {
    api.collection_with(
        "posts",
        json!([{"name": "title", "type": "text"}]),
        no_change(),
        json!({"title": "hello"}),
    )
    .await;
    let (_, mut def) = api.su("GET", "/api/collections/posts", None).await;
    let mut fields = def["fields"].as_array().unwrap().clone();
    rename("title", "headline")(&mut fields);
    def["fields"] = Value::Array(fields);
    let (status, body) = api
        .su(
            "PUT",
            "/api/collections/import",
            Some(json!({"collections": [
                def,
                {"name": "fresh", "fields": [{"name": "a", "type": "text"}]},
                {"name": "broken", "fields": [{"name": "b", "type": "nonsense"}]}
            ], "deleteMissing": false})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["data"]["collections"]["message"]
            .as_str()
            .unwrap()
            .contains("broken"),
        "{body}"
    );
    // The rename and the new collection before the failure were rolled back with it.
    let (status, _) = api.su("GET", "/api/collections/fresh", None).await;
    assert_eq!(status, 404);
    assert_eq!(api.only_record("posts").await["title"], "hello");
    let (status, body) = api
        .su(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "still here"})),
        )
        .await;
    assert_eq!(status, 200, "the collection still works: {body}");
}

async fn one_value_and_several_convert_as_in_pocketbase(api: Api) {
    let values = json!(["a", "b", "c"]);
    api.collection_with(
        "picks",
        json!([
            {"name": "one", "type": "select", "values": values, "maxSelect": 1},
            {"name": "many", "type": "select", "values": values, "maxSelect": 3},
            {"name": "none", "type": "select", "values": values, "maxSelect": 3}
        ]),
        no_change(),
        json!({"one": "b", "many": ["a", "c"]}),
    )
    .await;
    let (status, body) = api
        .change(
            "picks",
            |fields| {
                for f in fields.iter_mut() {
                    if f["name"] == "one" {
                        f["maxSelect"] = json!(2);
                    } else if f["name"] == "many" || f["name"] == "none" {
                        f["maxSelect"] = json!(1);
                    }
                }
            },
            no_change(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let r = api.only_record("picks").await;
    assert_eq!(r["one"], json!(["b"]), "{r}");
    assert_eq!(
        r["many"],
        json!("c"),
        "the last value stays, as in PocketBase: {r}"
    );
    assert_eq!(r["none"], json!(""), "{r}");
    // And back.
    let (status, body) = api
        .change(
            "picks",
            |fields| {
                for f in fields.iter_mut().filter(|f| f["name"] == "many") {
                    f["maxSelect"] = json!(3);
                }
            },
            no_change(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.only_record("picks").await["many"], json!(["c"]));
}

on_both_engines!(
    a_renamed_field_keeps_its_values,
    a_rename_with_new_options_applies_both,
    two_fields_swap_names,
    an_index_follows_only_when_its_statement_does,
    a_collection_and_its_field_rename_at_once,
    a_change_of_type_is_refused_and_keeps_the_values,
    what_cannot_follow_a_rename_is_refused,
    system_fields_are_not_renamed,
    an_import_renames_by_id_and_keeps_values,
    a_failed_import_keeps_nothing_of_itself,
    one_value_and_several_convert_as_in_pocketbase,
);
