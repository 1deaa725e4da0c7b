//! exchange.declare / delete / bind / unbind, alternate and internal exchanges.

use crate::util::*;
use interop_tests::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

fn kinds() -> [ExchangeKind; 4] {
    [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ]
}

fn passive() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn declare_each_type_redeclare_passive_delete() {
    let (conn, ch) = open().await;
    for kind in kinds() {
        let x = unique("x");
        for _ in 0..2 {
            // an identical redeclare is fine
            ch.exchange_declare(
                x.as_str().into(),
                kind.clone(),
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
        // passive ignores the type and other flags
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                passive: true,
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        delete_exchange(&ch, &x).await;
        let ch2 = conn.create_channel().await.unwrap();
        assert_amqp_error(
            exchange_exists(&ch2, &x).await,
            404,
            &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"),
        );
    }
    close(conn).await;
}

#[tokio::test]
async fn passive_declare_of_missing_exchange_is_not_found() {
    let (conn, ch) = open().await;
    let x = unique("missing");
    let r = ch
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            passive(),
            FieldTable::default(),
        )
        .await;
    let text = assert_amqp_error(r, 404, "NOT_FOUND - no exchange");
    assert_eq!(text, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
    assert!(!ch.status().connected());
    assert!(conn.status().connected());
    close(conn).await;
}

#[tokio::test]
async fn redeclare_with_different_type_or_flags_is_precondition_failed() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let x = exchange(&ch, ExchangeKind::Direct).await;
    let cases = [
        (
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            "type",
            "fanout",
            "direct",
        ),
        (
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            "durable",
            "true",
            "false",
        ),
        (
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            "auto_delete",
            "true",
            "false",
        ),
    ];
    for (kind, opts, arg, received, current) in cases {
        let bad = conn.create_channel().await.unwrap();
        let r = bad
            .exchange_declare(x.as_str().into(), kind, opts, FieldTable::default())
            .await;
        assert_amqp_error(
            r,
            406,
            &format!(
                "PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{x}' in vhost '/': \
                 received '{received}' but current is '{current}'"
            ),
        );
    }
    // the original is untouched
    exchange_exists(&ch, &x).await.unwrap();
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn amq_prefix_is_reserved() {
    let conn = connect().await;
    let x = format!("amq.{}", unique("x"));
    let ch = conn.create_channel().await.unwrap();
    let r = ch
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(
        r,
        403,
        &format!("ACCESS_REFUSED - exchange name '{x}' contains reserved prefix 'amq.*'"),
    );
    // it was not created
    let ch = conn.create_channel().await.unwrap();
    assert_amqp_error(
        exchange_exists(&ch, &x).await,
        404,
        &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"),
    );
    close(conn).await;
}

#[tokio::test]
async fn predeclared_exchanges_exist() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    for (name, kind) in [
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ] {
        exchange_exists(&ch, name).await.unwrap();
        // an equivalent (durable) redeclare is accepted despite the prefix
        ch.exchange_declare(
            name.into(),
            kind.clone(),
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    // the default exchange routes by queue name
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, b"via default").await;
    publish(&ch, "amq.direct", &q, b"not bound").await;
    assert_eq!(drain(&ch, &q).await, vec![b"via default".to_vec()]);
    // system exchanges cannot be deleted
    let r = ch
        .exchange_delete("amq.direct".into(), ExchangeDeleteOptions::default())
        .await;
    assert_amqp_error(
        r,
        403,
        "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed",
    );
    let ch = conn.create_channel().await.unwrap();
    exchange_exists(&ch, "amq.direct").await.unwrap();
    close(conn).await;
}

#[tokio::test]
async fn default_exchange_cannot_be_bound() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = temp_queue(&ch).await;
    let r = ch
        .queue_bind(
            q.as_str().into(),
            "".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(
        r,
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange",
    );
    close(conn).await;
}

#[tokio::test]
async fn delete_missing_exchange_is_ok() {
    let (conn, ch) = open().await;
    ch.exchange_delete(
        unique("missing").as_str().into(),
        ExchangeDeleteOptions::default(),
    )
    .await
    .unwrap();
    close(conn).await;
}

#[tokio::test]
async fn delete_if_unused() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let x = exchange(&ch, ExchangeKind::Direct).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &x, "k", FieldTable::default()).await;
    let bad = conn.create_channel().await.unwrap();
    let r = bad
        .exchange_delete(
            x.as_str().into(),
            ExchangeDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await;
    assert_amqp_error(
        r,
        406,
        &format!("PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use"),
    );
    exchange_exists(&ch, &x).await.unwrap();
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "k".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_delete(
        x.as_str().into(),
        ExchangeDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_amqp_error(
        exchange_exists(&ch, &x).await,
        404,
        "NOT_FOUND - no exchange",
    );
    close(conn).await;
}

#[tokio::test]
async fn delete_exchange_removes_its_bindings() {
    let (conn, ch) = open().await;
    let x = exchange(&ch, ExchangeKind::Fanout).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &x, "", FieldTable::default()).await;
    delete_exchange(&ch, &x).await;
    let x2 = x.clone();
    ch.exchange_declare(
        x2.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, &x, "", b"nowhere").await;
    assert!(get(&ch, &q).await.is_none());
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn exchange_to_exchange_bind_and_unbind() {
    let (conn, ch) = open().await;
    let src = exchange(&ch, ExchangeKind::Topic).await;
    let dst = exchange(&ch, ExchangeKind::Fanout).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &dst, "", FieldTable::default()).await;
    ch.exchange_bind(
        dst.as_str().into(),
        src.as_str().into(),
        "a.*".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, &src, "a.b", b"yes").await;
    publish(&ch, &src, "b.b", b"no").await;
    let got = drain_deliveries(&ch, &q).await;
    assert_eq!(got.len(), 1);
    // the delivery names the exchange the message was published to
    assert_eq!(
        (
            got[0].exchange.as_str(),
            got[0].routing_key.as_str(),
            &got[0].data[..]
        ),
        (src.as_str(), "a.b", &b"yes"[..])
    );

    ch.exchange_unbind(
        dst.as_str().into(),
        src.as_str().into(),
        "a.*".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            src.as_str().into(),
            "a.b".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"gone",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    let returned = confirm.take_message().expect("returned as unroutable");
    assert_eq!(
        (returned.reply_code, returned.reply_text.as_str()),
        (312, "NO_ROUTE")
    );
    assert!(get(&ch, &q).await.is_none());
    // unbinding a binding that does not exist is fine
    ch.exchange_unbind(
        dst.as_str().into(),
        src.as_str().into(),
        "never".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    delete_exchange(&ch, &src).await;
    delete_exchange(&ch, &dst).await;
    close(conn).await;
}

#[tokio::test]
async fn exchange_bind_to_missing_exchange_is_not_found() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let x = exchange(&ch, ExchangeKind::Fanout).await;
    let missing = unique("missing");
    for (dst, src) in [(&missing, &x), (&x, &missing)] {
        let bad = conn.create_channel().await.unwrap();
        let r = bad
            .exchange_bind(
                dst.as_str().into(),
                src.as_str().into(),
                "k".into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(
            r,
            404,
            &format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"),
        );
    }
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn exchange_binding_cycle_delivers_once() {
    let (conn, ch) = open().await;
    let a = exchange(&ch, ExchangeKind::Topic).await;
    let b = exchange(&ch, ExchangeKind::Fanout).await;
    for (dst, src, key) in [(&b, &a, "#"), (&a, &b, "")] {
        ch.exchange_bind(
            dst.as_str().into(),
            src.as_str().into(),
            key.into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &a, "#", FieldTable::default()).await;
    bind(&ch, &q, &b, "", FieldTable::default()).await;
    publish(&ch, &a, "z", b"once").await;
    assert_eq!(drain(&ch, &q).await, vec![b"once".to_vec()]);
    delete_exchange(&ch, &a).await;
    delete_exchange(&ch, &b).await;
    close(conn).await;
}

#[tokio::test]
async fn alternate_exchange_takes_unroutable_messages() {
    let (conn, ch) = open().await;
    let ae = exchange(&ch, ExchangeKind::Fanout).await;
    let x = unique("x");
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        table(vec![("alternate-exchange", lstr(&ae))]),
    )
    .await
    .unwrap();
    let aq = temp_queue(&ch).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &aq, &ae, "", FieldTable::default()).await;
    bind(&ch, &q, &x, "routed", FieldTable::default()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for (key, body) in [("unrouted", &b"to-ae"[..]), ("routed", &b"direct"[..])] {
        let c = ch
            .basic_publish(
                x.as_str().into(),
                key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        // routed via the AE, so not returned
        assert_eq!(c, lapin::Confirmation::Ack(None));
    }
    let via_ae = drain_deliveries(&ch, &aq).await;
    assert_eq!(via_ae.len(), 1);
    assert_eq!(
        (via_ae[0].exchange.as_str(), via_ae[0].routing_key.as_str()),
        (x.as_str(), "unrouted")
    );
    assert_eq!(via_ae[0].data, b"to-ae");
    assert_eq!(drain(&ch, &q).await, vec![b"direct".to_vec()]);

    // redeclaring without the argument is an inequivalent declaration
    let bad = conn.create_channel().await.unwrap();
    let r = bad
        .exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(
        r,
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '{x}' in vhost '/'"
        ),
    );
    delete_exchange(&ch, &x).await;
    delete_exchange(&ch, &ae).await;
    close(conn).await;
}

#[tokio::test]
async fn missing_alternate_exchange_means_unroutable() {
    let (conn, ch) = open().await;
    let x = unique("x");
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        table(vec![("alternate-exchange", lstr(&unique("missing-ae")))]),
    )
    .await
    .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.basic_publish(
        x.as_str().into(),
        "k".into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        b"lost",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let returned = within(10, ch.wait_for_confirms()).await.unwrap();
    assert_eq!(returned.len(), 1);
    assert_eq!(
        (returned[0].reply_code, returned[0].reply_text.as_str()),
        (312, "NO_ROUTE")
    );
    assert_eq!(returned[0].delivery.data, b"lost");
    delete_exchange(&ch, &x).await;
    close(conn).await;
}

#[tokio::test]
async fn internal_exchange_refuses_publishes_but_routes_bound_traffic() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let src = exchange(&ch, ExchangeKind::Direct).await;
    let ix = unique("internal");
    ch.exchange_declare(
        ix.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_bind(
        ix.as_str().into(),
        src.as_str().into(),
        "k".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = named_queue(&ch, "internal-q").await;
    bind(&ch, &q, &ix, "", FieldTable::default()).await;
    publish(&ch, &src, "k", b"via-internal").await;
    assert_eq!(drain(&ch, &q).await, vec![b"via-internal".to_vec()]);

    let bad = conn.create_channel().await.unwrap();
    let watch = watch_close(&bad).await;
    publish(&bad, &ix, "", b"refused").await;
    assert_eq!(
        watch.closed().await,
        (
            403,
            format!("ACCESS_REFUSED - cannot publish to internal exchange '{ix}' in vhost '/'")
        )
    );
    assert_eq!(message_count(&ch, &q).await, 0);
    delete_queue(&ch, &q).await;
    delete_exchange(&ch, &ix).await;
    delete_exchange(&ch, &src).await;
    close(conn).await;
}

#[tokio::test]
async fn publish_to_missing_exchange_closes_only_that_channel() {
    let conn = connect().await;
    let other_conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let sibling = conn.create_channel().await.unwrap();
    let other = other_conn.create_channel().await.unwrap();
    let watch = watch_close(&ch).await;
    let x = unique("missing");
    publish(&ch, &x, "k", b"m").await;
    assert_eq!(
        watch.closed().await,
        (404, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"))
    );
    assert!(!ch.status().connected());
    // the sibling channel, the connection and other connections are unaffected
    for c in [&sibling, &other] {
        let q = temp_queue(c).await;
        publish(c, "", &q, b"fine").await;
        assert_eq!(drain(c, &q).await, vec![b"fine".to_vec()]);
    }
    assert!(conn.status().connected());
    let fresh = conn.create_channel().await.unwrap();
    fresh.close(200, "bye".into()).await.unwrap();
    close(conn).await;
    close(other_conn).await;
}

#[tokio::test]
async fn publish_to_missing_exchange_in_confirm_mode() {
    let (conn, ch) = open().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let x = unique("missing");
    let r = ch
        .basic_publish(
            x.as_str().into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await;
    assert_amqp_error(
        r,
        404,
        &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"),
    );
    close(conn).await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_with_its_last_binding() {
    let (conn, ch) = open().await;
    let x = unique("x");
    ch.exchange_declare(
        x.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    // never bound: stays
    exchange_exists(&ch, &x).await.unwrap();
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &x, "", FieldTable::default()).await;
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    assert_amqp_error(
        exchange_exists(&ch, &x).await,
        404,
        &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"),
    );
    close(conn).await;
}

#[tokio::test]
async fn unknown_exchange_type_is_a_connection_error() {
    let (conn, ch) = open().await;
    let kind = unique("x-warren-no-such-type");
    let r = ch
        .exchange_declare(
            unique("x").as_str().into(),
            ExchangeKind::Custom(kind.clone()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(
        r,
        503,
        &format!("COMMAND_INVALID - unknown exchange type '{kind}'"),
    );
    // a connection error: the whole connection is gone
    assert!(conn.create_channel().await.is_err());
    assert_broker_alive().await;
}
