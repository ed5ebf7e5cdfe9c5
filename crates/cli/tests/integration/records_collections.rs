//! Collections as a whole through the HTTP API, on both engines: import, batches and view
//! collections.

use serde_json::{Value, json};

use crate::records::{Api, on_both_engines};

on_both_engines!(
    collections_import_creates_updates_and_validates,
    batches_run_in_one_transaction,
    view_collections_are_read_only_queries,
);

async fn collections_import_creates_updates_and_validates(api: Api) {
    let body = json!({"collections": [
        {"name": "imp1", "type": "base", "listRule": "", "fields": [{"name": "title", "type": "text", "required": true}]},
        {"name": "imp2", "type": "base", "fields": []}
    ], "deleteMissing": false});
    let (s, b) = api.su("PUT", "/api/collections/import", Some(body)).await;
    assert_eq!(s, 204, "{b}");
    let (_, c) = api.su("GET", "/api/collections/imp1", None).await;
    let names: Vec<&str> = c["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "title"]);
    let mut fields = c["fields"].as_array().unwrap().clone();
    fields.push(json!({"name": "flag", "type": "bool"}));
    let (s, _) = api
        .su(
            "PUT",
            "/api/collections/import",
            Some(json!({"collections": [{"id": c["id"], "name": "imp1", "fields": fields}]})),
        )
        .await;
    assert_eq!(s, 204);
    let (_, after) = api.su("GET", "/api/collections/imp1", None).await;
    assert_eq!(after["id"], c["id"]);
    assert_eq!(after["fields"].as_array().unwrap().len(), 3);
    let (s, b) = api
        .su(
            "PUT",
            "/api/collections/import",
            Some(json!({"collections": [{"name": "", "type": "base"}]})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["message"], "Failed to import collections.");
    assert_eq!(
        b["data"]["collections"]["code"],
        "validation_collections_import_failure"
    );
    let (s, _) = api
        .guest(
            "PUT",
            "/api/collections/import",
            Some(json!({"collections": []})),
        )
        .await;
    assert_eq!(s, 401);
    // deleteMissing drops what the payload leaves out, never system collections.
    let (s, _) = api
        .su(
            "PUT",
            "/api/collections/import",
            Some(json!({"collections": [{"name": "imp2"}], "deleteMissing": true})),
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = api.su("GET", "/api/collections/imp1", None).await;
    assert_eq!(s, 404);
    let (s, _) = api.su("GET", "/api/collections/_superusers", None).await;
    assert_eq!(s, 200);
    api.app.stop().await;
}

async fn batches_run_in_one_transaction(api: Api) {
    api.posts(json!({"listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""})).await;
    let req =
        |method: &str, url: &str, body: Value| json!({"method": method, "url": url, "body": body});
    let (s, b) = api.guest("POST", "/api/batch", Some(json!({"requests": [req("POST", "/api/collections/posts/records", json!({"title": "x"}))]}))).await;
    assert_eq!(
        (s, b["message"].as_str()),
        (403, Some("Batch requests are not allowed."))
    );
    let (s, _) = api
        .guest(
            "PATCH",
            "/api/settings",
            Some(json!({"batch": {"enabled": true}})),
        )
        .await;
    assert_eq!(s, 401, "settings are for superusers");
    let (s, set) = api
        .su(
            "PATCH",
            "/api/settings",
            Some(json!({"batch": {"enabled": true, "maxRequests": 10}})),
        )
        .await;
    assert_eq!(s, 200, "{set}");
    assert_eq!(set["batch"]["enabled"], true);
    let (_, got) = api.su("GET", "/api/settings", None).await;
    assert_eq!(got["batch"]["maxRequests"], 10);
    let (s, b) = api
        .su(
            "PATCH",
            "/api/settings",
            Some(json!({"batch": {"enabled": "yes"}})),
        )
        .await;
    assert_eq!(s, 400, "{b}");

    let (_, keep) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "keep", "views": 1})),
        )
        .await;
    let (_, gone) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "gone"})),
        )
        .await;
    let keep_url = format!(
        "/api/collections/posts/records/{}",
        keep["id"].as_str().unwrap()
    );
    let gone_url = format!(
        "/api/collections/posts/records/{}",
        gone["id"].as_str().unwrap()
    );
    let (s, res) = api
        .guest("POST", "/api/batch", Some(json!({"requests": [
            req("POST", "/api/collections/posts/records", json!({"title": "new"})),
            req("PATCH", &keep_url, json!({"title": "kept", "views+": 10})),
            req("DELETE", &gone_url, json!({})),
            req("PUT", "/api/collections/posts/records", json!({"id": "upsertid0000001", "title": "ups"})),
            req("PUT", "/api/collections/posts/records", json!({"id": "upsertid0000001", "title": "ups2"})),
            req("POST", "/api/collections/posts/records?fields=title", json!({"title": "projected"}))
        ]}))).await;
    assert_eq!(s, 200, "{res}");
    let statuses: Vec<i64> = res
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 200, 204, 200, 200, 200]);
    assert_eq!(res[1]["body"]["views"], 11);
    assert_eq!(res[2]["body"], Value::Null);
    assert_eq!(
        res[4]["body"]["title"], "ups2",
        "the second upsert updated the first one's record"
    );
    assert_eq!(res[5]["body"], json!({"title": "projected"}));
    let titles = |l: &Value| -> Vec<String> {
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, l) = api
        .guest("GET", "/api/collections/posts/records?sort=title", None)
        .await;
    assert_eq!(titles(&l), ["kept", "new", "projected", "ups2"]);

    // One failure rolls everything back and names only the failing request.
    let (s, b) = api
        .guest(
            "POST",
            "/api/batch",
            Some(json!({"requests": [
                req("POST", "/api/collections/posts/records", json!({"title": "rolled back"})),
                req("PATCH", &keep_url, json!({"title": "rolled"})),
                req("POST", "/api/collections/posts/records", json!({"views": 5}))
            ]})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["message"], "Batch transaction failed.");
    assert_eq!(b["data"]["requests"]["2"]["code"], "batch_request_failed");
    assert_eq!(
        b["data"]["requests"]["2"]["response"]["data"]["title"]["code"],
        "validation_required"
    );
    assert!(b["data"]["requests"].get("0").is_none());
    let (_, l) = api
        .guest("GET", "/api/collections/posts/records?sort=title", None)
        .await;
    assert_eq!(titles(&l), ["kept", "new", "projected", "ups2"]);
    // Rules apply per request; limits and bad input are refused.
    let (s, b) = api.guest("POST", "/api/batch", Some(json!({"requests": [req("POST", "/api/collections/_superusers/records", json!({}))]}))).await;
    assert_eq!(s, 400);
    assert_eq!(b["data"]["requests"]["0"]["response"]["status"], 403);
    let (s, b) = api
        .guest("POST", "/api/batch", Some(json!({"requests": []})))
        .await;
    assert_eq!(
        (s, b["data"]["requests"]["code"].as_str()),
        (400, Some("validation_required"))
    );
    let many: Vec<Value> = (0..11)
        .map(|i| {
            req(
                "POST",
                "/api/collections/posts/records",
                json!({"title": format!("m{i}")}),
            )
        })
        .collect();
    let (s, _) = api
        .guest("POST", "/api/batch", Some(json!({"requests": many})))
        .await;
    assert_eq!(s, 400);
    let (s, _) = api
        .guest(
            "POST",
            "/api/batch",
            Some(json!({"requests": [req("GET", "/api/collections", json!({}))]})),
        )
        .await;
    assert_eq!(s, 400);
    // Multipart bodies, as the SDK sends them: the @jsonPayload part.
    let form = reqwest::multipart::Form::new()
        .text("@jsonPayload", json!({"title": "from form"}).to_string())
        .text("views", "7");
    let res = api
        .app
        .client
        .post(api.app.url("/api/collections/posts/records"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let r: Value = res.json().await.unwrap();
    assert_eq!(
        (r["title"].as_str(), r["views"].as_i64()),
        (Some("from form"), Some(7))
    );
    // The store is free again for ordinary writes.
    let (s, _) = api
        .guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "after"})),
        )
        .await;
    assert_eq!(s, 200);
    api.app.stop().await;
}

async fn view_collections_are_read_only_queries(api: Api) {
    api.posts(json!({"listRule": "", "createRule": ""})).await;
    for (t, v) in [("a", 1), ("b", 2), ("c", 3)] {
        api.guest(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": t, "views": v})),
        )
        .await;
    }
    let (s, v) = api
        .su("POST", "/api/collections", Some(json!({
            "name": "popular", "type": "view", "listRule": "", "viewRule": "",
            "viewQuery": "SELECT id, title, views, (views * 2) AS dbl FROM posts WHERE views >= 2"
        })))
        .await;
    assert_eq!(s, 200, "{v}");
    let types: Vec<(String, String)> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("id", "text"),
        ("title", "text"),
        ("views", "number"),
        ("dbl", "json"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(types, want);
    assert_eq!(v["createRule"], Value::Null);
    let (s, l) = api
        .guest(
            "GET",
            "/api/collections/popular/records?sort=views&filter=dbl%3E5",
            None,
        )
        .await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["totalItems"], 1);
    assert_eq!(l["items"][0]["title"], "c");
    assert_eq!(l["items"][0]["dbl"], 6);
    let (s, _) = api
        .su(
            "POST",
            "/api/collections/popular/records",
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(s, 400, "views are read-only");
    for bad in [
        "SELECT nope FROM nowhere",
        "SELECT title FROM posts",
        "DELETE FROM posts",
        "SELECT id FROM posts; DROP TABLE posts",
    ] {
        let (s, b) = api
            .su(
                "POST",
                "/api/collections",
                Some(json!({"name": "vbad", "type": "view", "viewQuery": bad})),
            )
            .await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert_eq!(
            b["data"]["viewQuery"]["code"], "validation_invalid_view_query",
            "{bad}"
        );
    }
    let (_, l) = api.su("GET", "/api/collections/posts/records", None).await;
    assert_eq!(l["totalItems"], 3, "no bad query touched the data");

    // Changing the query and the name: the view is replaced, its fields inferred anew, and a
    // field that keeps its name and type keeps its id.
    let title_id = v["fields"][1]["id"].clone();
    let (s, u) = api
        .su(
            "PATCH",
            "/api/collections/popular",
            Some(json!({
                "name": "hits",
                "viewQuery": "SELECT id, title, (views + 100) AS score FROM posts WHERE views >= 3"
            })),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["id"], v["id"]);
    assert_eq!(u["name"], "hits");
    let names: Vec<&str> = u["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "title", "score"]);
    assert_eq!(u["fields"][1]["id"], title_id);
    assert_eq!(u["listRule"], "", "rules are kept");
    let (s, l) = api
        .guest("GET", "/api/collections/hits/records", None)
        .await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["totalItems"], 1);
    assert_eq!(l["items"][0]["score"], 103);
    let (s, _) = api
        .guest("GET", "/api/collections/popular/records", None)
        .await;
    assert_eq!(s, 404, "the old name is gone");
    // A bad new query, or a rule naming a field the new query drops, changes nothing.
    let (s, b) = api
        .su(
            "PATCH",
            "/api/collections/hits",
            Some(json!({"viewQuery": "SELECT title FROM posts"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        b["data"]["viewQuery"]["code"],
        "validation_invalid_view_query"
    );
    let (s, b) = api
        .su(
            "PATCH",
            "/api/collections/hits",
            Some(json!({"viewQuery": "SELECT id FROM posts", "listRule": "score > 1"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, l) = api
        .guest("GET", "/api/collections/hits/records", None)
        .await;
    assert_eq!((s, &l["items"][0]["score"]), (200, &json!(103)), "{l}");
    let (s, _) = api.su("DELETE", "/api/collections/hits", None).await;
    assert_eq!(s, 204);
    api.app.stop().await;
}
