//! Collections, records and superuser auth through the HTTP API, on both engines.

use pier_testkit::{Engine, TestApp, spawn_app_with};
use serde_json::{Value, json};

/// Makes `admin@example.com` a superuser of `app` and signs in through the API: the token.
pub(crate) async fn superuser_token(app: &TestApp) -> String {
    let records = pier_records::Engine::new(app.store.clone()).await.unwrap();
    records
        .upsert_superuser("admin@example.com", "AdminPass123!")
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url("/api/collections/_superusers/auth-with-password"))
        .json(&json!({"identity": "ADMIN@example.com", "password": "AdminPass123!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["record"]["email"], "admin@example.com");
    assert!(body["record"].get("password").is_none());
    assert!(body["record"].get("tokenKey").is_none());
    body["token"].as_str().unwrap().to_owned()
}

/// A test app with a signed-in superuser (`token`); other test files add their own helpers.
pub(crate) struct Api {
    pub(crate) app: TestApp,
    pub(crate) token: String,
}

impl Api {
    pub(crate) async fn start(engine: Engine) -> Api {
        let app = spawn_app_with(engine, Vec::new()).await;
        let token = superuser_token(&app).await;
        Api { app, token }
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.app.client.request(m, self.app.url(path));
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn su(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let t = self.token.clone();
        self.call(method, path, body, Some(&t)).await
    }

    pub(crate) async fn guest(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call(method, path, body, None).await
    }

    pub(crate) async fn posts(&self, rules: Value) -> Value {
        let mut def = json!({
            "name": "posts",
            "fields": [
                {"name": "title", "type": "text", "required": true, "max": 20},
                {"name": "views", "type": "number"},
                {"name": "published", "type": "bool"},
                {"name": "tags", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
                {"name": "meta", "type": "json"},
                {"name": "secret", "type": "text", "hidden": true},
                {"name": "created", "type": "autodate", "onCreate": true},
                {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
            ]
        });
        for (k, v) in rules.as_object().unwrap() {
            def[k] = v.clone();
        }
        let (status, body) = self.su("POST", "/api/collections", Some(def)).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Api::start(pier_testkit::Engine::Sqlite).await).await }
        )* }
        mod on_postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Api::start(pier_testkit::Engine::Postgres).await).await }
        )* }
    };
}
pub(crate) use on_both_engines;

on_both_engines!(
    collections_are_for_superusers_only,
    collections_validate_their_definition,
    records_round_trip_with_pocketbase_shapes,
    validation_errors_carry_per_field_codes,
    lists_page_sort_and_skip_totals,
    updates_apply_modifiers,
    null_rules_admit_superusers_only,
    hidden_fields_are_for_superusers,
    adding_and_removing_fields_alters_the_table,
    relations_are_checked_and_cascade,
    bad_input_gets_pocketbase_errors,
);

async fn collections_are_for_superusers_only(api: Api) {
    let (s, b) = api.guest("GET", "/api/collections", None).await;
    assert_eq!(s, 401, "{b}");
    let (s, _) = api
        .call("GET", "/api/collections", None, Some("garbage.token.here"))
        .await;
    assert_eq!(s, 401);
    let (s, b) = api.su("GET", "/api/collections", None).await;
    assert_eq!(s, 200);
    assert!(
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "_superusers")
    );
    // The token secret never leaves the server.
    assert!(!b.to_string().contains("secret\":\""), "{b}");
    // "Bearer " is accepted too.
    let t = format!("Bearer {}", api.token);
    let (s, _) = api.call("GET", "/api/collections", None, Some(&t)).await;
    assert_eq!(s, 200);
    api.app.stop().await;
}

async fn collections_validate_their_definition(api: Api) {
    let c = api.posts(json!({})).await;
    assert_eq!(c["name"], "posts");
    assert_eq!(c["listRule"], Value::Null, "new collections start locked");
    assert_eq!(c["fields"][0]["name"], "id");
    assert!(c["id"].as_str().unwrap().starts_with("pbc_"));
    let (s, b) = api
        .su("POST", "/api/collections", Some(json!({"name": "POSTS"})))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["data"]["name"]["code"],
        "validation_collection_name_exists"
    );
    for bad in [
        json!({"name": "bad name"}),
        json!({"name": "x\"; DROP TABLE posts; --"}),
        json!({"name": "_private"}),
        json!({}),
    ] {
        let (s, b) = api.su("POST", "/api/collections", Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad} -> {b}");
        assert!(b["data"]["name"].is_object(), "{b}");
    }
    let (s, b) = api
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "t", "fields": [{"name": "x", "type": "nonsense"}]})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["data"]["fields"].is_object(), "{b}");
    let (s, _) = api.su("POST", "/api/collections", Some(json!({"name": "t", "fields": [{"name": "x", "type": "text"}, {"name": "X", "type": "text"}]}))).await;
    assert_eq!(s, 400);
    let (s, _) = api
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "t", "indexes": ["CREATE INDEX i ON t (id); DROP TABLE posts"]})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, b) = api.su("GET", "/api/collections/posts", None).await;
    assert_eq!((s, b["name"].as_str()), (200, Some("posts")));
    let (s, _) = api.su("DELETE", "/api/collections/_superusers", None).await;
    assert_eq!(s, 400);
    let (s, _) = api.su("DELETE", "/api/collections/posts", None).await;
    assert_eq!(s, 204);
    let (s, _) = api.su("GET", "/api/collections/posts", None).await;
    assert_eq!(s, 404);
    api.app.stop().await;
}

async fn records_round_trip_with_pocketbase_shapes(api: Api) {
    let c = api
        .posts(json!({"listRule": "", "viewRule": "", "createRule": ""}))
        .await;
    let (s, r) = api
        .guest("POST", "/api/collections/posts/records", Some(json!({
            "title": "hello", "views": "12", "published": 1, "tags": ["b", "a", "b"], "meta": {"k": [1, 2]}, "unknown": "ignored"
        })))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["collectionId"], c["id"]);
    assert_eq!(r["collectionName"], "posts");
    let id = r["id"].as_str().unwrap();
    assert_eq!(id.len(), 15);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(r["title"], "hello");
    assert_eq!(r["views"], 12);
    assert_eq!(r["published"], true);
    assert_eq!(r["tags"], json!(["b", "a"]));
    assert_eq!(r["meta"], json!({"k": [1, 2]}));
    assert!(r.get("unknown").is_none());
    let created = r["created"].as_str().unwrap();
    assert_eq!(created.len(), 24, "{created}");
    assert!(created.ends_with('Z') && &created[10..11] == " ");
    let (s, v) = api
        .guest("GET", &format!("/api/collections/posts/records/{id}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v, r);
    // The collection may be named by id too.
    let (s, _) = api
        .guest(
            "GET",
            &format!(
                "/api/collections/{}/records/{id}",
                c["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = api
        .guest(
            "GET",
            "/api/collections/posts/records/doesnotexist123",
            None,
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(
        b,
        json!({"data": {}, "message": "The requested resource wasn't found.", "status": 404})
    );
    // A custom id is kept; a duplicate is a validation error.
    let (s, r) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"id": "abcdefghijklmno", "title": "x"})),
        )
        .await;
    assert_eq!((s, r["id"].as_str()), (200, Some("abcdefghijklmno")));
    let (s, b) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"id": "abcdefghijklmno", "title": "x"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    api.app.stop().await;
}

async fn validation_errors_carry_per_field_codes(api: Api) {
    api.posts(json!({"createRule": ""})).await;
    let (s, b) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "", "tags": ["zzz"]})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["message"], "Failed to create record.");
    assert_eq!(b["data"]["title"]["code"], "validation_required");
    assert_eq!(b["data"]["tags"]["code"], "validation_invalid_value");
    let (s, b) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "x".repeat(21)})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["data"]["title"]["code"], "validation_max_text_constraint");
    // Nothing was half-written.
    let (_, l) = api.su("GET", "/api/collections/posts/records", None).await;
    assert_eq!(l["totalItems"], 0);
    api.app.stop().await;
}

async fn lists_page_sort_and_skip_totals(api: Api) {
    api.posts(json!({"listRule": "", "createRule": ""})).await;
    for (i, t) in ["b", "d", "a", "e", "c"].iter().enumerate() {
        let (s, _) = api
            .guest(
                "POST",
                "/api/collections/posts/records",
                Some(json!({"title": t, "views": i})),
            )
            .await;
        assert_eq!(s, 200);
    }
    let (s, l) = api
        .guest(
            "GET",
            "/api/collections/posts/records?perPage=2&page=2&sort=title",
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            l["page"].as_i64(),
            l["perPage"].as_i64(),
            l["totalItems"].as_i64(),
            l["totalPages"].as_i64()
        ),
        (Some(2), Some(2), Some(5), Some(3))
    );
    let titles: Vec<&str> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["c", "d"]);
    let (_, l) = api
        .guest(
            "GET",
            "/api/collections/posts/records?sort=-views,title&skipTotal=1",
            None,
        )
        .await;
    assert_eq!(l["totalItems"], -1);
    assert_eq!(l["totalPages"], -1);
    assert_eq!(l["items"][0]["title"], "c");
    let (_, l) = api
        .guest(
            "GET",
            "/api/collections/posts/records?sort=@random&perPage=0",
            None,
        )
        .await;
    assert_eq!(l["perPage"], 30);
    assert_eq!(l["items"].as_array().unwrap().len(), 5);
    let (_, l) = api
        .guest(
            "GET",
            "/api/collections/posts/records?perPage=5000&page=0",
            None,
        )
        .await;
    assert_eq!(
        (l["perPage"].as_i64(), l["page"].as_i64()),
        (Some(1000), Some(1))
    );
    let (s, _) = api
        .guest("GET", "/api/collections/posts/records?perPage=abc", None)
        .await;
    assert_eq!(s, 400);
    let (s, b) = api
        .guest(
            "GET",
            "/api/collections/posts/records?sort=nosuchfield",
            None,
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = api
        .guest("GET", "/api/collections/posts/records?sort=secret", None)
        .await;
    assert_eq!(s, 400, "hidden fields are not sortable by guests");
    api.app.stop().await;
}

async fn updates_apply_modifiers(api: Api) {
    api.posts(json!({"createRule": "", "updateRule": "", "viewRule": ""}))
        .await;
    let (_, r) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "t", "views": 5, "tags": ["a"]})),
        )
        .await;
    let id = r["id"].as_str().unwrap().to_owned();
    let path = format!("/api/collections/posts/records/{id}");
    let (s, u) = api
        .guest(
            "PATCH",
            &path,
            Some(json!({"views+": 2, "tags+": ["c", "a"], "+tags": "b"})),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["views"], 7);
    assert_eq!(u["tags"], json!(["b", "a", "c"]));
    assert_eq!(u["title"], "t");
    assert_ne!(u["updated"], r["updated"]);
    assert_eq!(u["created"], r["created"]);
    let (_, u) = api
        .guest(
            "PATCH",
            &path,
            Some(json!({"views-": 10, "tags-": ["a", "b"]})),
        )
        .await;
    assert_eq!(u["views"], -3);
    assert_eq!(u["tags"], json!(["c"]));
    let (s, b) = api.guest("PATCH", &path, Some(json!({"title": ""}))).await;
    assert_eq!(s, 400);
    assert_eq!(b["data"]["title"]["code"], "validation_required");
    let (s, _) = api
        .guest(
            "PATCH",
            "/api/collections/posts/records/doesnotexist123",
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(s, 404);
    api.app.stop().await;
}

async fn null_rules_admit_superusers_only(api: Api) {
    api.posts(json!({})).await;
    let (s, b) = api
        .guest("GET", "/api/collections/posts/records", None)
        .await;
    assert_eq!(s, 403);
    assert_eq!(b["message"], "Only superusers can perform this action.");
    let (s, _) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, r) = api
        .su(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(s, 200);
    let path = format!(
        "/api/collections/posts/records/{}",
        r["id"].as_str().unwrap()
    );
    for (m, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"title": "y"}))),
        ("DELETE", None),
    ] {
        let (s, _) = api.guest(m, &path, body).await;
        assert_eq!(s, 403, "{m}");
    }
    let (s, _) = api.su("DELETE", &path, None).await;
    assert_eq!(s, 204);
    let (s, _) = api.su("GET", &path, None).await;
    assert_eq!(s, 404);
    api.app.stop().await;
}

async fn hidden_fields_are_for_superusers(api: Api) {
    api.posts(json!({"listRule": "", "viewRule": "", "createRule": ""}))
        .await;
    let (_, r) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "x", "secret": "guest-write"})),
        )
        .await;
    assert!(r.get("secret").is_none());
    let path = format!(
        "/api/collections/posts/records/{}",
        r["id"].as_str().unwrap()
    );
    let (_, su) = api.su("GET", &path, None).await;
    assert_eq!(
        su["secret"], "",
        "a guest's write to a hidden field is dropped"
    );
    let (_, l) = api
        .guest("GET", "/api/collections/posts/records", None)
        .await;
    assert!(l["items"][0].get("secret").is_none());
    api.app.stop().await;
}

async fn adding_and_removing_fields_alters_the_table(api: Api) {
    api.posts(json!({"listRule": "", "createRule": ""})).await;
    api.guest(
        "POST",
        "/api/collections/posts/records",
        Some(json!({"title": "old"})),
    )
    .await;
    let (_, c) = api.su("GET", "/api/collections/posts", None).await;
    let mut fields: Vec<Value> = c["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] != "views")
        .cloned()
        .collect();
    fields.push(json!({"name": "subtitle", "type": "text"}));
    let (s, u) = api
        .su(
            "PATCH",
            "/api/collections/posts",
            Some(json!({"fields": fields, "listRule": ""})),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert!(
        u["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "subtitle")
    );
    let (_, l) = api
        .guest("GET", "/api/collections/posts/records", None)
        .await;
    let item = &l["items"][0];
    assert!(item.is_object() && item.get("subtitle").is_some(), "{l}");
    assert_eq!(item["title"], "old");
    assert_eq!(item["subtitle"], "");
    assert!(item.get("views").is_none());
    let (s, _) = api
        .su(
            "PATCH",
            "/api/collections/posts",
            Some(json!({"name": "articles"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = api
        .guest("GET", "/api/collections/articles/records", None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = api
        .su("DELETE", "/api/collections/articles/truncate", None)
        .await;
    assert_eq!(s, 204);
    let (_, l) = api
        .guest("GET", "/api/collections/articles/records", None)
        .await;
    assert_eq!(l["totalItems"], 0);
    api.app.stop().await;
}

async fn relations_are_checked_and_cascade(api: Api) {
    let posts = api
        .posts(json!({"listRule": "", "createRule": "", "viewRule": "", "deleteRule": ""}))
        .await;
    let pid = posts["id"].as_str().unwrap();
    let (s, b) = api.su("POST", "/api/collections", Some(json!({
        "name": "comments", "listRule": "", "createRule": "",
        "fields": [
            {"name": "post", "type": "relation", "collectionId": pid, "maxSelect": 1, "cascadeDelete": true},
            {"name": "also", "type": "relation", "collectionId": pid, "maxSelect": 5}
        ]
    }))).await;
    assert_eq!(s, 200, "{b}");
    let (_, p1) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "p1"})),
        )
        .await;
    let (_, p2) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "p2"})),
        )
        .await;
    let (p1, p2) = (p1["id"].as_str().unwrap(), p2["id"].as_str().unwrap());
    let (s, b) = api
        .guest(
            "POST",
            "/api/collections/comments/records",
            Some(json!({"post": "nosuchrecord123"})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["data"]["post"]["code"], "validation_missing_rel_records");
    let (s, c) = api
        .guest(
            "POST",
            "/api/collections/comments/records",
            Some(json!({"post": p1, "also": [p1, p2]})),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    let (s, c2) = api
        .guest(
            "POST",
            "/api/collections/comments/records",
            Some(json!({"post": p2, "also": [p1]})),
        )
        .await;
    assert_eq!(s, 200, "{c2}");
    // Referenced collections cannot be dropped.
    let (s, _) = api.su("DELETE", "/api/collections/posts", None).await;
    assert_eq!(s, 400);
    let (s, _) = api
        .guest(
            "DELETE",
            &format!("/api/collections/posts/records/{p1}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, l) = api
        .su("GET", "/api/collections/comments/records", None)
        .await;
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the comment on p1 was deleted with it: {l}");
    assert_eq!(items[0]["post"], p2);
    assert_eq!(
        items[0]["also"],
        json!([]),
        "p1 was removed from multi relations"
    );
    api.app.stop().await;
}

async fn bad_input_gets_pocketbase_errors(api: Api) {
    api.posts(json!({"createRule": "", "listRule": "", "viewRule": ""}))
        .await;
    for body in ["{not json", "[1,2]", "\"str\"", "123"] {
        let res = api
            .app
            .client
            .post(api.app.url("/api/collections/posts/records"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
        let b: Value = res.json().await.unwrap();
        assert_eq!(
            b["message"],
            "Failed to load the submitted data due to invalid formatting."
        );
    }
    for path in [
        "/api/collections/nope/records",
        "/api/collections/posts/records/'%20OR%201=1--",
        "/api/collections/posts/records/short",
    ] {
        let (s, b) = api.guest("GET", path, None).await;
        assert_eq!(s, 404, "{path} -> {b}");
    }
    let (s, b) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "x'); DROP TABLE t;--"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["title"], "x'); DROP TABLE t;--");
    for bad in [
        "title%3D",
        "(title%3D%27x%27",
        "nosuch%3D1",
        "title%20%3D%3D%201",
    ] {
        let (s, b) = api
            .guest(
                "GET",
                &format!("/api/collections/posts/records?filter={bad}"),
                None,
            )
            .await;
        assert_eq!(s, 400, "{bad} -> {b}");
        assert_eq!(
            b["message"],
            "Something went wrong while processing your request."
        );
    }
    let (s, b) = api
        .call(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            Some(json!({"identity": "admin@example.com", "password": "wrong"})),
            None,
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b,
        json!({"data": {}, "message": "Failed to authenticate.", "status": 400})
    );
    let (s, b) = api
        .call(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            Some(json!({"identity": "nobody@example.com", "password": "whatever1"})),
            None,
        )
        .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (400, Some("Failed to authenticate."))
    );
    let (s, b) = api
        .call(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            Some(json!({})),
            None,
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["data"]["identity"]["code"], "validation_required");
    api.app.stop().await;
}
