//! Publisher confirms and transactions.

use crate::util::*;
use interop_tests::*;
use lapin::options::*;
use lapin::{BasicProperties, Confirmation};

#[tokio::test]
async fn thousand_publishes_all_confirmed() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    confirm_mode(&ch).await;
    assert!(ch.status().confirm());
    let mut confirms = Vec::new();
    for i in 0..1000 {
        confirms.push(
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                format!("{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap(),
        );
    }
    let results = within(30, futures::future::join_all(confirms)).await;
    assert!(results
        .into_iter()
        .all(|r| r.unwrap() == Confirmation::Ack(None)));
    assert!(within(10, ch.wait_for_confirms()).await.unwrap().is_empty());
    assert_eq!(message_count(&ch, &q).await, 1000);
    close(conn).await;
}

#[tokio::test]
async fn confirm_select_twice_is_fine() {
    let (conn, ch) = open().await;
    confirm_mode(&ch).await;
    confirm_mode(&ch).await;
    close(conn).await;
}

#[tokio::test]
async fn confirm_and_tx_do_not_mix() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    confirm_mode(&ch).await;
    assert_amqp_error(
        ch.tx_select().await,
        406,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
    );
    let ch = conn.create_channel().await.unwrap();
    ch.tx_select().await.unwrap();
    assert_amqp_error(
        ch.confirm_select(ConfirmSelectOptions::default()).await,
        406,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
    );
    close(conn).await;
}

#[tokio::test]
async fn commit_and_rollback_outside_a_transaction_fail() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert_amqp_error(
        ch.tx_commit().await,
        406,
        "PRECONDITION_FAILED - channel is not transactional",
    );
    let ch = conn.create_channel().await.unwrap();
    assert_amqp_error(
        ch.tx_rollback().await,
        406,
        "PRECONDITION_FAILED - channel is not transactional",
    );
    close(conn).await;
}

#[tokio::test]
async fn tx_commit_publishes() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    ch.tx_select().await.unwrap();
    for b in ["a", "b", "c"] {
        publish(&ch, "", &q, b.as_bytes()).await;
    }
    // nothing is enqueued before the commit
    assert!(get(&ch, &q).await.is_none());
    ch.tx_commit().await.unwrap();
    assert_eq!(
        drain(&ch, &q).await,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    // the channel stays transactional: the next publishes wait for the next commit
    publish(&ch, "", &q, b"d").await;
    assert!(get(&ch, &q).await.is_none());
    ch.tx_commit().await.unwrap();
    assert_eq!(drain(&ch, &q).await, vec![b"d".to_vec()]);
    close(conn).await;
}

#[tokio::test]
async fn tx_rollback_discards_publishes() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    ch.tx_select().await.unwrap();
    publish(&ch, "", &q, b"discarded").await;
    ch.tx_rollback().await.unwrap();
    assert!(get(&ch, &q).await.is_none());
    publish(&ch, "", &q, b"kept").await;
    ch.tx_commit().await.unwrap();
    assert_eq!(drain(&ch, &q).await, vec![b"kept".to_vec()]);
    close(conn).await;
}

#[tokio::test]
async fn tx_acks_take_effect_on_commit_only() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    for b in ["a", "b"] {
        publish(&ch, "", &q, b.as_bytes()).await;
    }
    ch.tx_select().await.unwrap();
    let mut tags = Vec::new();
    for _ in 0..2 {
        let m = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        tags.push(m.delivery.delivery_tag);
    }
    // acks rolled back: the messages stay unacked and can be acked again
    ch.basic_ack(tags[1], BasicAckOptions { multiple: true })
        .await
        .unwrap();
    ch.tx_rollback().await.unwrap();
    // ack only the first, commit; close the channel: the second comes back
    ch.basic_ack(tags[0], BasicAckOptions::default())
        .await
        .unwrap();
    ch.tx_commit().await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let ch2 = conn.create_channel().await.unwrap();
    let left = drain_deliveries(&ch2, &q).await;
    assert_eq!(
        left.iter()
            .map(|d| (d.data.clone(), d.redelivered))
            .collect::<Vec<_>>(),
        vec![(b"b".to_vec(), true)]
    );
    ch2.close(200, "bye".into()).await.unwrap();
    close(conn).await;
}

#[tokio::test]
async fn tx_uncommitted_acks_are_undone_by_channel_close() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, b"m").await;
    ch.tx_select().await.unwrap();
    let m = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    m.delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let ch2 = conn.create_channel().await.unwrap();
    assert_eq!(drain(&ch2, &q).await, vec![b"m".to_vec()]);
    ch2.close(200, "bye".into()).await.unwrap();
    close(conn).await;
}
