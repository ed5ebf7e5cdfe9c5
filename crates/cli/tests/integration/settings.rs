//! `GET/PATCH /api/settings` through HTTP: the round trip of what GET reports, and the refusal
//! of what pier does not do (issue 11, item 4).

use serde_json::{Value, json};

use crate::records::{Api, on_both_engines};

on_both_engines!(
    settings_sent_back_unchanged_are_accepted,
    settings_pier_does_not_implement_are_refused_naming_them,
);

/// PocketBase's dashboard and SDK GET the settings and PATCH them back whole.
async fn settings_sent_back_unchanged_are_accepted(api: Api) {
    let (s, reported) = api.su("GET", "/api/settings", None).await;
    assert_eq!(s, 200, "{reported}");
    for section in [
        "meta",
        "batch",
        "smtp",
        "s3",
        "backups",
        "rateLimits",
        "trustedProxy",
        "logs",
        "superuserIPs",
    ] {
        assert!(reported.get(section).is_some(), "{section} in {reported}");
    }
    assert_eq!(reported["s3"]["enabled"], false);
    let (s, back) = api
        .su("PATCH", "/api/settings", Some(reported.clone()))
        .await;
    assert_eq!(s, 200, "{back}");
    assert_eq!(back, reported);

    // What pier does act on is stored, alongside unchanged sections and blank secrets.
    let mut edited = reported.clone();
    edited["meta"]["appName"] = json!("Shop");
    edited["batch"]["enabled"] = json!(true);
    edited["s3"]["secret"] = json!("");
    edited["smtp"]["password"] = json!("");
    let (s, saved) = api.su("PATCH", "/api/settings", Some(edited)).await;
    assert_eq!(s, 200, "{saved}");
    let (_, got) = api.su("GET", "/api/settings", None).await;
    assert_eq!(got["meta"]["appName"], "Shop");
    assert_eq!(got["batch"]["enabled"], true);
    assert!(got["s3"].get("secret").is_none(), "{got}");
    assert_eq!(got, saved);

    // The SMTP server is stored; its password is write-only: kept, never reported.
    let mut smtp = got.clone();
    smtp["smtp"] = json!({"enabled": true, "host": "mail.example.com", "port": 2525,
        "username": "shop", "password": "smtp-secret-value", "authMethod": "LOGIN", "tls": true,
        "localName": "shop.example.com"});
    let (s, saved) = api.su("PATCH", "/api/settings", Some(smtp)).await;
    assert_eq!(s, 200, "{saved}");
    let (_, got) = api.su("GET", "/api/settings", None).await;
    assert_eq!(
        got["smtp"],
        json!({"enabled": true, "host": "mail.example.com", "port": 2525, "username": "shop",
            "authMethod": "LOGIN", "tls": true, "localName": "shop.example.com"})
    );
    assert!(!got.to_string().contains("smtp-secret-value"), "{got}");
    // Sent back without the password, it stays as saved.
    let (s, _) = api.su("PATCH", "/api/settings", Some(got.clone())).await;
    assert_eq!(s, 200);
    let (_, stored) = api.su("GET", "/api/settings", None).await;
    assert_eq!(stored, got);
    api.app.stop().await;
}

fn assert_refused(status: u16, body: &Value, path: &[&str]) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], 400, "{body}");
    let mut at = &body["data"];
    for key in path {
        at = &at[*key];
    }
    assert!(
        at["code"].is_string() && at["message"].is_string(),
        "{path:?} in {body}"
    );
}

async fn settings_pier_does_not_implement_are_refused_naming_them(api: Api) {
    let (_, before) = api.su("GET", "/api/settings", None).await;
    let refused: [(Value, &[&str]); 10] = [
        (json!({"s3": {"enabled": true, "bucket": "b"}}), &["s3"]),
        // SMTP is stored, but PocketBase's checks apply: an enabled server needs a host.
        (
            json!({"smtp": {"enabled": true, "host": ""}}),
            &["smtp", "host"],
        ),
        (
            json!({"smtp": {"enabled": true, "host": "mail.example.com", "authMethod": "CRAM"}}),
            &["smtp", "authMethod"],
        ),
        (json!({"s3": {"secret": "a-secret"}}), &["s3"]),
        (json!({"backups": {"cron": "0 0 * * *"}}), &["backups"]),
        (
            json!({"rateLimits": {"enabled": true, "rules": [{"label": "/api/", "duration": 10, "maxRequests": 300}]}}),
            &["rateLimits"],
        ),
        (json!({"superuserIPs": ["10.0.0.1"]}), &["superuserIPs"]),
        (json!({"batch": {"timeout": 30}}), &["batch", "timeout"]),
        (
            json!({"meta": {"appName": "ok", "colour": "red"}}),
            &["meta", "colour"],
        ),
        (json!({"nonsense": {}}), &["nonsense"]),
    ];
    for (body, path) in refused {
        let (s, b) = api.su("PATCH", "/api/settings", Some(body.clone())).await;
        assert_refused(s, &b, path);
    }
    // A refused PATCH stores nothing, not even its acceptable parts.
    let (s, b) = api
        .su(
            "PATCH",
            "/api/settings",
            Some(json!({"meta": {"appName": "half"}, "s3": {"enabled": true}})),
        )
        .await;
    assert_refused(s, &b, &["s3"]);
    assert!(b["data"].get("meta").is_none(), "{b}");
    let (_, after) = api.su("GET", "/api/settings", None).await;
    assert_eq!(after, before);
    // The wrong type for a stored key is still a 400 at its key.
    let (s, b) = api
        .su(
            "PATCH",
            "/api/settings",
            Some(json!({"batch": {"enabled": "yes"}})),
        )
        .await;
    assert_refused(s, &b, &["batch", "enabled"]);
    api.app.stop().await;
}
