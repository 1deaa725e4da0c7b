//! A tiny raw-frame AMQP 0-9-1 client over a plain `tokio::net::TcpStream`, for malformed-input
//! tests. Methods are encoded and decoded with lapin's protocol definitions; anything else
//! (garbage, bad frame ends, oversized frames) is written byte by byte.

use std::time::Duration;

use lapin::protocol::{self, connection, AMQPClass};
use lapin::types::{FieldTable, LongString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The AMQP 0-9-1 protocol header.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// Frame type of a method frame.
pub const FRAME_METHOD: u8 = 1;
/// Frame type of a content header frame.
pub const FRAME_HEADER: u8 = 2;
/// Frame type of a content body frame.
pub const FRAME_BODY: u8 = 3;
/// Frame type of a heartbeat frame.
pub const FRAME_HEARTBEAT: u8 = 8;
/// The octet that ends every frame.
pub const FRAME_END: u8 = 0xCE;

/// One frame as read from the socket.
#[derive(Debug)]
pub struct Frame {
    /// Frame type (`FRAME_METHOD`, ...).
    pub kind: u8,
    /// Channel number.
    pub channel: u16,
    /// The payload, without the frame-end octet.
    pub payload: Vec<u8>,
}

/// What the server sent during the handshake.
#[derive(Debug)]
pub struct Handshake {
    /// connection.start.
    pub start: connection::Start,
    /// connection.tune.
    pub tune: connection::Tune,
}

/// A raw connection to the broker.
pub struct Raw {
    stream: TcpStream,
}

/// Encodes one method as a frame payload.
pub fn encode_method(class: &AMQPClass) -> Vec<u8> {
    protocol::gen_class::<Vec<u8>>(class)(Vec::new().into())
        .expect("encode method")
        .write
}

/// Encodes a whole frame.
pub fn frame(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.push(kind);
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f.push(end);
    f
}

impl Raw {
    /// Opens a TCP connection to the broker (nothing sent yet).
    pub async fn connect() -> Raw {
        Raw::connect_to(&crate::broker_addr()).await
    }

    /// Opens a TCP connection to the broker at `addr` (host:port).
    pub async fn connect_to(addr: &str) -> Raw {
        let stream = crate::within(10, TcpStream::connect(addr))
            .await
            .expect("tcp connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw { stream }
    }

    /// Connects and runs the handshake up to connection.open-ok, with the URL's credentials.
    pub async fn open() -> (Raw, Handshake) {
        Raw::open_at(&crate::broker_addr()).await
    }

    /// Like [`Raw::open`], to the broker at `addr` (host:port).
    pub async fn open_at(addr: &str) -> (Raw, Handshake) {
        let (user, pass, vhost) = crate::credentials();
        Raw::open_as(addr, &user, &pass, &vhost).await
    }

    /// Like [`Raw::open_at`], logging in as `user` with `pass` to `vhost`.
    pub async fn open_as(addr: &str, user: &str, pass: &str, vhost: &str) -> (Raw, Handshake) {
        let mut r = Raw::connect_to(addr).await;
        r.send(PROTOCOL_HEADER).await;
        let start = match r.read_method().await {
            Some((0, AMQPClass::Connection(connection::AMQPMethod::Start(s)))) => s,
            other => panic!("expected connection.start, got {other:?}"),
        };
        r.send_method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from(format!("\0{user}\0{pass}")),
                locale: "en_US".into(),
            })),
        )
        .await;
        let tune = match r.read_method().await {
            Some((0, AMQPClass::Connection(connection::AMQPMethod::Tune(t)))) => t,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        r.send_method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
                heartbeat: 0,
            })),
        )
        .await;
        r.send_method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: vhost.into(),
            })),
        )
        .await;
        match r.read_method().await {
            Some((0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
        (r, Handshake { start, tune })
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Writes one method frame.
    pub async fn send_method(&mut self, channel: u16, class: &AMQPClass) {
        let payload = encode_method(class);
        self.send(&frame(FRAME_METHOD, channel, &payload, FRAME_END))
            .await;
    }

    /// Opens a channel and waits for channel.open-ok.
    pub async fn open_channel(&mut self, channel: u16) {
        self.send_method(
            channel,
            &AMQPClass::Channel(protocol::channel::AMQPMethod::Open(
                protocol::channel::Open {},
            )),
        )
        .await;
        match self.read_method().await {
            Some((c, AMQPClass::Channel(protocol::channel::AMQPMethod::OpenOk(_))))
                if c == channel => {}
            other => panic!("expected channel.open-ok on {channel}, got {other:?}"),
        }
    }

    /// Publishes `body` (no properties) with basic.publish, a content header and one body frame.
    pub async fn publish(&mut self, channel: u16, exchange: &str, routing_key: &str, body: &[u8]) {
        let method = encode_method(&AMQPClass::Basic(protocol::basic::AMQPMethod::Publish(
            protocol::basic::Publish {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
                mandatory: false,
                immediate: false,
            },
        )));
        let mut header = Vec::new();
        header.extend_from_slice(&60u16.to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        header.extend_from_slice(&(body.len() as u64).to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        let mut bytes = frame(FRAME_METHOD, channel, &method, FRAME_END);
        bytes.extend(frame(FRAME_HEADER, channel, &header, FRAME_END));
        if !body.is_empty() {
            bytes.extend(frame(FRAME_BODY, channel, body, FRAME_END));
        }
        self.send(&bytes).await;
    }

    /// Reads exactly `n` bytes; `None` on end of stream. At most 10 s.
    pub async fn read_bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0; n];
        match crate::within(10, self.stream.read_exact(&mut buf)).await {
            Ok(_) => Some(buf),
            Err(_) => None,
        }
    }

    /// Reads one frame; `None` on end of stream.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        let head = self.read_bytes(7).await?;
        let kind = head[0];
        let channel = u16::from_be_bytes([head[1], head[2]]);
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        let mut rest = self.read_bytes(size + 1).await?;
        assert_eq!(rest.pop(), Some(FRAME_END), "frame end from the server");
        Some(Frame {
            kind,
            channel,
            payload: rest,
        })
    }

    /// Reads the next method frame (skipping heartbeats); `None` on end of stream.
    pub async fn read_method(&mut self) -> Option<(u16, AMQPClass)> {
        loop {
            let f = self.read_frame().await?;
            match f.kind {
                FRAME_HEARTBEAT => continue,
                FRAME_METHOD => {
                    let (_, class) = protocol::parse_class(&f.payload[..])
                        .unwrap_or_else(|e| panic!("undecodable method from server: {e:?}"));
                    return Some((f.channel, class));
                }
                k => panic!("expected a method frame, got frame type {k}"),
            }
        }
    }

    /// Expects connection.close from the server, answers close-ok; returns the close.
    pub async fn expect_connection_close(&mut self) -> connection::Close {
        match self.read_method().await {
            Some((0, AMQPClass::Connection(connection::AMQPMethod::Close(c)))) => {
                self.send_method(
                    0,
                    &AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                )
                .await;
                c
            }
            other => panic!("expected connection.close, got {other:?}"),
        }
    }

    /// True when the server closes the socket within `secs` seconds (anything it sends first is
    /// discarded).
    pub async fn wait_eof(&mut self, secs: u64) -> bool {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}
