//! What a collection definition may carry, on both engines: an unknown key or a feature pier
//! does not have is refused with a 400 naming it, never dropped; what pier reports is accepted
//! back unchanged; `passwordAuth` is honoured at sign-in.

use serde_json::{Value, json};

use crate::records::{Api, on_both_engines};

async fn sign_in(api: &Api, identity: &str) -> (u16, Value) {
    api.guest(
        "POST",
        "/api/collections/members/auth-with-password",
        Some(json!({"identity": identity, "password": "Secret12345"})),
    )
    .await
}

async fn unknown_keys_are_refused_by_name(api: Api) {
    for (def, key) in [
        (json!({"name": "a", "bogus": 1}), "bogus"),
        (json!({"name": "a", "authRule": ""}), "authRule"),
        (
            json!({"name": "a", "type": "auth", "oauth2": {"enabled": true}}),
            "oauth2",
        ),
        (
            json!({"name": "a", "type": "auth", "mfa": {"enabled": true}}),
            "mfa",
        ),
        (
            json!({"name": "a", "type": "auth", "otp": {"length": 2}}),
            "otp",
        ),
        (
            json!({"name": "a", "type": "auth", "passwordAuth": {"enabled": "no"}}),
            "passwordAuth",
        ),
        (
            json!({"name": "a", "type": "auth", "passwordAuth": {"identityFields": ["nope"]}}),
            "passwordAuth",
        ),
    ] {
        let (status, body) = api.su("POST", "/api/collections", Some(def.clone())).await;
        assert_eq!(status, 400, "{def}: {body}");
        // MFA's error names its `enabled` (`{"mfa": {"enabled": {code, message}}}`).
        let code = body["data"][key]
            .get("code")
            .or_else(|| body["data"][key].get("enabled").and_then(|e| e.get("code")));
        assert!(code.is_some_and(Value::is_string), "{def}: {body}");
        let (status, _) = api.su("GET", "/api/collections/a", None).await;
        assert_eq!(status, 404, "{def} created nothing");
    }
    // Sections that ask for nothing are accepted, as PocketBase's exports carry them.
    let (status, body) = api
        .su(
            "POST",
            "/api/collections",
            Some(
                json!({"name": "a", "type": "auth", "oauth2": {"enabled": false, "providers": []},
                        "mfa": {"enabled": false}, "otp": {"enabled": false, "duration": 180}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn a_definition_read_back_is_accepted_unchanged(api: Api) {
    for name in ["users", "_superusers"] {
        let (_, def) = api
            .su("GET", &format!("/api/collections/{name}"), None)
            .await;
        let (status, body) = api
            .su(
                "PATCH",
                &format!("/api/collections/{name}"),
                Some(def.clone()),
            )
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["fields"], def["fields"], "{name}");
        assert_eq!(body["passwordAuth"], def["passwordAuth"], "{name}");
    }
}

async fn password_auth_options_are_honoured(api: Api) {
    let (status, body) = api
        .su(
            "POST",
            "/api/collections",
            Some(json!({
                "name": "members", "type": "auth", "listRule": "",
                "fields": [{"name": "username", "type": "text"}],
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .su(
            "POST",
            "/api/collections/members/records",
            Some(json!({"email": "m@example.com", "username": "member1",
                        "password": "Secret12345", "passwordConfirm": "Secret12345"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sign_in(&api, "M@example.com").await.0, 200);
    assert_eq!(
        sign_in(&api, "member1").await.0,
        400,
        "not an identity field yet"
    );

    let (status, body) = api
        .su(
            "PATCH",
            "/api/collections/members",
            Some(json!({"passwordAuth": {"identityFields": ["username", "email"]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["passwordAuth"],
        json!({"enabled": true, "identityFields": ["username", "email"]})
    );
    let (status, body) = sign_in(&api, "member1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["username"], "member1");
    assert_eq!(sign_in(&api, "m@example.com").await.0, 200);
    let (_, methods) = api
        .guest("GET", "/api/collections/members/auth-methods", None)
        .await;
    assert_eq!(
        methods["password"]["identityFields"],
        json!(["username", "email"])
    );

    let (status, body) = api
        .su(
            "PATCH",
            "/api/collections/members",
            Some(json!({"passwordAuth": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sign_in(&api, "m@example.com").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "The collection is not configured to allow password authentication."
    );
    let (_, methods) = api
        .guest("GET", "/api/collections/members/auth-methods", None)
        .await;
    assert_eq!(methods["password"]["enabled"], false);
}

on_both_engines!(
    unknown_keys_are_refused_by_name,
    a_definition_read_back_is_accepted_unchanged,
    password_auth_options_are_honoured,
);
