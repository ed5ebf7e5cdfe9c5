//! Hardening checks through the HTTP API: sign-in timing, refused tokens, and `kill -9` in the
//! middle of writes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::helpers::{Server, get, pier, run};
use crate::records::{Api, on_both_engines};

/// The timing test and the crash tests load the two cores hard; they take turns.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One HTTP call: status and body text.
async fn call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(m, url);
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

/// [`call`] with the body parsed as JSON (`null` when it is not JSON).
async fn call_json(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let (s, text) = call(client, method, url, body, token).await;
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// 1. An unknown identity costs about as much as a wrong password.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unknown_identity_costs_about_as_much_as_a_wrong_password() {
    let _turn = heavy();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pier(dir.path());
    cmd.args(["serve", "--http", "127.0.0.1:0", "--dir", "data"]);
    let s = Server::start(cmd);
    let base = s.base_url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let url = |p: &str| format!("{base}{p}");
        let login = url("/api/collections/users/auth-with-password");
        let setup = reqwest::Client::new();
        // Five members of the default `users` collection (createRule "").
        const USERS: usize = 5;
        let emails: Vec<String> = (0..USERS).map(|i| format!("member{i}@example.com")).collect();
        for e in &emails {
            let (st, b) = call(
                &setup,
                "POST",
                &url("/api/collections/users/records"),
                Some(&json!({"email": e, "password": "RightPass123", "passwordConfirm": "RightPass123"})),
                None,
            )
            .await;
            assert_eq!(st, 200, "{b}");
            // Each signs in once: the password is right, and the paths are warm.
            let (st, b) = call(
                &setup,
                "POST",
                &login,
                Some(&json!({"identity": e, "password": "RightPass123"})),
                None,
            )
            .await;
            assert_eq!(st, 200, "{b}");
        }

        // Failed logins are limited to 5 a minute per identity and 20 a minute per client
        // address (the TCP peer). Each round therefore comes from its own loopback address
        // (127.0.0.11, .12, …: all of 127/8 is loopback on Linux) and makes two failures; the
        // wrong passwords are spread over the five members (at most 4 each); every unknown
        // identity is new.
        const ROUNDS: usize = 16;
        let mut unknown = Vec::new();
        let mut wrong = Vec::new();
        let mut reference: Option<String> = None;
        for round in 0..ROUNDS {
            let octet = u8::try_from(11 + round).unwrap();
            let client = reqwest::Client::builder()
                .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet)))
                .build()
                .unwrap();
            // Open the keep-alive connection first so the timings below hold no handshake.
            let (st, _) = call(&client, "GET", &url("/api/health"), None, None).await;
            assert_eq!(st, 200);
            let ghost = json!({"identity": format!("nobody{round}@example.com"), "password": "RightPass123"});
            let miss = json!({"identity": emails[round % USERS], "password": format!("WrongPass{round}")});
            // Alternate which kind goes first, so neither always follows the other.
            let order = if round % 2 == 0 {
                [(true, &ghost), (false, &miss)]
            } else {
                [(false, &miss), (true, &ghost)]
            };
            for (is_unknown, body) in order {
                let started = Instant::now();
                let (st, text) = call(&client, "POST", &login, Some(body), None).await;
                let took = started.elapsed();
                assert_eq!(st, 400, "round {round}, unknown={is_unknown}: {text}");
                match &reference {
                    None => {
                        let v: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(
                            v,
                            json!({"data": {}, "message": "Failed to authenticate.", "status": 400})
                        );
                        reference = Some(text);
                    }
                    Some(r) => assert_eq!(
                        &text, r,
                        "every failure answers the same body (round {round}, unknown={is_unknown})"
                    ),
                }
                if is_unknown {
                    unknown.push(took);
                } else {
                    wrong.push(took);
                }
            }
        }
        let (mu, mw) = (median(&mut unknown), median(&mut wrong));
        let ratio = mu.as_secs_f64() / mw.as_secs_f64();
        println!(
            "auth-with-password medians over {ROUNDS} attempts each: unknown identity {mu:?}, \
             wrong password {mw:?}, ratio {ratio:.2}\n  unknown: {unknown:?}\n  wrong:   {wrong:?}"
        );
        assert!(
            mw >= Duration::from_millis(2),
            "a wrong password should cost a real password hash, took {mw:?}"
        );
        assert!(
            (0.33..=3.0).contains(&ratio),
            "an unknown identity took {mu:?} (median), a wrong password {mw:?}: ratio {ratio:.2}"
        );
        // The members can still sign in: no identity was locked out by the test itself.
        let (st, b) = call(
            &setup,
            "POST",
            &login,
            Some(&json!({"identity": emails[0], "password": "RightPass123"})),
            None,
        )
        .await;
        assert_eq!(st, 200, "{b}");
    });
    drop(s);
}

// ---------------------------------------------------------------------------------------------
// 2. Tokens: expired, of the wrong type, forged, or from before a password change.
// ---------------------------------------------------------------------------------------------

const USERS_ID: &str = "_pb_users_auth_";
const MEMBERS_RULE: &str = "@request.auth.id != \"\"";

impl Api {
    /// Signs a user up in `collection` (as a superuser, so `id` may be chosen) and returns its id.
    async fn user(
        &self,
        collection: &str,
        id: Option<&str>,
        email: &str,
        password: &str,
    ) -> String {
        let mut body = json!({"email": email, "password": password, "passwordConfirm": password});
        if let Some(id) = id {
            body["id"] = json!(id);
        }
        let (s, b) = self
            .su(
                "POST",
                &format!("/api/collections/{collection}/records"),
                Some(body),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["id"].as_str().unwrap().to_owned()
    }

    async fn sign_in(&self, collection: &str, email: &str, password: &str) -> String {
        let (s, b) = self
            .call(
                "POST",
                &format!("/api/collections/{collection}/auth-with-password"),
                Some(json!({"identity": email, "password": password})),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["token"].as_str().unwrap().to_owned()
    }

    async fn refresh(&self, collection: &str, token: &str) -> u16 {
        self.call(
            "POST",
            &format!("/api/collections/{collection}/auth-refresh"),
            None,
            Some(token),
        )
        .await
        .0
    }

    /// A `notes` collection readable by any signed-in record, with one note; returns its id.
    async fn notes(&self) -> String {
        let (s, b) = self
            .su(
                "POST",
                "/api/collections",
                Some(
                    json!({"name": "notes", "listRule": MEMBERS_RULE, "viewRule": MEMBERS_RULE,
                    "fields": [{"name": "body", "type": "text"}]}),
                ),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let (s, b) = self
            .su(
                "POST",
                "/api/collections/notes/records",
                Some(json!({"body": "members only"})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["id"].as_str().unwrap().to_owned()
    }

    /// Whether `token` sees the note: the view's status and the list's `totalItems`.
    async fn sees_note(&self, note: &str, token: &str) -> (u16, i64) {
        let (view, b) = self
            .call(
                "GET",
                &format!("/api/collections/notes/records/{note}"),
                None,
                Some(token),
            )
            .await;
        if view == 200 {
            assert_eq!(b["body"], "members only");
        }
        let (s, l) = self
            .call("GET", "/api/collections/notes/records", None, Some(token))
            .await;
        assert_eq!(s, 200, "{l}");
        (view, l["totalItems"].as_i64().unwrap())
    }
}

on_both_engines!(
    expired_tokens_are_refused,
    file_tokens_are_not_auth_tokens,
    forged_tokens_are_refused,
    tokens_die_with_the_users_password_change,
);

/// The three segments of a compact JWT.
fn segments(token: &str) -> [String; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    [0, 1, 2].map(|i| parts[i].to_owned())
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(&b64url_decode(&segments(token)[1])).unwrap()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn expired_tokens_are_refused(api: Api) {
    // PocketBase's per-collection token lifetime: `authToken.duration`, in seconds. Two
    // seconds rather than one, so the token is surely still alive for the first checks.
    let (s, b) = api
        .su(
            "PATCH",
            "/api/collections/users",
            Some(json!({"authToken": {"duration": 2}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let note = api.notes().await;
    api.user("users", None, "short@example.com", "LivesBriefly1")
        .await;
    let token = api
        .sign_in("users", "short@example.com", "LivesBriefly1")
        .await;
    let exp = claims(&token)["exp"].as_f64().unwrap();
    let left = exp - unix_now();
    assert!(
        (0.5..=2.5).contains(&left),
        "the token should live about 2 s, has {left:.2} s"
    );
    assert_eq!(api.refresh("users", &token).await, 200);
    assert_eq!(api.sees_note(&note, &token).await, (200, 1));
    // A guest sees nothing (the rule at work).
    let (s, l) = api
        .call("GET", "/api/collections/notes/records", None, None)
        .await;
    assert_eq!((s, l["totalItems"].as_i64()), (200, Some(0)));

    // Wait until the server's clock (the same as ours) is past `exp`.
    let deadline = Instant::now() + Duration::from_secs(10);
    while unix_now() < exp + 0.3 {
        assert!(Instant::now() < deadline, "the clock did not reach exp");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        api.refresh("users", &token).await,
        401,
        "an expired token is refused"
    );
    assert_eq!(
        api.sees_note(&note, &token).await,
        (404, 0),
        "an expired token reads like a guest"
    );
    let fresh = api
        .sign_in("users", "short@example.com", "LivesBriefly1")
        .await;
    assert_eq!(api.refresh("users", &fresh).await, 200);
    assert_eq!(api.sees_note(&note, &fresh).await, (200, 1));
    api.app.stop().await;
}

async fn file_tokens_are_not_auth_tokens(api: Api) {
    let note = api.notes().await;
    let id = api
        .user("users", None, "files@example.com", "FileTokens1")
        .await;
    let token = api
        .sign_in("users", "files@example.com", "FileTokens1")
        .await;
    let (s, b) = api
        .call("POST", "/api/files/token", None, Some(&token))
        .await;
    assert_eq!(s, 200, "{b}");
    let file = b["token"].as_str().unwrap().to_owned();
    let c = claims(&file);
    assert_eq!(
        (c["type"].as_str(), c["id"].as_str()),
        (Some("file"), Some(id.as_str()))
    );
    // The file token is genuine and unexpired, yet no auth token.
    assert_eq!(api.refresh("users", &file).await, 401);
    assert_eq!(api.refresh("users", &format!("Bearer {file}")).await, 401);
    assert_eq!(api.sees_note(&note, &file).await, (404, 0));
    let (s, _) = api
        .call(
            "GET",
            &format!("/api/collections/users/records/{id}"),
            None,
            Some(&file),
        )
        .await;
    assert_eq!(s, 404, "the owner-only view rule sees a guest");
    let (s, _) = api
        .call("POST", "/api/files/token", None, Some(&file))
        .await;
    assert_eq!(s, 401, "a file token does not buy another file token");
    // The auth token itself still works.
    assert_eq!(api.refresh("users", &token).await, 200);
    assert_eq!(api.sees_note(&note, &token).await, (200, 1));
    api.app.stop().await;
}

async fn forged_tokens_are_refused(api: Api) {
    // A second auth collection holding a record with the same id as a user.
    let (s, b) = api
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "members", "type": "auth", "createRule": ""})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let members_id = b["id"].as_str().unwrap().to_owned();
    let note = api.notes().await;
    const SAME: &str = "sameid000000001";
    api.user("users", Some(SAME), "u@example.com", "UserPass123")
        .await;
    api.user("members", Some(SAME), "m@example.com", "MemberPass123")
        .await;
    let other = api
        .user("users", None, "other@example.com", "OtherPass123")
        .await;
    let token = api.sign_in("users", "u@example.com", "UserPass123").await;
    assert_eq!(api.refresh("users", &token).await, 200);
    let [h, c, sig] = segments(&token);

    // A flipped bit in the signature.
    let mut bad = b64url_decode(&sig);
    bad[0] ^= 1;
    let flipped = format!("{h}.{c}.{}", b64url_encode(&bad));
    assert_eq!(api.refresh("users", &flipped).await, 401);
    assert_eq!(api.sees_note(&note, &flipped).await, (404, 0));
    // No signature at all.
    assert_eq!(api.refresh("users", &format!("{h}.{c}.")).await, 401);
    // Claims naming another user (or a later expiry) under the original signature.
    let mut as_other = claims(&token);
    as_other["id"] = json!(other);
    let as_other = b64url_encode(as_other.to_string().as_bytes());
    assert_eq!(
        api.refresh("users", &format!("{h}.{as_other}.{sig}")).await,
        401
    );
    let mut later = claims(&token);
    later["exp"] = json!(later["exp"].as_i64().unwrap() + 86_400);
    let later = b64url_encode(later.to_string().as_bytes());
    assert_eq!(
        api.refresh("users", &format!("{h}.{later}.{sig}")).await,
        401
    );
    // `alg: none`, unsigned or with the original signature kept; other algorithms too.
    for alg in ["none", "None", "NONE", "HS512", "RS256"] {
        let header = b64url_encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        for s in ["", sig.as_str()] {
            let t = format!("{header}.{c}.{s}");
            assert_eq!(api.refresh("users", &t).await, 401, "alg {alg}, sig {s:?}");
            assert_eq!(api.sees_note(&note, &t).await, (404, 0), "alg {alg}");
        }
    }

    // Signatures made with known keys. The key of a token is the record's tokenKey followed
    // by its collection's secret; the test sets both secrets and reads the tokenKeys behind the
    // server's back.
    let users_secret = "u".repeat(40);
    let members_secret = "m".repeat(40);
    for (name, secret) in [("users", &users_secret), ("members", &members_secret)] {
        let (s, b) = api
            .su(
                "PATCH",
                &format!("/api/collections/{name}"),
                Some(json!({"authToken": {"secret": secret}})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let token_key = |table: &'static str| {
        let store = api.app.store.clone();
        async move {
            let rows = store
                .query(
                    format!("SELECT \"tokenKey\" FROM {table} WHERE id = $1"),
                    vec![SAME.into()],
                )
                .await
                .unwrap();
            rows.scalar().and_then(|v| v.as_str()).unwrap().to_owned()
        }
    };
    let users_key = format!("{}{users_secret}", token_key("users").await);
    let members_key = format!("{}{members_secret}", token_key("members").await);
    // Our HMAC matches the server's: a genuine members token verifies with the members key.
    let member_token = api
        .sign_in("members", "m@example.com", "MemberPass123")
        .await;
    let (input, member_sig) = member_token.rsplit_once('.').unwrap();
    assert_eq!(
        b64url_encode(&hmac_sha256(members_key.as_bytes(), input.as_bytes())),
        member_sig
    );
    assert_eq!(claims(&member_token)["collectionId"], members_id);
    let forge = |payload: &Value, key: &str| {
        let input = format!(
            "{}.{}",
            b64url_encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            b64url_encode(payload.to_string().as_bytes())
        );
        let sig = b64url_encode(&hmac_sha256(key.as_bytes(), input.as_bytes()));
        format!("{input}.{sig}")
    };
    let as_user = json!({"collectionId": USERS_ID, "exp": unix_now() as i64 + 3600, "id": SAME,
        "refreshable": true, "type": "auth"});
    // With the right key, a token made here is accepted: the refusals below are the keys'.
    let genuine = forge(&as_user, &users_key);
    assert_eq!(api.refresh("users", &genuine).await, 200);
    assert_eq!(api.sees_note(&note, &genuine).await, (200, 1));
    // Claims naming the user, signed with the members collection's key, or with the user's
    // tokenKey and the members collection's secret: refused.
    let members_token_key = members_key.strip_suffix(&members_secret).unwrap();
    let users_token_key = users_key.strip_suffix(&users_secret).unwrap();
    for key in [
        members_key.clone(),
        format!("{users_token_key}{members_secret}"),
        format!("{members_token_key}{users_secret}"),
        users_secret.clone(),
        users_token_key.to_owned(),
    ] {
        let t = forge(&as_user, &key);
        assert_eq!(api.refresh("users", &t).await, 401, "key {key}");
        assert_eq!(api.sees_note(&note, &t).await, (404, 0), "key {key}");
    }
    // The genuine members token is not a users token, and cannot be relabelled as one.
    assert_eq!(api.refresh("members", &member_token).await, 200);
    assert_eq!(api.refresh("users", &member_token).await, 403);
    let mut relabelled = claims(&member_token);
    relabelled["collectionId"] = json!(USERS_ID);
    let relabelled = format!(
        "{}.{}.{member_sig}",
        segments(&member_token)[0],
        b64url_encode(relabelled.to_string().as_bytes())
    );
    assert_eq!(api.refresh("users", &relabelled).await, 401);
    // Well signed, but claiming a collection that does not exist, or a base collection.
    let (s, notes) = api.su("GET", "/api/collections/notes", None).await;
    assert_eq!(s, 200, "{notes}");
    for collection in [json!("pbc_0000000000"), notes["id"].clone()] {
        let mut nowhere = as_user.clone();
        nowhere["collectionId"] = collection;
        let t = forge(&nowhere, &users_key);
        assert_eq!(api.refresh("users", &t).await, 401);
        assert_eq!(api.sees_note(&note, &t).await, (404, 0));
    }
    api.app.stop().await;
}

async fn tokens_die_with_the_users_password_change(api: Api) {
    let note = api.notes().await;
    let id = api
        .user("users", None, "changer@example.com", "FirstPass123")
        .await;
    let token = api
        .sign_in("users", "changer@example.com", "FirstPass123")
        .await;
    let me = format!("/api/collections/users/records/{id}");
    let (s, _) = api.call("GET", &me, None, Some(&token)).await;
    assert_eq!(s, 200);
    let (s, b) = api
        .call(
            "PATCH",
            &me,
            Some(json!({"oldPassword": "FirstPass123", "password": "SecondPass456", "passwordConfirm": "SecondPass456"})),
            Some(&token),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        api.refresh("users", &token).await,
        401,
        "the old token died with the password"
    );
    let (s, _) = api.call("GET", &me, None, Some(&token)).await;
    assert_eq!(s, 404, "the old token reads like a guest");
    assert_eq!(api.sees_note(&note, &token).await, (404, 0));
    let (s, _) = api
        .call(
            "POST",
            "/api/collections/users/auth-with-password",
            Some(json!({"identity": "changer@example.com", "password": "FirstPass123"})),
            None,
        )
        .await;
    assert_eq!(s, 400, "the old password is gone");
    let fresh = api
        .sign_in("users", "changer@example.com", "SecondPass456")
        .await;
    assert_eq!(api.refresh("users", &fresh).await, 200);
    let (s, _) = api.call("GET", &me, None, Some(&fresh)).await;
    assert_eq!(s, 200);
    assert_eq!(api.sees_note(&note, &fresh).await, (200, 1));
    api.app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. kill -9 in the middle of HTTP writes loses no acknowledged record.
// ---------------------------------------------------------------------------------------------

const WRITERS: usize = 8;

#[test]
fn kill_9_during_http_writes_loses_no_acknowledged_record_on_sqlite() {
    kill_9_during_writes(None);
}

#[test]
fn kill_9_during_http_writes_loses_no_acknowledged_record_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(pier_pgtest::database());
    kill_9_during_writes(Some((&rt, db)));
}

fn kill_9_during_writes(pg: Option<(&tokio::runtime::Runtime, pier_pgtest::TestDb)>) {
    let _turn = heavy();
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = pg.as_ref().map(|(_, db)| db.env()).unwrap_or_default();
    let command = |args: &[&str]| {
        let mut cmd = pier(dir.path());
        cmd.args(args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd
    };
    let out = run(&mut command(&[
        "superuser",
        "upsert",
        "admin@example.com",
        "AdminPass123!",
        "--dir",
        "data",
    ]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let serve = ["serve", "--http", "127.0.0.1:0", "--dir", "data"];
    let mut s = Server::start(command(&serve));
    let base = s.base_url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let (st, b) = call_json(
            &client,
            "POST",
            &format!("{base}/api/collections/_superusers/auth-with-password"),
            Some(&json!({"identity": "admin@example.com", "password": "AdminPass123!"})),
            None,
        )
        .await;
        assert_eq!(st, 200, "{b}");
        let su = b["token"].as_str().unwrap().to_owned();
        let (st, b) = call_json(
            &client,
            "POST",
            &format!("{base}/api/collections"),
            Some(
                &json!({"name": "writes", "createRule": "", "listRule": "", "viewRule": "",
                "fields": [
                    {"name": "title", "type": "text"},
                    {"name": "n", "type": "number"},
                    {"name": "writer", "type": "number"},
                    {"name": "meta", "type": "json"}
                ]}),
            ),
            Some(&su),
        )
        .await;
        assert_eq!(st, 200, "{b}");
    });

    // Writers: each sends one create at a time and keeps what a 200 acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (stop, url) = (stop.clone(), format!("{base}/api/collections/writes/records"));
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let client = reqwest::Client::new();
                    let mut acked: Vec<(String, Value)> = Vec::new();
                    let mut refused: Vec<(u16, String)> = Vec::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let body = json!({
                            "title": format!("writer {w} record {n} ✓"),
                            "n": n,
                            "writer": w,
                            "meta": {"w": w, "n": n, "pad": "x".repeat(usize::try_from(n % 200).unwrap())}
                        });
                        let res = match client.post(&url).json(&body).send().await {
                            Ok(r) => r,
                            Err(_) => break, // The server is gone.
                        };
                        let status = res.status().as_u16();
                        let Ok(text) = res.text().await else { break };
                        if status == 200 {
                            let v: Value = serde_json::from_str(&text).unwrap();
                            let id = v["id"].as_str().unwrap().to_owned();
                            for k in ["title", "n", "writer", "meta"] {
                                assert_eq!(v[k], body[k], "the acknowledgement echoes {k}");
                            }
                            acked.push((id, body));
                        } else {
                            refused.push((status, text));
                        }
                    }
                    (acked, refused)
                })
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let code = s.signal_and_wait("KILL");
    assert_eq!(code, None, "pier died of the signal");
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<(String, Value)> = Vec::new();
    let mut refused = Vec::new();
    for w in writers {
        let (a, r) = w.join().unwrap();
        acked.extend(a);
        refused.extend(r);
    }
    drop(s);
    assert!(
        refused.is_empty(),
        "writes refused before the kill: {:?}",
        &refused[..refused.len().min(5)]
    );
    assert!(
        acked.len() >= 50,
        "the load ran: {} acknowledged",
        acked.len()
    );
    let engine = if pg.is_some() { "postgres" } else { "sqlite" };
    println!(
        "{engine}: {} writes acknowledged before kill -9",
        acked.len()
    );

    // The database as the crash left it.
    let rows_on_disk = match &pg {
        None => sqlite_after_crash(&dir.path().join("data")),
        Some((prt, db)) => prt.block_on(async {
            let c = pier_pgtest::connect(db).await.unwrap();
            let n: i64 = c
                .query_one("SELECT count(*) FROM writes", &[])
                .await
                .unwrap()
                .get(0);
            n
        }),
    };
    let acked_n = i64::try_from(acked.len()).unwrap();
    let in_flight = i64::try_from(WRITERS).unwrap();
    assert!(
        (acked_n..=acked_n + in_flight).contains(&rows_on_disk),
        "{rows_on_disk} rows stored for {acked_n} acknowledged writes"
    );

    // Restarted on the same folder (and database), pier serves every acknowledged record.
    let mut s = Server::start(command(&serve));
    let base = s.base_url.clone();
    let (st, b) = get(&format!("{base}/readyz"));
    assert_eq!(st, 200, "{b}");
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut stored: HashMap<String, Value> = HashMap::new();
        let mut total = None;
        for page in 1.. {
            let (st, l) = call_json(
                &client,
                "GET",
                &format!(
                    "{base}/api/collections/writes/records?perPage=1000&page={page}&sort=@rowid"
                ),
                None,
                None,
            )
            .await;
            assert_eq!(st, 200, "{l}");
            total.get_or_insert(l["totalItems"].as_i64().unwrap());
            let items = l["items"].as_array().unwrap();
            if items.is_empty() {
                break;
            }
            for r in items {
                stored.insert(r["id"].as_str().unwrap().to_owned(), r.clone());
            }
        }
        let total = total.unwrap();
        assert_eq!(
            total, rows_on_disk,
            "the list counts what the database holds"
        );
        assert_eq!(i64::try_from(stored.len()).unwrap(), total);
        for (id, sent) in &acked {
            let r = stored
                .get(id)
                .unwrap_or_else(|| panic!("acknowledged record {id} was lost"));
            for k in ["title", "n", "writer", "meta"] {
                assert_eq!(r[k], sent[k], "record {id}: {k}");
            }
        }
        // The newest acknowledged write of each writer, read on its own.
        let mut last: HashMap<i64, &(String, Value)> = HashMap::new();
        for a in &acked {
            last.insert(a.1["writer"].as_i64().unwrap(), a);
        }
        for (id, sent) in last.values() {
            let (st, r) = call_json(
                &client,
                "GET",
                &format!("{base}/api/collections/writes/records/{id}"),
                None,
                None,
            )
            .await;
            assert_eq!(st, 200, "{r}");
            assert_eq!(r["meta"], sent["meta"]);
        }
        // And pier still takes writes.
        let (st, b) = call_json(
            &client,
            "POST",
            &format!("{base}/api/collections/writes/records"),
            Some(&json!({"title": "after the crash"})),
            None,
        )
        .await;
        assert_eq!(st, 200, "{b}");
    });
    assert_eq!(s.signal_and_wait("TERM"), Some(0));
    if pg.is_none() {
        // After a clean stop the file alone is the database; it is sound.
        let info = pier_storage::check_sqlite(&dir.path().join("data/data.db"))
            .unwrap_or_else(|e| panic!("{e}"));
        println!("{info:?}");
    }
}

/// Opens the SQLite database the crash left behind (recovering its WAL, as pier would), checks
/// it with `PRAGMA integrity_check`, and counts the `writes` rows.
fn sqlite_after_crash(data_dir: &Path) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cfg = pier_config::Config::from_flags(
            pier_config::Role::Tool,
            vec![pier_config::Flag {
                key: "paths.data_dir",
                value: data_dir.display().to_string(),
                name: "test",
            }],
        )
        .unwrap();
        let store = pier_storage::Store::open(&cfg.database).await.unwrap();
        let check = store.query("PRAGMA integrity_check", vec![]).await.unwrap();
        let lines: Vec<String> = check
            .iter()
            .map(|r| r[0].as_str().unwrap_or("?").to_owned())
            .collect();
        assert_eq!(lines, ["ok"], "integrity_check after kill -9");
        let n = store
            .query("SELECT count(*) FROM writes", vec![])
            .await
            .unwrap()
            .scalar()
            .and_then(pier_storage::Value::as_i64)
            .unwrap();
        store.close().await;
        n
    })
}

// JWT pieces: base64url without padding, and HMAC-SHA256 (the crates pier's tokens use).

fn b64url_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn b64url_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|_| panic!("not base64url: {s}"))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}
