//! Sender-selected distribution: the CC and BCC headers (arrays of long strings) add routing
//! keys; BCC is removed from the delivered message; a queue gets one copy however many keys
//! reach it.

use super::*;
use lapin::types::FieldArray;
use lapin::ExchangeKind;

fn keys(ks: &[&str]) -> AMQPValue {
    AMQPValue::FieldArray(FieldArray::from(
        ks.iter().map(|k| lstr(k)).collect::<Vec<_>>(),
    ))
}

fn with_headers(h: Vec<(&str, AMQPValue)>) -> BasicProperties {
    BasicProperties::default().with_headers(table(h))
}

/// A direct exchange with one exclusive queue bound per key; returns (exchange, queues).
async fn per_key_queues(ch: &Channel, ks: &[&str]) -> (String, Vec<String>) {
    let x = exchange(ch, ExchangeKind::Direct).await;
    let mut qs = Vec::new();
    for k in ks {
        let q = temp_queue(ch).await;
        bind(ch, &q, &x, k, FieldTable::default()).await;
        qs.push(q);
    }
    (x, qs)
}

#[tokio::test]
async fn cc_routes_to_the_extra_keys_and_is_delivered() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let (x, qs) = per_key_queues(&ch, &["k1", "cc1", "cc2", "other"]).await;
    let props = with_headers(vec![("CC", keys(&["cc1", "cc2"])), ("h", int(7))]);
    let c = publish_confirmed(&ch, &x, "k1", b"m", props, false).await;
    assert_eq!(c, Confirmation::Ack(None));
    for q in &qs[..3] {
        let got = drain_deliveries(&ch, q).await;
        assert_eq!(got.len(), 1, "one copy in {q}");
        let d = &got[0];
        // delivered with the publish routing key, CC header intact
        assert_eq!(d.routing_key.as_str(), "k1");
        assert_eq!(header_keys(d), ["CC", "h"]);
        assert_eq!(header(d, "CC"), Some(&keys(&["cc1", "cc2"])));
    }
    assert!(get(&ch, &qs[3]).await.is_none());
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn bcc_routes_to_the_extra_keys_and_is_removed() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let (x, qs) = per_key_queues(&ch, &["k1", "cc1", "bcc1"]).await;
    let props = with_headers(vec![
        ("CC", keys(&["cc1"])),
        ("BCC", keys(&["bcc1"])),
        ("h", lstr("v")),
    ]);
    publish_confirmed(&ch, &x, "k1", b"m", props, false).await;
    for q in &qs {
        let got = drain_deliveries(&ch, q).await;
        assert_eq!(got.len(), 1, "one copy in {q}");
        assert_eq!(header_keys(&got[0]), ["CC", "h"]);
        assert_eq!(got[0].routing_key.as_str(), "k1");
    }
    // BCC alone: the header disappears, other headers stay
    publish_confirmed(
        &ch,
        &x,
        "nowhere",
        b"b",
        with_headers(vec![("BCC", keys(&["bcc1"]))]),
        false,
    )
    .await;
    let got = drain_deliveries(&ch, &qs[2]).await;
    assert_eq!(texts(&got), ["b"]);
    assert_eq!(header_keys(&got[0]), Vec::<String>::new());
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn a_queue_reached_by_several_keys_gets_one_copy() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let x = exchange(&ch, ExchangeKind::Direct).await;
    let q = temp_queue(&ch).await;
    for k in ["k1", "cc1", "bcc1"] {
        bind(&ch, &q, &x, k, FieldTable::default()).await;
    }
    let props = with_headers(vec![
        ("CC", keys(&["cc1", "k1", "cc1"])),
        ("BCC", keys(&["bcc1", "k1"])),
    ]);
    publish_confirmed(&ch, &x, "k1", b"once", props, false).await;
    assert_eq!(drain_texts(&ch, &q).await, ["once"]);
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn mandatory_publish_routed_only_by_bcc_is_not_returned() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = temp_queue(&ch).await;
    // default exchange: the BCC key names the queue
    let props = with_headers(vec![("BCC", keys(&[&q]))]);
    let c = publish_confirmed(&ch, "", &unique("no-such-queue"), b"bcc", props, true).await;
    assert_eq!(c, Confirmation::Ack(None));
    let got = drain_deliveries(&ch, &q).await;
    assert_eq!(texts(&got), ["bcc"]);
    assert_eq!(header_keys(&got[0]), Vec::<String>::new());
    close(conn).await;
}

#[tokio::test]
async fn cc_keys_are_matched_like_routing_keys_by_a_topic_exchange() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let x = exchange(&ch, ExchangeKind::Topic).await;
    let qa = temp_queue(&ch).await;
    let qb = temp_queue(&ch).await;
    let qc = temp_queue(&ch).await;
    bind(&ch, &qa, &x, "a.*", FieldTable::default()).await;
    bind(&ch, &qb, &x, "#.b", FieldTable::default()).await;
    bind(&ch, &qc, &x, "c", FieldTable::default()).await;
    let props = with_headers(vec![("CC", keys(&["x.y.b", "a.b"]))]);
    publish_confirmed(&ch, &x, "zzz", b"t", props, false).await;
    assert_eq!(drain_texts(&ch, &qa).await, ["t"]);
    assert_eq!(drain_texts(&ch, &qb).await, ["t"]);
    assert!(get(&ch, &qc).await.is_none());
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn only_long_string_entries_and_exact_header_names_count() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let (x, qs) = per_key_queues(&ch, &["cc1", "cc2", "lower"]).await;
    let mixed = AMQPValue::FieldArray(FieldArray::from(vec![
        lstr("cc1"),
        int(5),
        AMQPValue::Boolean(true),
        AMQPValue::FieldTable(table(vec![("cc2", lstr("cc2"))])),
    ]));
    let props = with_headers(vec![("CC", mixed), ("cc", keys(&["lower"]))]);
    let c = publish_confirmed(&ch, &x, "none", b"m", props, true).await;
    assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    assert_eq!(drain_texts(&ch, &qs[0]).await, ["m"]);
    assert!(get(&ch, &qs[1]).await.is_none());
    assert!(get(&ch, &qs[2]).await.is_none());
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

/// Warren bug (cc-header-type-unchecked): a CC or BCC header that is not an array is ignored;
/// RabbitMQ refuses the message and closes the channel, even if it is unroutable.
#[tokio::test]
async fn a_cc_or_bcc_header_that_is_not_an_array_closes_the_channel() {
    let conn = connect().await;
    let q = temp_queue(&conn.create_channel().await.unwrap()).await;
    let missing = unique("no-such-queue");
    for (name, value, type_name, key) in [
        ("CC", lstr("k"), "longstr", q.as_str()),
        ("BCC", int(1), "signedint", q.as_str()),
        ("CC", AMQPValue::Boolean(true), "bool", missing.as_str()),
    ] {
        let ch = conn.create_channel().await.unwrap();
        let watch = watch_close(&ch).await;
        publish_with(&ch, "", key, b"m", with_headers(vec![(name, value)])).await;
        assert_eq!(
            watch.closed().await,
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid message: \
                     {{unacceptable_type_in_header,\"{name}\",{type_name}}}"
                )
            )
        );
    }
    // nothing was enqueued
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(message_count(&ch, &q).await, 0);
    close(conn).await;
}

#[tokio::test]
async fn dead_lettering_reroutes_with_cc_and_bcc_and_records_cc_in_x_death() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let (dlx, qs) = per_key_queues(&ch, &["k1", "cc1", "bcc1"]).await;
    let src = xqueue(
        &ch,
        "src",
        table(vec![("x-dead-letter-exchange", lstr(&dlx))]),
    )
    .await;
    // A direct exchange of its own: tests run in parallel, and another one binding "k1" on a
    // shared exchange would route its messages here too.
    let via = exchange(&ch, ExchangeKind::Direct).await;
    for k in ["k1", "cc1", "bcc1"] {
        bind(&ch, &src, &via, k, FieldTable::default()).await;
    }
    let props = with_headers(vec![("CC", keys(&["cc1"])), ("BCC", keys(&["bcc1"]))]);
    publish_confirmed(&ch, &via, "k1", b"cc", props, false).await;
    let m = poll_get(&ch, &src, false).await;
    assert_eq!(header_keys(&m.delivery), ["CC"]);
    ch.basic_reject(
        m.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    for q in &qs {
        let d = poll_get(&ch, q, true).await.delivery;
        assert_eq!(
            (d.exchange.as_str(), d.routing_key.as_str()),
            (dlx.as_str(), "k1")
        );
        assert_eq!(header(&d, "CC"), Some(&keys(&["cc1"])));
        assert_eq!(header(&d, "BCC"), None);
        // the routing key and the CC keys, not the BCC ones
        assert_eq!(deaths(&d)[0].routing_keys, ["k1", "cc1"]);
    }
    delete_exchange(&ch, &dlx).await;
    delete_exchange(&ch, &via).await;
    close(conn).await;
}

/// Warren bug (cc-keys-routed-separately): Warren routes the routing key and each CC/BCC key
/// through the exchange graph one at a time; RabbitMQ matches the whole key set at every
/// exchange, so a path may use one key at the first hop and another at the next.
#[tokio::test]
async fn cc_keys_are_used_at_every_exchange_to_exchange_hop() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let x1 = exchange(&ch, ExchangeKind::Direct).await;
    let x2 = exchange(&ch, ExchangeKind::Direct).await;
    ch.exchange_bind(
        x2.as_str().into(),
        x1.as_str().into(),
        "cc1".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &x2, "bcc2", FieldTable::default()).await;
    let props = with_headers(vec![("CC", keys(&["cc1"])), ("BCC", keys(&["bcc2"]))]);
    let c = publish_confirmed(&ch, &x1, "k", b"hop", props, true).await;
    assert_eq!(c, Confirmation::Ack(None));
    let got = drain_deliveries(&ch, &q).await;
    assert_eq!(texts(&got), ["hop"]);
    assert_eq!(
        (got[0].exchange.as_str(), got[0].routing_key.as_str()),
        (x1.as_str(), "k")
    );
    delete_exchange(&ch, &x1).await;
    delete_exchange(&ch, &x2).await;
    close(conn).await;
}

#[tokio::test]
async fn dead_letter_routing_key_drops_the_cc_keys_and_header() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let (dlx, qs) = per_key_queues(&ch, &["k1", "cc1", "dl"]).await;
    let src = xqueue(
        &ch,
        "src",
        table(vec![
            ("x-dead-letter-exchange", lstr(&dlx)),
            ("x-dead-letter-routing-key", lstr("dl")),
        ]),
    )
    .await;
    // A direct exchange of its own (see dead_lettering_reroutes_with_cc_and_bcc_...).
    let via = exchange(&ch, ExchangeKind::Direct).await;
    bind(&ch, &src, &via, "k1", FieldTable::default()).await;
    let props = with_headers(vec![("CC", keys(&["cc1"])), ("h", int(1))]);
    publish_confirmed(&ch, &via, "k1", b"cc", props, false).await;
    let m = poll_get(&ch, &src, false).await;
    ch.basic_reject(
        m.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    let d = poll_get(&ch, &qs[2], true).await.delivery;
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        (dlx.as_str(), "dl")
    );
    assert_eq!(header(&d, "CC"), None);
    assert_eq!(header(&d, "h"), Some(&int(1)));
    // x-death still records the routing key and the CC keys
    assert_eq!(deaths(&d)[0].routing_keys, ["k1", "cc1"]);
    // routed with "dl" only: once the "dl" copy is there, the others would be too
    assert!(get(&ch, &qs[0]).await.is_none());
    assert!(get(&ch, &qs[1]).await.is_none());
    delete_exchange(&ch, &dlx).await;
    delete_exchange(&ch, &via).await;
    close(conn).await;
}

/// Warren bug (cc-keys-routed-separately), the alternate-exchange side: an exchange uses its
/// alternate exchange only when none of the keys (routing key, CC, BCC) matched; Warren tries
/// the alternate exchange for each key that matched nothing.
#[tokio::test]
async fn alternate_exchange_is_used_only_when_no_key_matched() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let ae = exchange(&ch, ExchangeKind::Fanout).await;
    let qae = temp_queue(&ch).await;
    bind(&ch, &qae, &ae, "", FieldTable::default()).await;
    let x = unique("x");
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        table(vec![("alternate-exchange", lstr(&ae))]),
    )
    .await
    .unwrap();
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &x, "k", FieldTable::default()).await;
    // the CC key matches nothing, the routing key does: no alternate exchange
    let props = with_headers(vec![("CC", keys(&["nomatch"]))]);
    publish_confirmed(&ch, &x, "k", b"1", props, false).await;
    // the routing key matches nothing, the CC key does: no alternate exchange either
    let props = with_headers(vec![("CC", keys(&["k"]))]);
    publish_confirmed(&ch, &x, "nomatch", b"2", props, false).await;
    // nothing matches: the alternate exchange
    let props = with_headers(vec![("CC", keys(&["nomatch2"]))]);
    publish_confirmed(&ch, &x, "nomatch", b"3", props, false).await;
    assert_eq!(drain_texts(&ch, &q).await, ["1", "2"]);
    assert_eq!(drain_texts(&ch, &qae).await, ["3"]);
    delete_exchange(&ch, &x).await;
    delete_exchange(&ch, &ae).await;
    close(conn).await;
}
