//! API keys through the HTTP API, on both engines: made by a superuser for a record and by a
//! record for itself (only where its collection allows it), shown once and stored as a hash,
//! acting as their record in rules, narrowed to collections and actions, expiring, revoked at
//! once, and gone with their record; a changed character, a revoked or expired key is a guest.

use serde_json::{Value, json};

use crate::records::{Api, on_both_engines};

on_both_engines!(
    keys_act_as_their_record_until_revoked,
    scoped_keys_stay_inside_their_scope,
    records_make_keys_only_where_allowed,
);

/// A `notes` collection readable by its owner only, and a `members` auth collection with one
/// member; returns the member's id.
async fn owner_only_notes(api: &Api, self_service: bool) -> String {
    let (s, b) = api
        .su(
            "POST",
            "/api/collections",
            Some(json!({
                "name": "members", "type": "auth",
                "listRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id",
                "apiKeys": {"enabled": self_service},
            })),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let members = b["id"].as_str().unwrap().to_owned();
    let (s, b) = api
        .su(
            "POST",
            "/api/collections",
            Some(json!({
                "name": "notes",
                "listRule": "@request.auth.id != '' && owner = @request.auth.id",
                "viewRule": "@request.auth.id != '' && owner = @request.auth.id",
                "createRule": "owner = @request.auth.id", "updateRule": "owner = @request.auth.id",
                "deleteRule": "owner = @request.auth.id",
                "fields": [
                    {"name": "title", "type": "text"},
                    {"name": "owner", "type": "relation", "collectionId": members, "maxSelect": 1},
                ],
            })),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, m) = api
        .su(
            "POST",
            "/api/collections/members/records",
            Some(json!({"email": "m@example.com", "password": "memberpass1", "passwordConfirm": "memberpass1"})),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    let id = m["id"].as_str().unwrap().to_owned();
    for title in ["mine", "also mine"] {
        let (s, _) = api
            .su(
                "POST",
                "/api/collections/notes/records",
                Some(json!({"title": title, "owner": id})),
            )
            .await;
        assert_eq!(s, 200);
    }
    let (s, _) = api
        .su(
            "POST",
            "/api/collections/notes/records",
            Some(json!({"title": "nobody's"})),
        )
        .await;
    assert_eq!(s, 200);
    id
}

fn total(b: &Value) -> i64 {
    b["totalItems"].as_i64().unwrap_or(-1)
}

async fn keys_act_as_their_record_until_revoked(api: Api) {
    let member = owner_only_notes(&api, false).await;
    let (s, b) = api
        .su(
            "POST",
            "/api/keys",
            Some(json!({"name": "sync job", "collection": "members", "record": member})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let key = b["key"].as_str().unwrap().to_owned();
    let key_id = b["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pier_") && key.len() == 45, "{key}");
    assert_eq!(b["recordId"], member);
    assert_eq!(b["prefix"], &key[..9]);
    assert_eq!(b["expires"], "");

    // The key is its record: rules see it as @request.auth.
    let bearer = format!("Bearer {key}");
    let (s, b) = api
        .call("GET", "/api/collections/notes/records", None, Some(&bearer))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(total(&b), 2, "the owner's two notes, not the third: {b}");
    let (s, _) = api
        .call(
            "POST",
            "/api/collections/notes/records",
            Some(json!({"title": "by key", "owner": member})),
            Some(&key),
        )
        .await;
    assert_eq!(s, 200, "a key works without `Bearer ` too, as tokens do");

    // Listed without the secret, with its last use; the database holds only a hash.
    let (s, b) = api.su("GET", "/api/keys", None).await;
    assert_eq!(s, 200);
    let listed = &b["items"][0];
    assert_eq!(listed["id"], key_id.as_str());
    assert!(listed.get("key").is_none(), "{listed}");
    // lastUsed is written off the request path: give it a moment.
    let mut used = listed["lastUsed"].as_str().unwrap_or_default().to_owned();
    for _ in 0..20 {
        if !used.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, b) = api.su("GET", "/api/keys", None).await;
        used = b["items"][0]["lastUsed"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    assert!(!used.is_empty(), "lastUsed is set after a use");
    let rows = api
        .app
        .store
        .query("SELECT hash FROM \"_apiKeys\"", vec![])
        .await
        .unwrap();
    let hash = rows.scalar().and_then(|v| v.as_str()).unwrap().to_owned();
    assert_eq!(hash.len(), 64);
    assert!(
        !hash.contains(&key[5..]),
        "the secret itself is never stored"
    );

    // A changed last character is nobody; tokens cannot be minted from a key.
    let mut forged = key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    let (s, b) = api
        .call("GET", "/api/collections/notes/records", None, Some(&forged))
        .await;
    assert_eq!((s, total(&b)), (200, 0), "a forged key is a guest: {b}");
    let (s, _) = api
        .call(
            "POST",
            "/api/collections/members/auth-refresh",
            None,
            Some(&key),
        )
        .await;
    assert_eq!(s, 403, "auth-refresh must not turn a key into a token");

    // Revoked: at once.
    let (s, _) = api.su("DELETE", &format!("/api/keys/{key_id}"), None).await;
    assert_eq!(s, 204);
    let (s, b) = api
        .call("GET", "/api/collections/notes/records", None, Some(&key))
        .await;
    assert_eq!((s, total(&b)), (200, 0), "a revoked key is a guest: {b}");
    let (s, _) = api.su("DELETE", &format!("/api/keys/{key_id}"), None).await;
    assert_eq!(s, 404);

    // An expired key is nobody; a key goes with its record.
    let (s, b) = api
        .su(
            "POST",
            "/api/keys",
            Some(
                json!({"name": "short", "collection": "members", "record": member, "duration": 1}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let short = b["key"].as_str().unwrap().to_owned();
    let (s, b) = api
        .su(
            "POST",
            "/api/keys",
            Some(json!({"name": "long", "collection": "members", "record": member, "expires": "2999-01-01 00:00:00.000Z"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["expires"], "2999-01-01 00:00:00.000Z");
    let long = b["key"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (_, b) = api
        .call("GET", "/api/collections/notes/records", None, Some(&short))
        .await;
    assert_eq!(total(&b), 0, "an expired key is a guest");
    let (_, b) = api
        .call("GET", "/api/collections/notes/records", None, Some(&long))
        .await;
    assert_eq!(total(&b), 3);
    let (s, _) = api
        .su(
            "DELETE",
            &format!("/api/collections/members/records/{member}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, b) = api.su("GET", "/api/keys", None).await;
    assert_eq!(b["items"], json!([]), "keys go with their record");

    // Bad input names the field.
    for (body, field) in [
        (json!({"name": "  "}), "name"),
        (
            json!({"name": "x", "collection": "notes", "record": "abc"}),
            "collection",
        ),
        (
            json!({"name": "x", "collection": "members", "record": "nosuchrecord123"}),
            "record",
        ),
        (json!({"name": "x", "expires": "2001-01-01"}), "expires"),
        (json!({"name": "x", "expires": "soon"}), "expires"),
        (json!({"name": "x", "duration": -5}), "duration"),
        (
            json!({"name": "x", "scopes": {"actions": ["drop"]}}),
            "scopes",
        ),
        (
            json!({"name": "x", "scopes": {"collections": ["nope"]}}),
            "scopes",
        ),
    ] {
        let (s, b) = api.su("POST", "/api/keys", Some(body.clone())).await;
        assert_eq!(s, 400, "{body} → {b}");
        assert!(b["data"][field]["code"].is_string(), "{body} → {b}");
    }
    let (s, _) = api
        .guest("POST", "/api/keys", Some(json!({"name": "x"})))
        .await;
    assert_eq!(s, 401);
    api.app.stop().await;
}

async fn scoped_keys_stay_inside_their_scope(api: Api) {
    let member = owner_only_notes(&api, false).await;
    let (s, b) = api
        .su(
            "POST",
            "/api/keys",
            Some(json!({
                "name": "reader", "collection": "members", "record": member,
                "scopes": {"collections": ["notes"], "actions": ["list", "view"]},
            })),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let key = b["key"].as_str().unwrap().to_owned();
    assert_eq!(b["scopes"]["actions"], json!(["list", "view"]));
    let (s, b) = api
        .call("GET", "/api/collections/notes/records", None, Some(&key))
        .await;
    assert_eq!((s, total(&b)), (200, 2), "{b}");
    let note = b["items"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = api
        .call(
            "GET",
            &format!("/api/collections/notes/records/{note}"),
            None,
            Some(&key),
        )
        .await;
    assert_eq!(s, 200);
    for (method, path, body) in [
        (
            "PATCH",
            format!("/api/collections/notes/records/{note}"),
            Some(json!({"title": "changed"})),
        ),
        (
            "DELETE",
            format!("/api/collections/notes/records/{note}"),
            None,
        ),
        (
            "POST",
            "/api/collections/notes/records".to_owned(),
            Some(json!({"title": "new", "owner": member})),
        ),
        (
            "GET",
            format!("/api/collections/members/records/{member}"),
            None,
        ),
        ("GET", "/api/keys".to_owned(), None),
        (
            "POST",
            "/api/batch".to_owned(),
            Some(json!({"requests": []})),
        ),
        (
            "POST",
            "/api/realtime".to_owned(),
            Some(json!({"clientId": "x", "subscriptions": []})),
        ),
    ] {
        let (s, b) = api.call(method, &path, body, Some(&key)).await;
        assert_eq!(
            s, 403,
            "{method} {path} must be outside the key's scope: {b}"
        );
        assert!(b["message"].as_str().unwrap().contains("API key"), "{b}");
    }
    // Nothing changed behind the refusals.
    let (_, b) = api
        .su(
            "GET",
            &format!("/api/collections/notes/records/{note}"),
            None,
        )
        .await;
    assert_ne!(b["title"], "changed");
    api.app.stop().await;
}

async fn records_make_keys_only_where_allowed(api: Api) {
    let member = owner_only_notes(&api, false).await;
    let (s, b) = api
        .guest(
            "POST",
            "/api/collections/members/auth-with-password",
            Some(json!({"identity": "m@example.com", "password": "memberpass1"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let token = b["token"].as_str().unwrap().to_owned();
    let (s, _) = api
        .call(
            "POST",
            "/api/keys",
            Some(json!({"name": "mine"})),
            Some(&token),
        )
        .await;
    assert_eq!(s, 403, "the collection does not let records make keys");
    let (s, b) = api
        .su(
            "PATCH",
            "/api/collections/members",
            Some(json!({"apiKeys": {"enabled": true}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["apiKeys"]["enabled"], true);
    let (s, b) = api
        .call(
            "POST",
            "/api/keys",
            Some(json!({"name": "mine"})),
            Some(&token),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["recordId"], member);
    let mine = b["id"].as_str().unwrap().to_owned();
    let key = b["key"].as_str().unwrap().to_owned();
    // Not for anyone else, and the superuser's keys stay out of sight.
    let (s, _) = api
        .call(
            "POST",
            "/api/keys",
            Some(json!({"name": "theirs", "collection": "_superusers", "record": "x"})),
            Some(&token),
        )
        .await;
    assert_eq!(s, 403);
    let (s, su_key) = api
        .su("POST", "/api/keys", Some(json!({"name": "admin"})))
        .await;
    assert_eq!(s, 200, "{su_key}");
    let (s, b) = api.call("GET", "/api/keys", None, Some(&token)).await;
    assert_eq!(s, 200);
    assert_eq!(b["items"].as_array().unwrap().len(), 1, "{b}");
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/api/keys/{}", su_key["id"].as_str().unwrap()),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(s, 404, "a record cannot revoke another's key");
    // A superuser's own key is a superuser.
    let admin = su_key["key"].as_str().unwrap();
    let (s, b) = api.call("GET", "/api/collections", None, Some(admin)).await;
    assert_eq!(s, 200, "{b}");
    // A new password ends sessions, not keys; the record revokes its own.
    let (s, _) = api
        .su(
            "PATCH",
            &format!("/api/collections/members/records/{member}"),
            Some(json!({"password": "another-pass1", "passwordConfirm": "another-pass1"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = api.call("GET", "/api/keys", None, Some(&token)).await;
    assert_eq!(s, 401, "the old token died with the password");
    let (s, b) = api.call("GET", "/api/keys", None, Some(&key)).await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = api
        .call("DELETE", &format!("/api/keys/{mine}"), None, Some(&key))
        .await;
    assert_eq!(s, 204);
    let (s, _) = api.call("GET", "/api/keys", None, Some(&key)).await;
    assert_eq!(s, 401, "the key revoked itself");
    api.app.stop().await;
}
