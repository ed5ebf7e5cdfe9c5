//! Auth collections through the HTTP API, on both engines: sign-up, sign-in and refresh,
//! tokens, failed-login limits, auth rules, secrets and imported password hashes.

use serde_json::{Value, json};

use crate::records::{Api, on_both_engines};

on_both_engines!(
    tokens_die_with_a_password_change,
    auth_collections_sign_up_sign_in_and_refresh,
    failed_logins_are_rate_limited,
    auth_rules_secrets_and_imported_hashes,
);

async fn tokens_die_with_a_password_change(api: Api) {
    let old = api.token.clone();
    let records = pier_records::Engine::new(api.app.store.clone())
        .await
        .unwrap();
    records
        .upsert_superuser("admin@example.com", "NewPass456!")
        .await
        .unwrap();
    let (s, _) = api.call("GET", "/api/collections", None, Some(&old)).await;
    assert_eq!(
        s, 401,
        "the old token must stop working after a password change"
    );
    api.app.stop().await;
}

async fn auth_collections_sign_up_sign_in_and_refresh(api: Api) {
    let (s, c) = api
        .su(
            "POST",
            "/api/collections",
            Some(json!({
                "name": "members", "type": "auth",
                "createRule": "", "viewRule": "", "listRule": "", "updateRule": "",
                "fields": [{"name": "nickname", "type": "text"}]
            })),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    // The default `users` collection exists too, with PocketBase's owner-only rules.
    let (s, users) = api.su("GET", "/api/collections/users", None).await;
    assert_eq!(s, 200);
    assert_eq!(users["type"], "auth");
    assert_eq!(users["viewRule"], "id = @request.auth.id");
    assert_eq!(users["createRule"], "");
    let names: Vec<&str> = c["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for n in [
        "id",
        "password",
        "tokenKey",
        "email",
        "emailVisibility",
        "verified",
        "nickname",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let (s, b) = api
        .guest("POST", "/api/collections/members/records", Some(json!({"email": "u1@example.com", "password": "longenough1", "passwordConfirm": "different1"})))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["data"]["passwordConfirm"]["code"],
        "validation_values_mismatch"
    );
    assert!(
        b["data"].get("email").is_none(),
        "the mismatch is reported alone"
    );
    let (s, b) = api
        .guest(
            "POST",
            "/api/collections/members/records",
            Some(
                json!({"email": "u1@example.com", "password": "short", "passwordConfirm": "short"}),
            ),
        )
        .await;
    assert_eq!(
        (s, b["data"]["password"]["code"].as_str()),
        (400, Some("validation_min_text_constraint"))
    );
    let (s, u1) = api
        .guest("POST", "/api/collections/members/records", Some(json!({"email": "u1@example.com", "password": "longenough1", "passwordConfirm": "longenough1", "nickname": "one"})))
        .await;
    assert_eq!(s, 200, "{u1}");
    assert!(u1.get("password").is_none() && u1.get("tokenKey").is_none());
    assert!(u1.get("email").is_none(), "emailVisibility is false");
    assert_eq!(u1["verified"], false);
    let (s, b) = api
        .guest("POST", "/api/collections/members/records", Some(json!({"email": "U1@example.com", "password": "longenough1", "passwordConfirm": "longenough1"})))
        .await;
    assert_eq!(s, 400, "emails are unique regardless of case: {b}");
    let (s, b) = api
        .guest(
            "POST",
            "/api/collections/members/auth-with-password",
            Some(json!({"identity": "u1@example.com", "password": "longenough1"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["record"]["email"], "u1@example.com",
        "the owner sees their email"
    );
    let token = b["token"].as_str().unwrap().to_owned();
    let (s, r) = api
        .call(
            "POST",
            "/api/collections/members/auth-refresh",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["record"]["id"], u1["id"]);
    let (s, _) = api
        .guest("POST", "/api/collections/members/auth-refresh", None)
        .await;
    assert_eq!(s, 401);
    let su_token = api.token.clone();
    let (s, _) = api
        .call(
            "POST",
            "/api/collections/members/auth-refresh",
            None,
            Some(&su_token),
        )
        .await;
    assert_eq!(s, 403, "a token of another collection is refused");
    let (s, _) = api
        .call("GET", "/api/collections", None, Some(&token))
        .await;
    assert_eq!(s, 403, "a user token is not a superuser token");
    let (s, m) = api
        .guest("GET", "/api/collections/members/auth-methods", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(m["password"]["enabled"], true);
    assert_eq!(m["password"]["identityFields"], json!(["email"]));
    // Changing the password needs the old one, and retires old tokens.
    let path = format!(
        "/api/collections/members/records/{}",
        u1["id"].as_str().unwrap()
    );
    let (s, b) = api
        .call(
            "PATCH",
            &path,
            Some(json!({"password": "newpassword2", "passwordConfirm": "newpassword2"})),
            Some(&token),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["data"]["oldPassword"]["code"], "validation_required");
    let (s, b) = api
        .call(
            "PATCH",
            &path,
            Some(json!({"oldPassword": "wrong-one", "password": "newpassword2", "passwordConfirm": "newpassword2"})),
            Some(&token),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["data"]["oldPassword"]["code"],
        "validation_invalid_old_password"
    );
    let (s, _) = api
        .call("PATCH", &path, Some(json!({"oldPassword": "longenough1", "password": "newpassword2", "passwordConfirm": "newpassword2"})), Some(&token))
        .await;
    assert_eq!(s, 200);
    let (s, _) = api
        .call(
            "POST",
            "/api/collections/members/auth-refresh",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(s, 401, "the old token died with the password");
    let (s, _) = api
        .guest(
            "POST",
            "/api/collections/members/auth-with-password",
            Some(json!({"identity": "u1@example.com", "password": "newpassword2"})),
        )
        .await;
    assert_eq!(s, 200);
    // Guests cannot mark themselves verified.
    let (s, b) = api
        .guest("POST", "/api/collections/members/records", Some(json!({"email": "u2@example.com", "password": "longenough1", "passwordConfirm": "longenough1", "verified": true})))
        .await;
    assert_eq!(
        (s, b["data"]["verified"]["code"].as_str()),
        (400, Some("validation_values_mismatch"))
    );
    api.app.stop().await;
}

async fn failed_logins_are_rate_limited(api: Api) {
    let path = "/api/collections/_superusers/auth-with-password";
    for _ in 0..5 {
        let (s, _) = api
            .guest(
                "POST",
                path,
                Some(json!({"identity": "admin@example.com", "password": "wrong-guess"})),
            )
            .await;
        assert_eq!(s, 400);
    }
    let res = api
        .app
        .client
        .post(api.app.url(path))
        .json(&json!({"identity": "admin@example.com", "password": "AdminPass123!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        429,
        "even the right password waits out the window"
    );
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], 429);
    api.app.stop().await;
}

async fn auth_rules_secrets_and_imported_hashes(api: Api) {
    // authRule: only verified members may sign in.
    let (s, c) = api
        .su("POST", "/api/collections", Some(json!({"name": "members", "type": "auth", "createRule": "", "authRule": "verified = true",
            "manageRule": "id = @request.auth.id", "updateRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id"})))
        .await;
    assert_eq!(s, 200, "{c}");
    let (_, m) = api
        .guest("POST", "/api/collections/members/records", Some(json!({"email": "m@example.com", "password": "password123", "passwordConfirm": "password123"})))
        .await;
    let login = json!({"identity": "m@example.com", "password": "password123"});
    let (s, _) = api
        .guest(
            "POST",
            "/api/collections/members/auth-with-password",
            Some(login.clone()),
        )
        .await;
    assert_eq!(s, 400, "an unverified member is refused by the auth rule");
    let path = format!(
        "/api/collections/members/records/{}",
        m["id"].as_str().unwrap()
    );
    let (s, _) = api
        .su("PATCH", &path, Some(json!({"verified": true})))
        .await;
    assert_eq!(s, 200);
    let (s, a) = api
        .guest(
            "POST",
            "/api/collections/members/auth-with-password",
            Some(login.clone()),
        )
        .await;
    assert_eq!(s, 200, "{a}");
    let token = a["token"].as_str().unwrap().to_owned();
    // manageRule: this member manages itself, so no old password is needed.
    let (s, b) = api
        .call(
            "PATCH",
            &path,
            Some(json!({"password": "password456", "passwordConfirm": "password456"})),
            Some(&token),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, a) = api
        .guest(
            "POST",
            "/api/collections/members/auth-with-password",
            Some(json!({"identity": "m@example.com", "password": "password456"})),
        )
        .await;
    assert_eq!(s, 200);
    let token = a["token"].as_str().unwrap().to_owned();
    // A new token secret retires every token signed with the old one.
    let (s, _) = api
        .call(
            "POST",
            "/api/collections/members/auth-refresh",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = api
        .su(
            "PATCH",
            "/api/collections/members",
            Some(json!({"authToken": {"secret": "x".repeat(40)}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b.to_string().find(&"x".repeat(40)).is_none(),
        "the secret is never shown"
    );
    let (s, _) = api
        .call(
            "POST",
            "/api/collections/members/auth-refresh",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(s, 401);
    let (s, _) = api
        .su(
            "PATCH",
            "/api/collections/members",
            Some(json!({"authToken": {"secret": "short"}})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, b) = api
        .su(
            "PATCH",
            "/api/collections/members",
            Some(json!({"authRule": "nosuchfield = true"})),
        )
        .await;
    assert_eq!(s, 400, "a broken auth rule is refused when saved: {b}");
    assert_eq!(b["data"]["authRule"]["code"], "validation_invalid_rule");
    // A bcrypt hash brought over from PocketBase signs in, and is replaced by Argon2id.
    let hash = bcrypt::hash("pbpassword1", 4).unwrap();
    api.app
        .store
        .execute(
            "UPDATE members SET password = $1 WHERE id = $2",
            vec![hash.as_str().into(), m["id"].as_str().unwrap().into()],
        )
        .await
        .unwrap();
    let (s, b) = api
        .guest(
            "POST",
            "/api/collections/members/auth-with-password",
            Some(json!({"identity": "m@example.com", "password": "pbpassword1"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let stored = api
        .app
        .store
        .query(
            "SELECT password FROM members WHERE id = $1",
            vec![m["id"].as_str().unwrap().into()],
        )
        .await
        .unwrap();
    assert!(
        stored
            .scalar()
            .and_then(|v| v.as_str())
            .unwrap()
            .starts_with("$argon2id$")
    );
    api.app.stop().await;
}
