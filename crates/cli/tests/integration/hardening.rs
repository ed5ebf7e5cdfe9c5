//! Hardening checks through the HTTP API: sign-in timing and refused tokens. `kill -9` in the
//! middle of writes is in `crash.rs`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::helpers::{Server, pier};
use crate::records::{Api, on_both_engines};

/// The timing test and the crash tests load the two cores hard; they take turns.
static HEAVY: Mutex<()> = Mutex::new(());

pub(crate) fn heavy() -> MutexGuard<'static, ()> {
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
pub(crate) async fn call_json(
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
