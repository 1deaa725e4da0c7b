//! One client connection: a task that reads and handles frames, plus a writer task (`writer.rs`).
//!
//! The reading task owns every channel's private state; handling a frame never awaits (queues and
//! exchanges are behind short locks), so one read's worth of frames is handled in a tight loop and
//! publisher confirms are flushed once per read. Everything sent goes through the connection's
//! [`Outbox`], so replies and deliveries keep their order.

mod handshake;
pub(crate) use handshake::RABBITMQ_VERSION;
pub(crate) mod writer;

use crate::auth::Caller;
use crate::broker::Broker;
use crate::channel::Channel;
use crate::channel::{ClientCapabilities, ConnEvent, ConnectionContext, EventSender};
use crate::error::AmqpError;
use crate::outbox::{Out, Outbox};
use crate::queue::Queue;
use crate::vhost::VHost;
use amqp_codec::protocol::{channel as chan, connection as conn};
use amqp_codec::{decode_frame, AMQPClass, Frame};
use bytes::BytesMut;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tracing::{debug, info, warn, Instrument};

/// How long we wait for connection.close-ok after sending connection.close.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(3);
/// After close-ok, how long at most the socket is kept (read and discarded) until the client closes
/// its side: RabbitMQ's `?CLOSING_TIMEOUT`, or the heartbeat timeout if shorter.
const CLOSING_TIMEOUT: Duration = Duration::from_secs(30);
/// The same while the broker shuts down (it waits for its connections only so long).
const SHUTDOWN_CLOSING_TIMEOUT: Duration = Duration::from_secs(1);
/// How often deliveries are checked against their consumer timeout.
const CONSUMER_TIMEOUT_CHECK: Duration = Duration::from_secs(1);

/// What ends the connection's main loop.
enum Stop {
    /// Send connection.close with this error, wait for close-ok, close.
    Error(AmqpError),
    /// The client asked to close and got close-ok.
    ClientClosed,
    /// Socket closed, reset, or heartbeats missed: nothing more to send.
    Gone(String),
    /// The broker is shutting down.
    Shutdown,
}

/// A connection after the handshake.
pub(crate) struct Connection {
    /// What the broker lists of this connection.
    info: Arc<crate::connection_info::ConnectionInfo>,
    id: u64,
    name: String,
    broker: Arc<Broker>,
    reader: Reader,
    buf: BytesMut,
    outbox: Arc<Outbox>,
    vhost: Arc<VHost>,
    user: String,
    /// Who this connection is to the vhost operations (its id and permissions).
    caller: Caller,
    caps: ClientCapabilities,
    frame_max: u32,
    channel_max: u16,
    heartbeat: u16,
    channels: HashMap<u16, Channel>,
    exclusive_queues: Vec<Arc<Queue>>,
    /// Queues that asked this connection to pause publishing (see `flow_pause`).
    congested: Vec<Arc<Queue>>,
    events_tx: EventSender,
    /// Open channels, shared with the broker's registry (per-user channel limits).
    channel_count: Arc<std::sync::atomic::AtomicUsize>,
    events_rx: tokio::sync::mpsc::UnboundedReceiver<ConnEvent>,
    /// It published something: a resource alarm blocks it.
    published: bool,
}

/// The reading side of a client's stream (a TCP socket's, or a TLS session's).
pub(crate) type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// Serves one accepted socket until it closes. Never panics on bad input; logs how it ended.
/// `handshake` is the connection's slot among those in their handshake, given back when the
/// handshake ends.
pub(crate) async fn serve(
    socket: TcpStream,
    peer: SocketAddr,
    handshake: OwnedSemaphorePermit,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let local = socket.local_addr().unwrap_or(peer);
    let _ = socket.set_nodelay(true);
    let (reader, write_half) = socket.into_split();
    let stream = Stream {
        peer,
        local,
        tls: None,
        handshake,
    };
    serve_stream(Box::new(reader), write_half, stream, broker, shutdown).await;
}

/// Serves one socket accepted on an amqps listener: the TLS handshake first (bounded by the
/// handshake timeout; a client that fails it, such as a plain AMQP client, is logged and dropped
/// without disturbing anything else), then AMQP as on a plain socket.
pub(crate) async fn serve_tls(
    socket: TcpStream,
    peer: SocketAddr,
    handshake: OwnedSemaphorePermit,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let local = socket.local_addr().unwrap_or(peer);
    let _ = socket.set_nodelay(true);
    let Some(certs) = broker.tls.get() else {
        return;
    };
    let acceptor = certs.acceptor();
    let limit = Duration::from_secs(broker.config.tls_handshake_timeout);
    let tls = match tokio::time::timeout(limit, acceptor.accept(socket)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            warn!("TLS handshake with {peer} -> {local} failed: {e}");
            return;
        }
        Err(_) => {
            warn!("TLS handshake with {peer} -> {local} timed out");
            return;
        }
    };
    let stream = Stream {
        peer,
        local,
        tls: Some(crate::tls::peer_certificate(&tls)),
        handshake,
    };
    let (reader, writer) = tokio::io::split(tls);
    serve_stream(Box::new(reader), writer, stream, broker, shutdown).await;
}

/// What a connection's transport is.
struct Stream {
    peer: SocketAddr,
    local: SocketAddr,
    /// TLS, with the client's certificate if it presented one; None: plain TCP.
    tls: Option<Option<rustls::pki_types::CertificateDer<'static>>>,
    /// Its slot among the connections in their handshake.
    handshake: OwnedSemaphorePermit,
}

async fn serve_stream<W: tokio::io::AsyncWrite + Send + Unpin + 'static>(
    reader: Reader,
    write_half: W,
    stream: Stream,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let Stream {
        peer,
        local,
        tls,
        handshake: handshake_slot,
    } = stream;
    let id = broker.next_connection_id();
    let name = format!("{peer} -> {local}");
    let span = tracing::info_span!("connection", id, name = %name);
    async move {
        info!(
            "accepting AMQP connection{}",
            if tls.is_some() { " (TLS)" } else { "" }
        );
        let (outbox, rx) = Outbox::new();
        let heartbeat = Arc::new(AtomicU32::new(0));
        let writer = tokio::spawn(
            writer::run_writer(write_half, outbox.clone(), rx, heartbeat.clone()).in_current_span(),
        );
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let channel_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut hs = handshake::Handshake {
            id,
            events: &events_tx,
            channel_count: &channel_count,
            broker: &broker,
            reader,
            // Small until the client has logged in: a slowloris holds little.
            buf: BytesMut::with_capacity(1024),
            outbox: &outbox,
            peer,
            local,
            peer_certificate: tls.as_ref().map(|cert| cert.as_ref()),
        };
        let timeout = Duration::from_secs(broker.config.handshake_timeout);
        let result = match tokio::time::timeout(timeout, hs.run()).await {
            Ok(r) => r,
            Err(_) => Err(handshake::Failed::Silent(format!(
                "handshake timeout after {}s",
                broker.config.handshake_timeout
            ))),
        };
        let handshake::Handshake { reader, buf, .. } = hs;
        drop(handshake_slot);
        match result {
            Ok(done) => {
                heartbeat.store(done.heartbeat as u32, std::sync::atomic::Ordering::Relaxed);
                outbox.set_frame_max(done.frame_max);
                info!(user = %done.user, vhost = %done.vhost.name, "user '{}' authenticated and granted access to vhost '{}'", done.user, done.vhost.name);
                let mut c = Connection {
                    info: done.info,
                    id,
                    name,
                    broker: broker.clone(),
                    reader,
                    buf,
                    outbox: outbox.clone(),
                    vhost: done.vhost,
                    user: done.user,
                    caller: Caller {
                        connection: Some(id),
                        grant: Some(done.grant),
                    },
                    caps: done.caps,
                    frame_max: done.frame_max,
                    channel_max: done.channel_max,
                    heartbeat: done.heartbeat,
                    channels: HashMap::new(),
                    exclusive_queues: Vec::new(),
                    congested: Vec::new(),
                    events_tx,
                    events_rx,
                    channel_count,
                    published: false,
                };
                // Registered by the handshake when it admitted the connection (limits).
                let limit = c.run(shutdown).await;
                broker.unregister_connection(id);
                if let Some(limit) = limit {
                    linger(c.reader, limit).await;
                }
            }
            Err(handshake::Failed::Silent(why)) => {
                warn!("closing AMQP connection: {why}");
                outbox.send(Out::Close);
            }
            Err(handshake::Failed::Close(e, why)) => {
                warn!("closing AMQP connection: {why}");
                send_connection_close(&outbox, &e);
                outbox.send(Out::Close);
                // Whatever the client sends now (close-ok, or frames it had buffered) is ignored.
                linger(reader, CLOSE_OK_TIMEOUT).await;
            }
        }
        let _ = writer.await;
    }
    .instrument(span)
    .await
}

fn send_connection_close(outbox: &Outbox, e: &AmqpError) {
    outbox.method(
        0,
        AMQPClass::Connection(conn::AMQPMethod::Close(conn::Close {
            reply_code: e.code.code(),
            reply_text: e.reply_text().into(),
            class_id: e.class_id,
            method_id: e.method_id,
        })),
    );
}

/// After the last frame (close-ok, or connection.close for a refused handshake) went out and the
/// writer half-closed the socket: reads and discards whatever the client still sends until it
/// closes its side, at most `limit`, and only then lets the socket go. Closing a socket with
/// unread bytes in it makes the kernel answer with a reset, which a client that wrote frames
/// after its connection.close (amqplib does) sees as EPIPE/ECONNRESET instead of a clean close;
/// RabbitMQ's reader does the same wait.
async fn linger(mut reader: Reader, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        let mut scratch = [0u8; 4096];
        while matches!(reader.read(&mut scratch).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// What a channel's handlers get from their connection, built from the connection's fields
/// one by one, so that a channel borrowed from `channels` can be handed it (`Connection::context`
/// borrows the whole connection).
macro_rules! context {
    ($c:expr) => {
        ConnectionContext {
            vhost: &$c.vhost,
            id: $c.id,
            user: &$c.user,
            caller: &$c.caller,
            exclusive_queues: &mut $c.exclusive_queues,
            events: &$c.events_tx,
            congested: &mut $c.congested,
        }
    };
}

impl Connection {
    /// Runs the connection until it ends; hands back the socket's read half if the client may
    /// still be sending (see [`linger`]), with how long to wait for it.
    async fn run(&mut self, mut shutdown: watch::Receiver<bool>) -> Option<Duration> {
        let stop = self.main_loop(&mut shutdown).await;
        let closing = match self.heartbeat {
            0 => CLOSING_TIMEOUT,
            hb => CLOSING_TIMEOUT.min(Duration::from_secs(hb as u64)),
        };
        let linger = match &stop {
            Stop::Gone(_) => None,
            Stop::Shutdown => Some(SHUTDOWN_CLOSING_TIMEOUT),
            _ => Some(closing),
        };
        match stop {
            Stop::ClientClosed => info!("closing AMQP connection (client request)"),
            Stop::Gone(why) => warn!("closing AMQP connection: {why}"),
            Stop::Error(e) => {
                warn!("closing AMQP connection: connection error {}", e);
                send_connection_close(&self.outbox, &e);
                self.await_close_ok().await;
            }
            Stop::Shutdown => {
                info!("closing AMQP connection: broker shutting down");
                let e = AmqpError::new(
                    amqp_codec::ReplyCode::ConnectionForced,
                    "broker forced connection closure with reason 'shutdown'",
                );
                send_connection_close(&self.outbox, &e);
                self.await_close_ok().await;
            }
        }
        self.cleanup();
        self.outbox.send(Out::Close);
        linger
    }

    async fn main_loop(&mut self, shutdown: &mut watch::Receiver<bool>) -> Stop {
        let idle = match self.heartbeat {
            0 => None,
            hb => Some(Duration::from_secs(hb as u64 * 2)),
        };
        // Consumer timeouts are checked once a second while channels are open.
        let mut timeouts = tokio::time::interval(CONSUMER_TIMEOUT_CHECK);
        timeouts.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.published && self.broker.alarms.active() {
                if let Err(stop) = self.stay_blocked(shutdown).await {
                    return stop;
                }
            }
            loop {
                match decode_frame(&mut self.buf, self.frame_max) {
                    Ok(Some(frame)) => {
                        if let Err(stop) = self.handle_frame(frame) {
                            return stop;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.buf.clear();
                        return Stop::Error(crate::reply_text::frame_error(&e));
                    }
                }
            }
            for ch in self.channels.values_mut() {
                ch.flush_confirms();
            }
            if !self.congested.is_empty() {
                if let Err(stop) = self.flow_pause(shutdown).await {
                    return stop;
                }
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 * 1024);
            }
            let check_timeouts = !self.channels.is_empty();
            let read = self.reader.read_buf(&mut self.buf);
            let res = tokio::select! {
                _ = timeouts.tick(), if check_timeouts => {
                    if let Err(stop) = self.check_consumer_timeouts() {
                        return stop;
                    }
                    continue;
                }
                r = async {
                    match idle {
                        Some(d) => tokio::time::timeout(d, read).await.ok(),
                        None => Some(read.await),
                    }
                } => r,
                Some(event) = self.events_rx.recv() => {
                    // read_buf is cancel safe: nothing was read if this branch won.
                    if let Err(stop) = self.handle_event(event) {
                        return stop;
                    }
                    while let Ok(event) = self.events_rx.try_recv() {
                        if let Err(stop) = self.handle_event(event) {
                            return stop;
                        }
                    }
                    continue;
                }
                _ = shutdown.changed() => return Stop::Shutdown,
            };
            match res {
                None => {
                    return Stop::Gone(format!(
                        "missed heartbeats from client, timeout: {}s",
                        self.heartbeat
                    ))
                }
                Some(Ok(0)) => {
                    return Stop::Gone("client unexpectedly closed TCP connection".into())
                }
                Some(Ok(n)) => self.info.received.add(n),
                Some(Err(e)) => return Stop::Gone(format!("socket error: {e}")),
            }
        }
    }

    /// Publisher flow control (`queue::flow`): after a read that published to queues whose
    /// consumers lag a little, the socket is not read until they catch up (given up after
    /// `STALL` without a delivery, or `MAX_PAUSE` in all), so TCP slows the publisher. Not when
    /// this connection consumes itself (it may be what the queue waits for); store events
    /// (confirms) are still handled meanwhile.
    async fn flow_pause(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), Stop> {
        let queues = std::mem::take(&mut self.congested);
        if self.channels.values().any(|ch| ch.has_consumers()) {
            return Ok(());
        }
        // One deadline for the whole pause: a fanout to many lagging queues waits no longer.
        let until = tokio::time::Instant::now() + crate::queue::flow::MAX_PAUSE;
        for q in &queues {
            loop {
                let cleared = q.flow.cleared();
                tokio::pin!(cleared);
                cleared.as_mut().enable();
                if !q.flow.congested() {
                    break;
                }
                let progress = q.flow.progress();
                tokio::select! {
                    _ = &mut cleared => {}
                    _ = tokio::time::sleep(crate::queue::flow::STALL) => {
                        if q.flow.progress() == progress || tokio::time::Instant::now() >= until {
                            q.flow.give_up();
                        }
                    }
                    Some(event) = self.events_rx.recv() => {
                        self.handle_event(event)?;
                        for ch in self.channels.values_mut() {
                            ch.flush_confirms();
                        }
                    }
                    _ = shutdown.changed() => return Err(Stop::Shutdown),
                }
            }
        }
        self.congested = queues;
        self.congested.clear();
        Ok(())
    }

    /// After sending connection.close: discard frames until close-ok (or close), bounded in time.
    async fn await_close_ok(&mut self) {
        let fm = self.frame_max;
        let _ = tokio::time::timeout(CLOSE_OK_TIMEOUT, async {
            loop {
                loop {
                    match decode_frame(&mut self.buf, fm) {
                        Ok(Some(Frame::Method(
                            0,
                            AMQPClass::Connection(conn::AMQPMethod::CloseOk(_)),
                        ))) => return,
                        Ok(Some(Frame::Method(
                            0,
                            AMQPClass::Connection(conn::AMQPMethod::Close(_)),
                        ))) => {
                            self.outbox.method(
                                0,
                                AMQPClass::Connection(conn::AMQPMethod::CloseOk(conn::CloseOk {})),
                            );
                            return;
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => {
                            self.buf.clear();
                            break;
                        }
                    }
                }
                match self.reader.read_buf(&mut self.buf).await {
                    Ok(n) if n > 0 => {}
                    _ => return,
                }
            }
        })
        .await;
    }

    /// While a resource alarm lasts, a publishing connection is not read (RabbitMQ's blocking);
    /// clients that support it are told with connection.blocked and connection.unblocked. Store
    /// events (confirms) still flow.
    async fn stay_blocked(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), Stop> {
        let reason = self.broker.alarms.reason();
        warn!("connection blocked: a resource alarm is in effect ({reason})");
        if self.caps.connection_blocked {
            self.outbox.method(
                0,
                AMQPClass::Connection(conn::AMQPMethod::Blocked(conn::Blocked {
                    reason: reason.into(),
                })),
            );
        }
        let mut alarm = self.broker.alarms.subscribe();
        while *alarm.borrow_and_update() {
            tokio::select! {
                r = alarm.changed() => {
                    if r.is_err() {
                        break;
                    }
                }
                Some(event) = self.events_rx.recv() => self.handle_event(event)?,
                _ = shutdown.changed() => return Err(Stop::Shutdown),
            }
        }
        if self.caps.connection_blocked {
            self.outbox.method(
                0,
                AMQPClass::Connection(conn::AMQPMethod::Unblocked(conn::Unblocked {})),
            );
        }
        info!("connection unblocked: resource alarm cleared");
        Ok(())
    }

    /// Cancels consumers (or closes channels) holding deliveries past their consumer timeout.
    fn check_consumer_timeouts(&mut self) -> Result<(), Stop> {
        let now = crate::message::now_ms();
        let default = self.broker.config.consumer_timeout;
        let ids: Vec<u16> = self.channels.keys().copied().collect();
        for id in ids {
            let Some(mut ch) = self.channels.remove(&id) else {
                continue;
            };
            let vhost = self.vhost.clone();
            match ch.check_consumer_timeouts(now, default, &vhost) {
                None => {
                    self.channels.insert(id, ch);
                }
                Some(e) => self.channel_outcome(id, ch, Err(e))?,
            }
        }
        Ok(())
    }

    fn handle_event(&mut self, event: ConnEvent) -> Result<(), Stop> {
        match event {
            ConnEvent::Confirmed {
                channel,
                instance,
                seq,
                ok,
            } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.confirmed(instance, seq, ok);
                }
                Ok(())
            }
            ConnEvent::Close(e) => Err(Stop::Error(e)),
            ConnEvent::GetAnswered { channel, instance } => {
                let held = match self.channels.get_mut(&channel) {
                    Some(ch) => ch.get_answered(instance),
                    None => return Ok(()),
                };
                for frame in held {
                    self.handle_frame(frame)?;
                }
                Ok(())
            }
            ConnEvent::Committed {
                channel,
                instance,
                ok,
            } => {
                let Some(mut ch) = self.channels.remove(&channel) else {
                    return Ok(());
                };
                let (result, held) = ch.committed(instance, ok);
                self.channel_outcome(channel, ch, result.map(|()| crate::channel::After::Keep))?;
                for frame in held {
                    self.handle_frame(frame)?;
                }
                Ok(())
            }
        }
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), Stop> {
        let channel = frame.channel();
        if let Frame::Method(
            _,
            AMQPClass::Basic(amqp_codec::protocol::basic::AMQPMethod::Publish(_)),
        ) = &frame
        {
            self.published = true;
        }
        if channel == 0 {
            return match frame {
                Frame::Heartbeat(_) => Ok(()),
                Frame::Method(_, AMQPClass::Connection(m)) => self.handle_connection_method(m),
                Frame::Method(_, m) => Err(Stop::Error(
                    AmqpError::channel_error("unexpected method in connection state running")
                        .on_method(m.get_amqp_class_id(), m.get_amqp_method_id()),
                )),
                _ => Err(Stop::Error(AmqpError::unexpected_frame(
                    "expected method frame, got non method frame instead",
                ))),
            };
        }
        if let Frame::Heartbeat(_) = frame {
            return Err(Stop::Error(AmqpError::unexpected_frame(
                "type 8, all octets = <<>>",
            )));
        }
        // Handled in place: taking the channel out of the map and putting it back cost two
        // hashes and two moves of the whole channel per frame (15 % of a persistent publish's
        // instructions). Only an outcome other than "keep" takes it out (`channel_outcome`).
        let result = {
            let Some(ch) = self.channels.get_mut(&channel) else {
                return self.handle_unopened_channel(channel, frame);
            };
            if ch.is_waiting() {
                ch.hold(frame);
                return Ok(());
            }
            ch.handle_frame(&mut context!(self), frame)
        };
        match result {
            Ok(crate::channel::After::Keep) => Ok(()),
            other => {
                let ch = self.channels.remove(&channel).expect("present");
                self.channel_outcome(channel, ch, other)
            }
        }
    }

    /// Puts a channel back after it handled something, turning an error into channel.close or
    /// connection.close by RabbitMQ's rule. The one place where errors become closes.
    fn channel_outcome(
        &mut self,
        channel: u16,
        mut ch: Channel,
        result: crate::error::AmqpResult<crate::channel::After>,
    ) -> Result<(), Stop> {
        match result {
            Ok(crate::channel::After::Keep) => {
                self.channels.insert(channel, ch);
                Ok(())
            }
            Ok(crate::channel::After::Remove) => {
                self.channel_count
                    .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                self.info.remove_channel(channel);
                Ok(())
            }
            Err(e) if e.closes_connection(channel) => {
                warn!(channel, "connection error on channel {channel}: {e}");
                self.channels.insert(channel, ch);
                Err(Stop::Error(e))
            }
            Err(e) => {
                warn!(channel, "channel error on channel {channel}: {e}");
                ch.close_with_error(&mut self.context(), e);
                self.channels.insert(channel, ch);
                Ok(())
            }
        }
    }

    fn handle_unopened_channel(&mut self, channel: u16, frame: Frame) -> Result<(), Stop> {
        match frame {
            Frame::Method(_, AMQPClass::Channel(chan::AMQPMethod::Open(_))) => {
                // RabbitMQ 3.10 limits how many channels are open, not their numbers.
                if self.channels.len() >= self.channel_max as usize {
                    return Err(Stop::Error(
                        AmqpError::not_allowed(format!(
                            "number of channels opened ({}) has reached the negotiated channel_max ({})",
                            self.channels.len(),
                            self.channel_max
                        )),
                    ));
                }
                self.broker
                    .admit_channel(&self.user, &self.channel_count)
                    .map_err(Stop::Error)?;
                let link = crate::channel::shared::ChannelLink {
                    id: channel,
                    connection_id: self.id,
                    outbox: self.outbox.clone(),
                    events: self.events_tx.clone(),
                    cancel_notify: self.caps.consumer_cancel_notify,
                };
                let ch = Channel::new(link, self.broker.config.max_message_size);
                self.info.add_channel(ch.shared().clone());
                self.outbox.method(
                    channel,
                    AMQPClass::Channel(chan::AMQPMethod::OpenOk(chan::OpenOk {})),
                );
                debug!(channel, "channel opened");
                self.channels.insert(channel, ch);
                Ok(())
            }
            // A close-ok for a channel we already forgot, or a close crossing ours: harmless.
            Frame::Method(_, AMQPClass::Channel(chan::AMQPMethod::CloseOk(_))) => Ok(()),
            Frame::Method(_, m) => Err(Stop::Error(
                AmqpError::channel_error("expected 'channel.open'")
                    .on_method(m.get_amqp_class_id(), m.get_amqp_method_id()),
            )),
            _ => Err(Stop::Error(AmqpError::channel_error(
                "expected 'channel.open'",
            ))),
        }
    }

    fn handle_connection_method(&mut self, m: conn::AMQPMethod) -> Result<(), Stop> {
        match m {
            conn::AMQPMethod::Close(c) => {
                debug!(code = c.reply_code, text = %c.reply_text.as_str(), "client closed the connection");
                // Released before close-ok goes out, as RabbitMQ has by then: a client that
                // reconnects at once finds its place under the connection limits free, its
                // exclusive queues gone and its unacked messages back in their queues.
                self.cleanup();
                self.broker.unregister_connection(self.id);
                self.outbox.method(
                    0,
                    AMQPClass::Connection(conn::AMQPMethod::CloseOk(conn::CloseOk {})),
                );
                Err(Stop::ClientClosed)
            }
            conn::AMQPMethod::CloseOk(_) => Err(Stop::ClientClosed),
            conn::AMQPMethod::Blocked(_) | conn::AMQPMethod::Unblocked(_) => Ok(()),
            conn::AMQPMethod::UpdateSecret(u) => {
                // RabbitMQ 3.10's internal backend keeps no secret state that can expire: it
                // accepts any new secret without checking it, and logs the reason.
                self.outbox.method(
                    0,
                    AMQPClass::Connection(conn::AMQPMethod::UpdateSecretOk(
                        conn::UpdateSecretOk {},
                    )),
                );
                info!(
                    "connection {}: user '{}' updated secret, reason: {}",
                    self.name,
                    self.user,
                    u.reason.as_str()
                );
                Ok(())
            }
            other => {
                let m = AMQPClass::Connection(other);
                Err(Stop::Error(
                    AmqpError::channel_error("unexpected method in connection state running")
                        .on_method(10, m.get_amqp_method_id()),
                ))
            }
        }
    }

    /// What channel handlers need from the connection.
    fn context(&mut self) -> ConnectionContext<'_> {
        context!(self)
    }

    /// Releases everything the connection holds: channels (requeueing their unacked messages and
    /// cancelling their consumers) and exclusive queues.
    fn cleanup(&mut self) {
        let channels: Vec<Channel> = self.channels.drain().map(|(_, ch)| ch).collect();
        let mut ctx = self.context();
        for mut ch in channels {
            ch.release(&mut ctx);
        }
        for q in self.exclusive_queues.drain(..) {
            self.vhost.delete_queue(&q);
        }
        debug!(name = %self.name, "connection state released");
    }
}
