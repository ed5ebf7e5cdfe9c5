//! The realtime WebSocket (`/api/realtime/ws`), through the real application with a real
//! WebSocket client: the connect message, auth, subscribe with rules applied, events, resume,
//! unsubscribe, ping, and bad messages answered with errors rather than a dropped connection.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pier_testkit::Engine;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::records::Api;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn recv(ws: &mut Socket) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .unwrap();
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn send(ws: &mut Socket, v: Value) -> Value {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
    recv(ws).await
}

async fn websocket_carries_subscriptions_events_and_errors(a: Api) {
    let (s, b) = a
        .su(
            "POST",
            "/api/collections",
            Some(json!({
                "name": "notes", "listRule": "title != 'secret' || @request.auth.id != ''",
                "viewRule": "", "createRule": "",
                "fields": [{"name": "title", "type": "text"}]
            })),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let url = a.app.base_url.replace("http://", "ws://") + "/api/realtime/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let hello = recv(&mut ws).await;
    assert_eq!(hello["type"], "connect");
    assert_eq!(hello["data"]["clientId"], hello["id"]);

    assert_eq!(
        send(&mut ws, json!({"type": "ping"})).await,
        json!({"type": "pong"})
    );
    let e = send(&mut ws, json!({"type": "dance"})).await;
    assert_eq!(
        (e["type"].as_str(), e["status"].as_u64()),
        (Some("error"), Some(400))
    );
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(recv(&mut ws).await["status"], 400);
    let too_many: Vec<String> = (0..1001).map(|i| format!("notes/{i}")).collect();
    let e = send(
        &mut ws,
        json!({"type": "subscribe", "subscriptions": too_many}),
    )
    .await;
    assert_eq!(
        e["data"]["subscriptions"]["code"], "validation_length_too_long",
        "{e}"
    );

    let r = send(
        &mut ws,
        json!({"type": "subscribe", "subscriptions": ["notes/*"]}),
    )
    .await;
    assert_eq!(
        r,
        json!({"type": "subscribed", "subscriptions": ["notes/*"]})
    );
    let create = |title: &str| {
        let body = json!({"title": title});
        async {
            a.guest("POST", "/api/collections/notes/records", Some(body))
                .await
        }
    };
    assert_eq!(create("secret").await.0, 200);
    assert_eq!(create("open").await.0, 200);
    let ev = recv(&mut ws).await;
    assert_eq!(ev["type"], "event");
    assert_eq!(ev["topic"], "notes/*");
    assert_eq!(ev["data"]["action"], "create");
    assert_eq!(
        ev["data"]["record"]["title"], "open",
        "the guest does not see the secret"
    );
    let first: u64 = ev["id"].as_str().unwrap().parse().unwrap();

    // A second connection, signed in as a superuser (the rule lets everything through), that
    // resumes from before both: it gets both, in order.
    let (mut again, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(recv(&mut again).await["type"], "connect");
    let auth = send(&mut again, json!({"type": "auth", "token": a.token})).await;
    assert_eq!(auth["type"], "auth");
    assert_eq!(auth["auth"]["collectionId"], pier_records::SUPERUSERS_ID);
    let r = send(
        &mut again,
        json!({"type": "subscribe", "subscriptions": ["notes/*"], "lastEventId": first - 2}),
    )
    .await;
    assert_eq!(r["type"], "subscribed");
    let titles: Vec<Value> = [recv(&mut again).await, recv(&mut again).await]
        .iter()
        .map(|e| e["data"]["record"]["title"].clone())
        .collect();
    assert_eq!(titles, [json!("secret"), json!("open")]);
    // On a live connection, `resume` sends nothing that connection already had.
    let r = send(
        &mut again,
        json!({"type": "resume", "lastEventId": first - 2}),
    )
    .await;
    assert_eq!(r["type"], "subscribed");
    assert_eq!(
        send(&mut again, json!({"type": "ping"})).await["type"],
        "pong"
    );

    let r = send(&mut ws, json!({"type": "unsubscribe"})).await;
    assert_eq!(r, json!({"type": "unsubscribed", "subscriptions": []}));
    let r = send(
        &mut ws,
        json!({"type": "subscribe", "subscriptions": ["notes/nothing"]}),
    )
    .await;
    assert_eq!(r["type"], "subscribed");
    assert_eq!(create("after").await.0, 200);
    // Nothing arrives for the unsubscribed topic: the next message is the answer to a ping.
    let next = send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next["type"], "pong", "{next}");
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_on_sqlite() {
    websocket_carries_subscriptions_events_and_errors(Api::start(Engine::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_on_postgres() {
    websocket_carries_subscriptions_events_and_errors(Api::start(Engine::Postgres).await).await;
}
