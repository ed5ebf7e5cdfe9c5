//! Reading records through the HTTP API, on both engines: filters, expression rules, expand
//! and field projection.

use serde_json::{Value, json};

use crate::records::{Api, on_both_engines};

on_both_engines!(
    filters_select_rows_and_never_leak_hidden_fields,
    expression_rules_filter_lists_and_hide_records,
    expand_and_fields_shape_the_response,
);

async fn filters_select_rows_and_never_leak_hidden_fields(api: Api) {
    api.posts(json!({"listRule": "", "createRule": ""})).await;
    for (t, v, tags, secret) in [
        ("alpha", 1, json!(["a"]), "s1"),
        ("Beta", 5, json!(["a", "b"]), "s2"),
        ("gamma", 9, json!([]), "s3"),
    ] {
        let (s, _) = api
            .su(
                "POST",
                "/api/collections/posts/records",
                Some(json!({"title": t, "views": v, "tags": tags, "secret": secret})),
            )
            .await;
        assert_eq!(s, 200);
    }
    let titles = |l: &Value| -> Vec<String> {
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let q = |f: &str| {
        format!(
            "/api/collections/posts/records?sort=title&filter={}",
            encode(f)
        )
    };
    for (filter, want) in [
        ("views > 1", vec!["Beta", "gamma"]),
        ("views >= 5 && views < 9", vec!["Beta"]),
        ("title = 'alpha' || views = 9", vec!["alpha", "gamma"]),
        ("title ~ 'AM'", vec!["gamma"]),
        ("title !~ 'a'", vec![]),
        ("tags:each ?= 'b'", vec!["Beta"]),
        ("tags:each = 'a'", vec!["alpha"]),
        ("tags ~ 'b'", vec!["Beta"]),
        ("tags:length = 0", vec!["gamma"]),
        ("title = \"x' OR 1=1 --\"", vec![]),
        ("created <= @now", vec!["Beta", "alpha", "gamma"]),
    ] {
        let (s, l) = api.guest("GET", &q(filter), None).await;
        assert_eq!(s, 200, "{filter} -> {l}");
        assert_eq!(titles(&l), want, "{filter}");
        assert_eq!(
            l["totalItems"].as_i64(),
            Some(want.len() as i64),
            "{filter}: totals follow the filter"
        );
    }
    // A hidden field cannot be filtered on by others (no side channel), but can by superusers.
    let (s, _) = api.guest("GET", &q("secret = 's1'"), None).await;
    assert_eq!(s, 400);
    let (s, l) = api.su("GET", &q("secret = 's1'"), None).await;
    assert_eq!(s, 200);
    assert_eq!(titles(&l), ["alpha"]);
    // Clients may not read @request.* through a filter.
    let (s, b) = api.guest("GET", &q("@request.auth.id = ''"), None).await;
    assert_eq!(s, 403, "{b}");
    let (s, l) = api
        .guest(
            "GET",
            "/api/collections/posts/records?sort=-views,title",
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(titles(&l), ["gamma", "Beta", "alpha"]);
    api.app.stop().await;
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn expression_rules_filter_lists_and_hide_records(api: Api) {
    // Two users in the default `users` collection, whose rules are `id = @request.auth.id`.
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for n in ["one", "two"] {
        let email = format!("{n}@example.com");
        let (s, u) = api.guest("POST", "/api/collections/users/records", Some(json!({"email": email, "password": "password123", "passwordConfirm": "password123", "name": n}))).await;
        assert_eq!(s, 200, "{u}");
        ids.push(u["id"].as_str().unwrap().to_owned());
        let (_, a) = api
            .guest(
                "POST",
                "/api/collections/users/auth-with-password",
                Some(json!({"identity": email, "password": "password123"})),
            )
            .await;
        tokens.push(a["token"].as_str().unwrap().to_owned());
    }
    let (s, l) = api
        .call(
            "GET",
            "/api/collections/users/records",
            None,
            Some(&tokens[0]),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(l["totalItems"], 1, "a user lists only themself: {l}");
    assert_eq!(l["items"][0]["id"], ids[0].as_str());
    let (s, l) = api
        .guest("GET", "/api/collections/users/records", None)
        .await;
    assert_eq!(
        (s, l["totalItems"].as_i64()),
        (200, Some(0)),
        "a guest's list is empty, not refused"
    );
    let other = format!("/api/collections/users/records/{}", ids[1]);
    let (s, _) = api.call("GET", &other, None, Some(&tokens[0])).await;
    assert_eq!(s, 404, "a record hidden by the view rule is a 404");
    let (s, _) = api
        .call(
            "PATCH",
            &other,
            Some(json!({"name": "hacked"})),
            Some(&tokens[0]),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api.call("DELETE", &other, None, Some(&tokens[0])).await;
    assert_eq!(s, 404);
    let (s, me) = api
        .call(
            "PATCH",
            &format!("/api/collections/users/records/{}", ids[0]),
            Some(json!({"name": "uno"})),
            Some(&tokens[0]),
        )
        .await;
    assert_eq!((s, me["name"].as_str()), (200, Some("uno")));
    let (_, su) = api.su("GET", "/api/collections/users/records", None).await;
    assert_eq!(su["totalItems"], 2, "superusers see everyone");

    // An owner field checked on create: only for yourself.
    let (s, c) = api
        .su(
            "POST",
            "/api/collections",
            Some(json!({
                "name": "notes",
                "listRule": "owner = @request.auth.id",
                "viewRule": "owner = @request.auth.id",
                "createRule": "@request.auth.id != '' && owner = @request.auth.id",
                "fields": [
                    {"name": "owner", "type": "relation", "collectionId": "users", "maxSelect": 1},
                    {"name": "text", "type": "text"}
                ]
            })),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    let (s, b) = api
        .call(
            "POST",
            "/api/collections/notes/records",
            Some(json!({"owner": ids[1], "text": "spoof"})),
            Some(&tokens[0]),
        )
        .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (400, Some("Failed to create record.")),
        "{b}"
    );
    let (s, n) = api
        .call(
            "POST",
            "/api/collections/notes/records",
            Some(json!({"owner": ids[0], "text": "mine"})),
            Some(&tokens[0]),
        )
        .await;
    assert_eq!(s, 200, "{n}");
    let (_, l) = api
        .call(
            "GET",
            "/api/collections/notes/records",
            None,
            Some(&tokens[1]),
        )
        .await;
    assert_eq!(l["totalItems"], 0);
    // Relation paths filter for superusers. A path into a collection whose view rule is an
    // expression (`users` here) is refused for others: pier does not yet apply the target's
    // rule inside the join, and refusing is the safe side.
    let path = format!(
        "/api/collections/notes/records?filter={}",
        encode("owner.name = 'uno'")
    );
    let (s, _) = api.call("GET", &path, None, Some(&tokens[0])).await;
    assert_eq!(s, 400);
    let (s, l) = api.su("GET", &path, None).await;
    assert_eq!((s, l["totalItems"].as_i64()), (200, Some(1)), "{l}");
    let (_, su) = api.su("GET", "/api/collections/notes/records", None).await;
    assert_eq!(
        su["totalItems"], 1,
        "the refused create left nothing behind"
    );
    // A rule naming a missing field is refused when the collection is saved.
    let (s, b) = api
        .su(
            "PATCH",
            "/api/collections/notes",
            Some(json!({"listRule": "nosuchfield = 1"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["data"]["listRule"]["code"], "validation_invalid_rule");
    api.app.stop().await;
}

async fn expand_and_fields_shape_the_response(owned: Api) {
    let api = &owned;
    let (_, cats) = api
        .su(
            "POST",
            "/api/collections",
            Some(
                json!({"name": "cats", "listRule": "", "viewRule": "", "createRule": "",
            "fields": [{"name": "name", "type": "text"}]}),
            ),
        )
        .await;
    let (_, secret) = api
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "vault", "createRule": "",
            "fields": [{"name": "name", "type": "text"}]})),
        )
        .await;
    let (s, b) = api
        .su("POST", "/api/collections", Some(json!({"name": "items", "listRule": "", "viewRule": "", "createRule": "",
            "fields": [
                {"name": "name", "type": "text"},
                {"name": "note", "type": "editor"},
                {"name": "cat", "type": "relation", "collectionId": cats["id"], "maxSelect": 1},
                {"name": "cats", "type": "relation", "collectionId": cats["id"], "maxSelect": 5},
                {"name": "locked", "type": "relation", "collectionId": secret["id"], "maxSelect": 1}
            ]})))
        .await;
    assert_eq!(s, 200, "{b}");
    let mk = |c: &'static str, body: Value| async move {
        api.su("POST", &format!("/api/collections/{c}/records"), Some(body))
            .await
            .1
    };
    let fruit = mk("cats", json!({"name": "Fruit"})).await;
    let veg = mk("cats", json!({"name": "Veg"})).await;
    let gold = mk("vault", json!({"name": "gold"})).await;
    let item = mk(
        "items",
        json!({"name": "apple", "note": "<p>Lorem <i>ipsum</i> dolor sit amet</p>",
        "cat": fruit["id"], "cats": [veg["id"], fruit["id"]], "locked": gold["id"]}),
    )
    .await;
    let bare = mk("items", json!({"name": "bare"})).await;
    let path = format!(
        "/api/collections/items/records/{}",
        item["id"].as_str().unwrap()
    );
    let (s, r) = api
        .guest(
            "GET",
            &format!("{path}?expand=cat,cats,locked,nosuch,items_via_cat"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["expand"]["cat"]["name"], "Fruit");
    let names: Vec<&str> = r["expand"]["cats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Veg", "Fruit"],
        "multi relations keep the stored order"
    );
    assert!(
        r["expand"].get("locked").is_none(),
        "a guest may not view the vault"
    );
    assert!(r["expand"].get("nosuch").is_none());
    // Back-relations and nesting, from the category's side.
    let (_, c) = api
        .guest(
            "GET",
            &format!(
                "/api/collections/cats/records/{}?expand=items_via_cat.cats",
                fruit["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let back = c["expand"]["items_via_cat"].as_array().unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0]["name"], "apple");
    assert_eq!(back[0]["expand"]["cats"].as_array().unwrap().len(), 2);
    let (_, su) = api.su("GET", &format!("{path}?expand=locked"), None).await;
    assert_eq!(su["expand"]["locked"]["name"], "gold");
    // Lists expand too; an empty relation gets no expand entry.
    let (_, l) = api
        .guest(
            "GET",
            "/api/collections/items/records?sort=name&expand=cat",
            None,
        )
        .await;
    assert_eq!(l["items"][0]["expand"]["cat"]["name"], "Fruit");
    assert!(l["items"][1].get("expand").is_none(), "{}", l["items"][1]);
    assert_eq!(l["items"][1]["id"], bare["id"]);
    // fields projects, into expand as well, with :excerpt.
    let (_, p) = api
        .guest(
            "GET",
            &format!("{path}?expand=cat&fields=id,note:excerpt(10,true),expand.cat.name"),
            None,
        )
        .await;
    assert_eq!(
        p,
        json!({"id": item["id"], "note": "Lorem ipsu...", "expand": {"cat": {"name": "Fruit"}}})
    );
    let (_, p) = api
        .guest("GET", &format!("{path}?fields=name,note:excerpt(5)"), None)
        .await;
    assert_eq!(p, json!({"name": "apple", "note": "Lorem"}));
    owned.app.stop().await;
}
