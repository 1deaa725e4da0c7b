//! Routing through direct, fanout, topic and headers exchanges.

use crate::util::*;
use interop_tests::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

/// Publishes every key (body = key) to `x`, then returns, per queue, the bodies it received.
async fn route(ch: &lapin::Channel, x: &str, queues: &[String], keys: &[&str]) -> Vec<Vec<String>> {
    for k in keys {
        publish(ch, x, k, k.as_bytes()).await;
    }
    let mut out = Vec::new();
    for q in queues {
        out.push(
            drain(ch, q)
                .await
                .into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect(),
        );
    }
    out
}

#[tokio::test]
async fn direct_routes_by_exact_key() {
    let (conn, ch) = open().await;
    let x = exchange(&ch, ExchangeKind::Direct).await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    bind(&ch, &q1, &x, "red", FieldTable::default()).await;
    bind(&ch, &q1, &x, "green", FieldTable::default()).await;
    // the same binding twice is one binding
    bind(&ch, &q1, &x, "green", FieldTable::default()).await;
    bind(&ch, &q2, &x, "green", FieldTable::default()).await;
    bind(&ch, &q2, &x, "", FieldTable::default()).await;
    let got = route(
        &ch,
        &x,
        &[q1.clone(), q2.clone()],
        &["red", "green", "blue", "", "Red", "red.x"],
    )
    .await;
    assert_eq!(got[0], vec!["red", "green"]);
    assert_eq!(got[1], vec!["green", ""]);
    // unbind stops the routing
    ch.queue_unbind(
        q1.as_str().into(),
        x.as_str().into(),
        "red".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let got = route(&ch, &x, &[q1, q2], &["red", "green"]).await;
    assert_eq!(got, vec![vec!["green"], vec!["green"]]);
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn fanout_ignores_the_key() {
    let (conn, ch) = open().await;
    let x = exchange(&ch, ExchangeKind::Fanout).await;
    let qs = vec![
        temp_queue(&ch).await,
        temp_queue(&ch).await,
        temp_queue(&ch).await,
    ];
    bind(&ch, &qs[0], &x, "", FieldTable::default()).await;
    bind(&ch, &qs[1], &x, "ignored", FieldTable::default()).await;
    bind(&ch, &qs[2], &x, "a.#", FieldTable::default()).await;
    let got = route(&ch, &x, &qs, &["", "k", "a.b"]).await;
    for g in got {
        assert_eq!(g, vec!["", "k", "a.b"]);
    }
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn topic_patterns_and_edge_cases() {
    let (conn, ch) = open().await;
    let x = exchange(&ch, ExchangeKind::Topic).await;
    let keys = [
        "", "a", "b", "a.b", "a.c", "a.b.c", "a.x.b", "a.x.y.b", "a..b", "a.", ".a", ".", "..",
        "a.b.b", "b.a",
    ];
    // (binding key, expected matching routing keys in publish order)
    let patterns: Vec<(&str, Vec<&str>)> = vec![
        ("#", keys.to_vec()),
        ("*", vec!["a", "b"]),
        ("", vec![""]),
        ("a", vec!["a"]),
        ("a.b", vec!["a.b"]),
        ("a.*", vec!["a.b", "a.c", "a."]),
        ("*.a", vec![".a", "b.a"]),
        (
            "a.#",
            vec![
                "a", "a.b", "a.c", "a.b.c", "a.x.b", "a.x.y.b", "a..b", "a.", "a.b.b",
            ],
        ),
        ("#.b", vec!["b", "a.b", "a.x.b", "a.x.y.b", "a..b", "a.b.b"]),
        ("a.#.b", vec!["a.b", "a.x.b", "a.x.y.b", "a..b", "a.b.b"]),
        ("a.*.b", vec!["a.x.b", "a..b", "a.b.b"]),
        ("*.*", vec!["a.b", "a.c", "a.", ".a", ".", "b.a"]),
        ("a..b", vec!["a..b"]),
        ("a.", vec!["a."]),
        ("*.", vec!["a.", "."]),
        ("#.#", keys.to_vec()),
        (
            "*.#",
            keys.iter().copied().filter(|k| !k.is_empty()).collect(),
        ),
        (
            "#.*.#",
            keys.iter().copied().filter(|k| !k.is_empty()).collect(),
        ),
    ];
    let mut queues = Vec::new();
    for (pattern, _) in &patterns {
        let q = temp_queue(&ch).await;
        bind(&ch, &q, &x, pattern, FieldTable::default()).await;
        queues.push(q);
    }
    let got = route(&ch, &x, &queues, &keys).await;
    let wrong: Vec<String> = patterns
        .iter()
        .zip(got)
        .filter(|((_, expected), got)| got != expected)
        .map(|((pattern, expected), got)| {
            format!("binding key {pattern:?}: expected {expected:?}, got {got:?}")
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn topic_delivers_once_when_several_bindings_match() {
    let (conn, ch) = open().await;
    let x = exchange(&ch, ExchangeKind::Topic).await;
    let q = temp_queue(&ch).await;
    for p in ["#", "a.*", "a.b", "*.b"] {
        bind(&ch, &q, &x, p, FieldTable::default()).await;
    }
    let got = route(&ch, &x, std::slice::from_ref(&q), &["a.b"]).await;
    assert_eq!(got, vec![vec!["a.b"]]);
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

fn headers(entries: Vec<(&str, AMQPValue)>) -> BasicProperties {
    BasicProperties::default().with_headers(table(entries))
}

#[tokio::test]
async fn headers_match_all_and_any() {
    let (conn, ch) = open().await;
    let x = exchange(&ch, ExchangeKind::Headers).await;
    let bindings = vec![
        table(vec![
            ("x-match", lstr("all")),
            ("a", lstr("1")),
            ("b", lstr("2")),
        ]),
        table(vec![
            ("x-match", lstr("any")),
            ("a", lstr("1")),
            ("b", lstr("2")),
        ]),
        // no x-match means all
        table(vec![("a", lstr("1"))]),
        // all of nothing: everything matches
        table(vec![("x-match", lstr("all"))]),
        // a void value only asks for the header to be present
        table(vec![("x-match", lstr("all")), ("c", AMQPValue::Void)]),
        // integers match across widths
        table(vec![("n", AMQPValue::LongInt(5))]),
    ];
    let mut queues = Vec::new();
    for b in bindings {
        let q = temp_queue(&ch).await;
        // the routing key plays no part
        bind(&ch, &q, &x, "ignored", b).await;
        queues.push(q);
    }
    let messages: Vec<(&str, Option<BasicProperties>)> = vec![
        (
            "ab",
            Some(headers(vec![("a", lstr("1")), ("b", lstr("2"))])),
        ),
        ("a", Some(headers(vec![("a", lstr("1"))]))),
        (
            "bc",
            Some(headers(vec![("b", lstr("2")), ("c", lstr("3"))])),
        ),
        ("a-wrong", Some(headers(vec![("a", lstr("2"))]))),
        ("a-int", Some(headers(vec![("a", AMQPValue::LongInt(1))]))),
        ("empty", Some(headers(vec![]))),
        ("none", None),
        ("c-int", Some(headers(vec![("c", AMQPValue::LongInt(1))]))),
        (
            "n-short",
            Some(headers(vec![("n", AMQPValue::ShortInt(5))])),
        ),
        (
            "n-long",
            Some(headers(vec![("n", AMQPValue::LongLongInt(5))])),
        ),
    ];
    for (body, props) in &messages {
        publish_with(
            &ch,
            &x,
            "k",
            body.as_bytes(),
            props.clone().unwrap_or_default(),
        )
        .await;
    }
    let mut got = Vec::new();
    for q in &queues {
        got.push(
            drain(&ch, q)
                .await
                .into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect::<Vec<_>>(),
        );
    }
    let all_bodies: Vec<&str> = messages.iter().map(|(b, _)| *b).collect();
    let expected: Vec<(&str, Vec<&str>)> = vec![
        ("x-match all", vec!["ab"]),
        ("x-match any", vec!["ab", "a", "bc"]),
        ("default x-match", vec!["ab", "a"]),
        ("all of nothing", all_bodies),
        ("void: presence", vec!["bc", "c-int"]),
        ("integers", vec!["n-short", "n-long"]),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .zip(&got)
        .filter(|((_, e), g)| e != *g)
        .map(|((what, e), g)| format!("{what}: expected {e:?}, got {g:?}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn headers_invalid_x_match_is_refused() {
    let (conn, ch) = open().await;
    let x = exchange(&ch, ExchangeKind::Headers).await;
    let q = temp_queue(&ch).await;
    let bad = conn.create_channel().await.unwrap();
    let r = bad
        .queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            table(vec![("x-match", lstr("foo"))]),
        )
        .await;
    assert_amqp_error(
        r,
        406,
        "PRECONDITION_FAILED - Invalid x-match field value <<\"foo\">>; expected all, any",
    );
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn unroutable_publish_is_dropped_silently_without_mandatory() {
    let (conn, ch) = open().await;
    let x = exchange(&ch, ExchangeKind::Fanout).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let c = ch
        .basic_publish(
            x.as_str().into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"dropped",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(c, lapin::Confirmation::Ack(None));
    assert!(within(10, ch.wait_for_confirms()).await.unwrap().is_empty());
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn routing_to_queue_deleted_meanwhile() {
    let (conn, ch) = open().await;
    let x = exchange(&ch, ExchangeKind::Direct).await;
    let q = named_queue(&ch, "gone").await;
    bind(&ch, &q, &x, "k", FieldTable::default()).await;
    delete_queue(&ch, &q).await;
    // the binding went with the queue
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let c = ch
        .basic_publish(
            x.as_str().into(),
            "k".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"m",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let returned = c.take_message().expect("returned");
    assert_eq!(returned.reply_code, 312);
    delete_exchange(&ch, &x).await;
    close(conn).await;
}
