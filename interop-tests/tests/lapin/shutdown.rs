//! Warren-only: graceful shutdown. These tests start their own Warren (whatever `AMQP_URL` says),
//! since a test cannot stop a shared broker.

use interop_tests::raw::Raw;
use interop_tests::within;

#[tokio::test]
async fn warren_only_shutdown_closes_connections_with_connection_forced() {
    let dir = std::env::temp_dir().join(format!("warren-shutdown-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = warren::Server::bind(warren::Config::for_test(dir))
        .await
        .expect("bind");
    let addr = server.local_addr().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let (mut a, _) = Raw::open_at(&addr).await;
    a.open_channel(1).await;
    let (mut b, _) = Raw::open_at(&addr).await;

    stop.send(()).expect("server still running");
    for client in [&mut a, &mut b] {
        let close = within(10, client.expect_connection_close()).await;
        assert_eq!(close.reply_code, 320);
        assert_eq!(
            close.reply_text.as_str(),
            "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
        );
        assert!(client.wait_eof(10).await, "socket left open after close-ok");
    }
    within(10, serving)
        .await
        .expect("server task")
        .expect("server result");
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "still accepting after shutdown"
    );
}
