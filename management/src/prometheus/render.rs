//! The text exposition (format 0.0.4) of a [`MetricsSnapshot`], family by family in RabbitMQ
//! 3.10.8's order, for the three registries. Everything is written into one `String`; the only
//! other allocation is a scratch buffer reused for floats.

use crate::metrics::{ChannelFigures, ConnectionFigures, MetricsSnapshot, QueueFigures};
use std::fmt::Write;

/// Which of the plugin's registries a scrape asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registry {
    /// `/metrics`: per-object families summed into one unlabelled series.
    Aggregated,
    /// `/metrics/per-object`: one series per queue, channel, connection.
    PerObject,
    /// `/metrics/detailed`: only the requested groups, `rabbitmq_detailed_` prefix.
    Detailed,
}

/// `/metrics/detailed`'s query: the groups asked for and the vhosts the queue groups keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DetailedQuery {
    /// `family=` values, in request order (repeats allowed; unknown names are ignored).
    pub(crate) families: Vec<String>,
    /// `vhost=` values; empty means every vhost.
    pub(crate) vhosts: Vec<String>,
}

impl DetailedQuery {
    /// Parses a raw query string (`family=a&family=b&vhost=%2F`); other parameters are ignored.
    pub(crate) fn parse(query: &str) -> Self {
        let mut q = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match percent_decode(k).as_str() {
                "family" => q.families.push(percent_decode(v)),
                "vhost" => q.vhosts.push(percent_decode(v)),
                _ => {}
            }
        }
        q
    }

    fn wants(&self, group: &str) -> bool {
        self.families.iter().any(|f| f == group)
    }

    fn keeps(&self, q: &QueueFigures) -> bool {
        self.vhosts.is_empty() || self.vhosts.contains(&q.vhost)
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space); a bad escape is kept as is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).and_then(|&c| (c as char).to_digit(16));
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(h), Some(l)) => {
                // Two hex digits: at most 0xff.
                out.push((h * 16 + l) as u8);
                i += 2;
            }
            (c, _, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Families

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Untyped,
}

/// A metric family: its name without the `rabbitmq_` prefix, its type and HELP text.
#[derive(Debug, Clone, Copy)]
struct Fam {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Fam {
    Fam {
        name,
        kind: Kind::Counter,
        help,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Fam {
    Fam {
        name,
        kind: Kind::Gauge,
        help,
    }
}

const fn untyped(name: &'static str, help: &'static str) -> Fam {
    Fam {
        name,
        kind: Kind::Untyped,
        help,
    }
}

/// A sample's value, printed as RabbitMQ prints it: integers bare, floats the Erlang way.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Val {
    Int(u64),
    Float(f64),
}

impl std::ops::Add for Val {
    type Output = Val;
    fn add(self, o: Val) -> Val {
        match (self, o) {
            (Val::Int(a), Val::Int(b)) => Val::Int(a.saturating_add(b)),
            (a, b) => Val::Float(a.as_f64() + b.as_f64()),
        }
    }
}

impl Val {
    fn as_f64(self) -> f64 {
        match self {
            Val::Int(i) => i as f64,
            Val::Float(f) => f,
        }
    }
}

/// A node-wide family with one unlabelled series.
type Scalar = (Fam, fn(&MetricsSnapshot) -> Val);

/// A per-queue family; `summed`: whether `/metrics` prints the sum (RabbitMQ prints no series
/// for three of them there).
struct QueueFam {
    fam: Fam,
    get: fn(&QueueFigures) -> Val,
    summed: bool,
}

/// A per-channel family.
type ChanFam = (Fam, fn(&ChannelFigures) -> u64);

/// A per-connection family (labelled `channel`, as RabbitMQ 3.10 does).
type ConnFam = (Fam, fn(&ConnectionFigures) -> u64);

const fn q(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    get: fn(&QueueFigures) -> Val,
    summed: bool,
) -> QueueFam {
    QueueFam {
        fam: Fam { name, kind, help },
        get,
        summed,
    }
}

fn zero<T>(_: &T) -> Val {
    Val::Int(0)
}

fn zero_u64<T>(_: &T) -> u64 {
    0
}

const ALARMS: [Scalar; 3] = [
    (
        untyped(
            "alarms_file_descriptor_limit",
            "is 1 if file descriptor limit alarm is in effect",
        ),
        zero,
    ),
    (
        untyped(
            "alarms_free_disk_space_watermark",
            "is 1 if free disk space watermark alarm is in effect",
        ),
        |s| Val::Int(s.node_figures.disk_alarm.into()),
    ),
    (
        untyped(
            "alarms_memory_used_watermark",
            "is 1 if VM memory watermark alarm is in effect",
        ),
        |s| Val::Int(s.node_figures.memory_alarm.into()),
    ),
];

/// Group `connection_churn_metrics`.
const CHURN: [Scalar; 7] = [
    (
        counter(
            "connections_opened_total",
            "Total number of connections opened",
        ),
        |s| Val::Int(s.churn.connections_opened),
    ),
    (
        counter(
            "connections_closed_total",
            "Total number of connections closed or terminated",
        ),
        |s| Val::Int(s.churn.connections_closed),
    ),
    (
        counter("channels_opened_total", "Total number of channels opened"),
        |s| Val::Int(s.churn.channels_opened),
    ),
    (
        counter("channels_closed_total", "Total number of channels closed"),
        |s| Val::Int(s.churn.channels_closed),
    ),
    (
        counter("queues_declared_total", "Total number of queues declared"),
        |s| Val::Int(s.churn.queues_declared),
    ),
    (
        counter("queues_created_total", "Total number of queues created"),
        |s| Val::Int(s.churn.queues_created),
    ),
    (
        counter("queues_deleted_total", "Total number of queues deleted"),
        |s| Val::Int(s.churn.queues_deleted),
    ),
];

/// Group `node_coarse_metrics`.
const NODE_COARSE: [Scalar; 8] = [
    (gauge("process_open_fds", "Open file descriptors"), |s| {
        Val::Int(s.node_figures.open_fds)
    }),
    (gauge("process_open_tcp_sockets", "Open TCP sockets"), |s| {
        Val::Int(s.node_figures.open_sockets)
    }),
    (
        gauge("process_resident_memory_bytes", "Memory used in bytes"),
        |s| Val::Int(s.node_figures.resident_memory),
    ),
    (
        gauge(
            "disk_space_available_bytes",
            "Disk space available in bytes",
        ),
        |s| Val::Int(s.node_figures.disk_free),
    ),
    (
        gauge("erlang_processes_used", "Erlang processes used"),
        zero,
    ),
    (
        counter(
            "erlang_gc_runs_total",
            "Total number of Erlang garbage collector runs",
        ),
        zero,
    ),
    (
        counter(
            "erlang_gc_reclaimed_bytes_total",
            "Total number of bytes of memory reclaimed by Erlang garbage collector",
        ),
        zero,
    ),
    (
        counter(
            "erlang_scheduler_context_switches_total",
            "Total number of Erlang scheduler context switches",
        ),
        zero,
    ),
];

/// Group `node_metrics`.
const NODE: [Scalar; 8] = [
    (
        gauge("process_max_fds", "Open file descriptors limit"),
        |s| Val::Int(s.node_figures.max_fds),
    ),
    (
        gauge("process_max_tcp_sockets", "Open TCP sockets limit"),
        |s| Val::Int(s.node_figures.max_sockets),
    ),
    (
        gauge(
            "resident_memory_limit_bytes",
            "Memory high watermark in bytes",
        ),
        |s| Val::Int(s.node_figures.memory_limit),
    ),
    (
        gauge(
            "disk_space_available_limit_bytes",
            "Free disk space low watermark in bytes",
        ),
        |s| Val::Int(s.node_figures.disk_free_limit),
    ),
    (
        gauge("erlang_processes_limit", "Erlang processes limit"),
        zero,
    ),
    (
        gauge("erlang_scheduler_run_queue", "Erlang scheduler run queue"),
        zero,
    ),
    (
        gauge(
            "erlang_net_ticktime_seconds",
            "Inter-node heartbeat interval",
        ),
        zero,
    ),
    (gauge("erlang_uptime_seconds", "Node uptime"), |s| {
        Val::Float(s.node_figures.uptime_seconds)
    }),
];

/// Group `node_persister_metrics`: Erlang file I/O, Mnesia and message store figures Warren
/// does not have.
const PERSISTER: [Scalar; 17] = [
    (
        counter("io_read_ops_total", "Total number of I/O read operations"),
        zero,
    ),
    (
        counter("io_read_bytes_total", "Total number of I/O bytes read"),
        zero,
    ),
    (
        counter("io_write_ops_total", "Total number of I/O write operations"),
        zero,
    ),
    (
        counter("io_write_bytes_total", "Total number of I/O bytes written"),
        zero,
    ),
    (
        counter("io_sync_ops_total", "Total number of I/O sync operations"),
        zero,
    ),
    (
        counter("io_seek_ops_total", "Total number of I/O seek operations"),
        zero,
    ),
    (
        counter(
            "io_reopen_ops_total",
            "Total number of times files have been reopened",
        ),
        zero,
    ),
    (
        counter(
            "schema_db_ram_tx_total",
            "Total number of Schema DB memory transactions",
        ),
        zero,
    ),
    (
        counter(
            "schema_db_disk_tx_total",
            "Total number of Schema DB disk transactions",
        ),
        zero,
    ),
    (
        counter(
            "msg_store_read_total",
            "Total number of Message Store read operations",
        ),
        zero,
    ),
    (
        counter(
            "msg_store_write_total",
            "Total number of Message Store write operations",
        ),
        zero,
    ),
    (
        counter(
            "queue_index_read_ops_total",
            "Total number of Queue Index read operations",
        ),
        zero,
    ),
    (
        counter(
            "queue_index_write_ops_total",
            "Total number of Queue Index write operations",
        ),
        zero,
    ),
    (
        counter("io_read_time_seconds_total", "Total I/O read time"),
        zero,
    ),
    (
        counter("io_write_time_seconds_total", "Total I/O write time"),
        zero,
    ),
    (
        counter("io_sync_time_seconds_total", "Total I/O sync time"),
        zero,
    ),
    (
        counter("io_seek_time_seconds_total", "Total I/O seek time"),
        zero,
    ),
];

/// Group `ra_metrics`: Warren has no quorum queues. `/metrics` prints RabbitMQ's zeros (the
/// latency as a float, `0.0`), the other registries no series.
const RAFT: [Scalar; 6] = [
    (counter("raft_term_total", "Current Raft term number"), zero),
    (
        gauge("raft_log_snapshot_index", "Raft log snapshot index"),
        zero,
    ),
    (
        gauge("raft_log_last_applied_index", "Raft log last applied index"),
        zero,
    ),
    (
        gauge("raft_log_commit_index", "Raft log commit index"),
        zero,
    ),
    (
        gauge("raft_log_last_written_index", "Raft log last written index"),
        zero,
    ),
    (
        gauge(
            "raft_entry_commit_latency_seconds",
            "Time taken for a log entry to be committed",
        ),
        |_| Val::Float(0.0),
    ),
];

/// Group `auth_attempt_metrics` (`{protocol}`; Warren counts AMQP logins only).
const AUTH: [Scalar; 3] = [
    (
        counter(
            "auth_attempts_total",
            "Total number of authorization attempts",
        ),
        |s| Val::Int(s.churn.auth_attempts),
    ),
    (
        counter(
            "auth_attempts_succeeded_total",
            "Total number of successful authentication attempts",
        ),
        |s| Val::Int(s.churn.auth_succeeded),
    ),
    (
        counter(
            "auth_attempts_failed_total",
            "Total number of failed authentication attempts",
        ),
        |s| Val::Int(s.churn.auth_failed),
    ),
];

/// Group `auth_attempt_detailed_metrics`: source tracking is off in RabbitMQ by default, so
/// never a series.
const AUTH_DETAILED: [Fam; 3] = [
    counter(
        "auth_attempts_detailed_total",
        "Total number of authorization attempts with source info",
    ),
    counter(
        "auth_attempts_detailed_succeeded_total",
        "Total number of successful authorization attempts with source info",
    ),
    counter(
        "auth_attempts_detailed_failed_total",
        "Total number of failed authorization attempts with source info",
    ),
];

use Kind::{Counter as C, Gauge as G};

/// Group `queue_coarse_metrics`.
const QUEUE_COARSE: [QueueFam; 4] = [
    q(
        "queue_messages_ready",
        G,
        "Messages ready to be delivered to consumers",
        |q| Val::Int(q.messages_ready),
        true,
    ),
    q(
        "queue_messages_unacked",
        G,
        "Messages delivered to consumers but not yet acknowledged",
        |q| Val::Int(q.messages_unacked),
        true,
    ),
    q(
        "queue_messages",
        G,
        "Sum of ready and unacknowledged messages - total queue depth",
        |q| Val::Int(q.messages_ready.saturating_add(q.messages_unacked)),
        true,
    ),
    q(
        "queue_process_reductions_total",
        C,
        "Total number of queue process reductions",
        zero,
        true,
    ),
];

/// Group `queue_metrics`; its first family alone is group `queue_consumer_count`. Sizes, RAM
/// and persistence figures, capacity: Warren's snapshot has none of them, so 0 (and NaN for the
/// head timestamp, as RabbitMQ prints for an empty queue).
const QUEUE_METRICS: [QueueFam; 18] = [
    q(
        "queue_consumers",
        G,
        "Consumers on a queue",
        |q| Val::Int(q.consumers),
        true,
    ),
    q(
        "queue_consumer_capacity",
        G,
        "Consumer capacity",
        zero,
        false,
    ),
    q(
        "queue_consumer_utilisation",
        G,
        "Same as consumer capacity",
        zero,
        true,
    ),
    q(
        "queue_process_memory_bytes",
        G,
        "Memory in bytes used by the Erlang queue process",
        zero,
        true,
    ),
    q(
        "queue_messages_ram",
        G,
        "Ready and unacknowledged messages stored in memory",
        zero,
        true,
    ),
    q(
        "queue_messages_ram_bytes",
        G,
        "Size of ready and unacknowledged messages stored in memory",
        zero,
        true,
    ),
    q(
        "queue_messages_ready_ram",
        G,
        "Ready messages stored in memory",
        zero,
        true,
    ),
    q(
        "queue_messages_unacked_ram",
        G,
        "Unacknowledged messages stored in memory",
        zero,
        true,
    ),
    q(
        "queue_messages_persistent",
        G,
        "Persistent messages",
        zero,
        true,
    ),
    q(
        "queue_messages_persistent_bytes",
        G,
        "Size in bytes of persistent messages",
        zero,
        false,
    ),
    q(
        "queue_messages_bytes",
        G,
        "Size in bytes of ready and unacknowledged messages",
        zero,
        true,
    ),
    q(
        "queue_messages_ready_bytes",
        G,
        "Size in bytes of ready messages",
        zero,
        true,
    ),
    q(
        "queue_messages_unacked_bytes",
        G,
        "Size in bytes of all unacknowledged messages",
        zero,
        true,
    ),
    q(
        "queue_messages_paged_out",
        G,
        "Messages paged out to disk",
        zero,
        true,
    ),
    q(
        "queue_messages_paged_out_bytes",
        G,
        "Size in bytes of messages paged out to disk",
        zero,
        true,
    ),
    q(
        "queue_head_message_timestamp",
        G,
        "Timestamp of the first message in the queue, if any",
        |_| Val::Float(f64::NAN),
        false,
    ),
    q(
        "queue_disk_reads_total",
        C,
        "Total number of times queue read messages from disk",
        zero,
        true,
    ),
    q(
        "queue_disk_writes_total",
        C,
        "Total number of times queue wrote messages to disk",
        zero,
        true,
    ),
];

/// Group `channel_metrics`.
const CHANNEL: [ChanFam; 7] = [
    (gauge("channel_consumers", "Consumers on a channel"), |c| {
        c.consumers
    }),
    (
        gauge(
            "channel_messages_unacked",
            "Delivered but not yet acknowledged messages",
        ),
        |c| c.messages_unacked,
    ),
    (
        gauge(
            "channel_messages_unconfirmed",
            "Published but not yet confirmed messages",
        ),
        |c| c.messages_unconfirmed,
    ),
    (
        gauge(
            "channel_messages_uncommitted",
            "Messages received in a transaction but not yet committed",
        ),
        |c| c.messages_uncommitted,
    ),
    (
        gauge(
            "channel_acks_uncommitted",
            "Message acknowledgements in a transaction not yet committed",
        ),
        |c| c.acks_uncommitted,
    ),
    (
        gauge(
            "consumer_prefetch",
            "Limit of unacknowledged messages for each consumer",
        ),
        |c| c.consumer_prefetch,
    ),
    (
        gauge(
            "channel_prefetch",
            "Total limit of unacknowledged messages for all consumers on a channel",
        ),
        |c| c.channel_prefetch,
    ),
];

/// Group `channel_exchange_metrics`. RabbitMQ labels these `{channel,vhost,exchange}`, one
/// series per exchange a channel published to; Warren keeps per-channel totals only, so the
/// series are `{channel}` (an invented `exchange` label would misattribute the counts).
const CHANNEL_EXCHANGE: [ChanFam; 4] = [
    (
        counter(
            "channel_messages_published_total",
            "Total number of messages published into an exchange on a channel",
        ),
        |c| c.published,
    ),
    (
        counter(
            "channel_messages_confirmed_total",
            "Total number of messages published into an exchange and confirmed on the channel",
        ),
        |c| c.confirmed,
    ),
    (
        counter(
            "channel_messages_unroutable_returned_total",
            "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        ),
        |c| c.unroutable_returned,
    ),
    (
        counter(
            "channel_messages_unroutable_dropped_total",
            "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        ),
        |c| c.unroutable_dropped,
    ),
];

/// Group `channel_process_metrics`.
const CHANNEL_PROCESS: [ChanFam; 1] = [(
    counter(
        "channel_process_reductions_total",
        "Total number of channel process reductions",
    ),
    zero_u64,
)];

/// Group `channel_queue_metrics`. RabbitMQ: `{channel,vhost,queue}`; Warren: `{channel}`, for
/// the same reason as [`CHANNEL_EXCHANGE`].
const CHANNEL_QUEUE: [ChanFam; 7] = [
    (
        counter(
            "channel_get_ack_total",
            "Total number of messages fetched with basic.get in manual acknowledgement mode",
        ),
        |c| c.get_ack,
    ),
    (
        counter(
            "channel_get_total",
            "Total number of messages fetched with basic.get in automatic acknowledgement mode",
        ),
        |c| c.get,
    ),
    (
        counter(
            "channel_messages_delivered_ack_total",
            "Total number of messages delivered to consumers in manual acknowledgement mode",
        ),
        |c| c.delivered_ack,
    ),
    (
        counter(
            "channel_messages_delivered_total",
            "Total number of messages delivered to consumers in automatic acknowledgement mode",
        ),
        |c| c.delivered,
    ),
    (
        counter(
            "channel_messages_redelivered_total",
            "Total number of messages redelivered to consumers",
        ),
        |c| c.redelivered,
    ),
    (
        counter(
            "channel_messages_acked_total",
            "Total number of messages acknowledged by consumers",
        ),
        |c| c.acked,
    ),
    (
        counter(
            "channel_get_empty_total",
            "Total number of times basic.get operations fetched no message",
        ),
        |c| c.get_empty,
    ),
];

/// Group `connection_coarse_metrics`.
const CONN_COARSE: [ConnFam; 3] = [
    (
        counter(
            "connection_incoming_bytes_total",
            "Total number of bytes received on a connection",
        ),
        |c| c.incoming_bytes,
    ),
    (
        counter(
            "connection_outgoing_bytes_total",
            "Total number of bytes sent on a connection",
        ),
        |c| c.outgoing_bytes,
    ),
    (
        counter(
            "connection_process_reductions_total",
            "Total number of connection process reductions",
        ),
        zero_u64,
    ),
];

/// Group `connection_metrics`.
const CONN: [ConnFam; 4] = [
    (
        counter(
            "connection_incoming_packets_total",
            "Total number of packets received on a connection",
        ),
        |c| c.incoming_packets,
    ),
    (
        counter(
            "connection_outgoing_packets_total",
            "Total number of packets sent on a connection",
        ),
        |c| c.outgoing_packets,
    ),
    (
        gauge(
            "connection_pending_packets",
            "Number of packets waiting to be sent on a connection",
        ),
        zero_u64,
    ),
    (
        gauge("connection_channels", "Channels on a connection"),
        |c| c.channels,
    ),
];

/// Group `channel_queue_exchange_metrics`. RabbitMQ: per (channel, queue, exchange) publishes;
/// Warren keeps them per queue, so its series are `{queue_vhost, queue}` (sums over the missing
/// labels, as dashboards take them, are the same).
const QUEUE_PUBLISHED: Fam = counter(
    "queue_messages_published_total",
    "Total number of messages published to queues",
);

/// The object totals, unlabelled on both `/metrics` and `/metrics/per-object`.
const TOTALS: [Scalar; 4] = [
    (gauge("connections", "Connections currently open"), |s| {
        Val::Int(s.open_connections)
    }),
    (gauge("channels", "Channels currently open"), |s| {
        Val::Int(s.open_channels)
    }),
    (gauge("consumers", "Consumers currently connected"), |s| {
        Val::Int(s.consumers)
    }),
    (gauge("queues", "Queues available"), |s| {
        Val::Int(s.queues.len() as u64)
    }),
];

const BUILD_INFO: Fam = untyped("build_info", "RabbitMQ & Erlang/OTP version info");
const IDENTITY_INFO: Fam = untyped("identity_info", "RabbitMQ node & cluster identity info");

/// The 20 groups `/metrics/detailed` accepts, in the order they are printed.
const GROUPS: [&str; 20] = [
    "connection_churn_metrics",
    "node_coarse_metrics",
    "node_metrics",
    "node_persister_metrics",
    "ra_metrics",
    "auth_attempt_metrics",
    "auth_attempt_detailed_metrics",
    "queue_coarse_metrics",
    "queue_consumer_count",
    "queue_metrics",
    "connection_coarse_metrics",
    "connection_metrics",
    "channel_metrics",
    "channel_process_metrics",
    "channel_exchange_metrics",
    "channel_queue_metrics",
    "channel_queue_exchange_metrics",
    "vhost_status",
    "exchange_bindings",
    "exchange_names",
];

// ---------------------------------------------------------------------------------------------
// Writing

const PREFIX: &str = "rabbitmq_";
const DETAILED: &str = "rabbitmq_detailed_";
const CLUSTER: &str = "rabbitmq_cluster_";
const PROTOCOL: &str = "amqp091";
const CLASSIC: &str = "rabbit_classic_queue";
const QUORUM: &str = "rabbit_quorum_queue";
const STREAM: &str = "rabbit_stream_queue";

struct Out {
    s: String,
    /// Reused to print floats.
    scratch: String,
}

impl Out {
    fn with_capacity_for(snap: &MetricsSnapshot) -> Self {
        // ~90 bytes a series: per queue 22 families, per channel 19, per connection 7.
        let series = snap.queues.len() * 22
            + snap.channels.len() * 19
            + snap.connections.len() * 7
            + snap.exchanges.len() * 2
            + snap.vhosts.len();
        Out {
            s: String::with_capacity(24 * 1024 + series * 90),
            scratch: String::new(),
        }
    }

    /// `# TYPE` then `# HELP`, in RabbitMQ's order.
    fn head(&mut self, prefix: &str, f: &Fam) {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
        };
        for line in ["# TYPE ", "# HELP "] {
            self.s.push_str(line);
            self.s.push_str(prefix);
            self.s.push_str(f.name);
            self.s.push(' ');
            self.s
                .push_str(if line == "# TYPE " { kind } else { f.help });
            self.s.push('\n');
        }
    }

    /// `queue_messages_published_total`: the sum on `/metrics`, a series per queue (those
    /// `keep` takes) otherwise.
    fn queue_published(
        &mut self,
        prefix: &str,
        snap: &MetricsSnapshot,
        aggregated: bool,
        keep: &dyn Fn(&QueueFigures) -> bool,
    ) {
        self.head(prefix, &QUEUE_PUBLISHED);
        if aggregated {
            let total = snap.queues.iter().map(|q| q.published).sum();
            self.sample(prefix, QUEUE_PUBLISHED.name, &[], Val::Int(total));
            return;
        }
        for q in snap.queues.iter().filter(|q| keep(q)) {
            let labels = [
                ("queue_vhost", q.vhost.as_str()),
                ("queue", q.name.as_str()),
            ];
            self.sample(prefix, QUEUE_PUBLISHED.name, &labels, Val::Int(q.published));
        }
    }

    fn sample(&mut self, prefix: &str, name: &str, labels: &[(&str, &str)], v: Val) {
        self.s.push_str(prefix);
        self.s.push_str(name);
        if !labels.is_empty() {
            self.s.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.s.push(',');
                }
                self.s.push_str(k);
                self.s.push_str("=\"");
                push_escaped(&mut self.s, v);
                self.s.push('"');
            }
            self.s.push('}');
        }
        self.s.push(' ');
        match v {
            // Writing to a String cannot fail.
            Val::Int(i) => {
                let _ = write!(self.s, "{i}");
            }
            Val::Float(f) => push_float(&mut self.s, &mut self.scratch, f),
        }
        self.s.push('\n');
    }

    fn scalars(&mut self, prefix: &str, fams: &[Scalar], snap: &MetricsSnapshot, series: bool) {
        for (f, get) in fams {
            self.head(prefix, f);
            if series {
                self.sample(prefix, f.name, &[], get(snap));
            }
        }
    }

    fn heads(&mut self, prefix: &str, fams: impl IntoIterator<Item = Fam>) {
        for f in fams {
            self.head(prefix, &f);
        }
    }

    /// `rabbitmq_auth_attempts_*{protocol}`: as RabbitMQ, no series before the first login.
    fn auth(&mut self, prefix: &str, snap: &MetricsSnapshot) {
        let any = snap.churn.auth_attempts > 0
            || snap.churn.auth_succeeded > 0
            || snap.churn.auth_failed > 0;
        for (f, get) in &AUTH {
            self.head(prefix, f);
            if any {
                self.sample(prefix, f.name, &[("protocol", PROTOCOL)], get(snap));
            }
        }
    }

    /// Per-queue families: one series per kept queue, or (aggregated) their sum.
    fn queues<'a>(
        &mut self,
        prefix: &str,
        fams: impl IntoIterator<Item = &'a QueueFam>,
        snap: &MetricsSnapshot,
        aggregated: bool,
        keep: &dyn Fn(&QueueFigures) -> bool,
    ) {
        for qf in fams {
            self.head(prefix, &qf.fam);
            if aggregated {
                if qf.summed {
                    let sum = snap
                        .queues
                        .iter()
                        .map(qf.get)
                        .fold(Val::Int(0), |a, b| a + b);
                    self.sample(prefix, qf.fam.name, &[], sum);
                }
                continue;
            }
            for queue in snap.queues.iter().filter(|q| keep(q)) {
                self.sample(
                    prefix,
                    qf.fam.name,
                    &[
                        ("vhost", queue.vhost.as_str()),
                        ("queue", queue.name.as_str()),
                    ],
                    (qf.get)(queue),
                );
            }
        }
    }

    /// Per-channel families: one `{channel}` series per channel that `has` data for the group
    /// (RabbitMQ has rows only for channels that published / consumed), or (aggregated) the
    /// sum over all channels.
    fn channels(
        &mut self,
        prefix: &str,
        fams: &[ChanFam],
        snap: &MetricsSnapshot,
        aggregated: bool,
        has: fn(&ChannelFigures) -> bool,
    ) {
        for (f, get) in fams {
            self.head(prefix, f);
            if aggregated {
                let sum = snap
                    .channels
                    .iter()
                    .map(get)
                    .fold(0u64, u64::saturating_add);
                self.sample(prefix, f.name, &[], Val::Int(sum));
                continue;
            }
            for ch in snap.channels.iter().filter(|c| has(c)) {
                self.sample(
                    prefix,
                    f.name,
                    &[("channel", ch.id.as_str())],
                    Val::Int(get(ch)),
                );
            }
        }
    }

    /// Per-connection families, labelled `channel` with the connection's id (RabbitMQ 3.10's
    /// quirk, kept so that queries written for it work).
    fn connections(
        &mut self,
        prefix: &str,
        fams: &[ConnFam],
        snap: &MetricsSnapshot,
        aggregated: bool,
    ) {
        for (f, get) in fams {
            self.head(prefix, f);
            if aggregated {
                let sum = snap
                    .connections
                    .iter()
                    .map(get)
                    .fold(0u64, u64::saturating_add);
                self.sample(prefix, f.name, &[], Val::Int(sum));
                continue;
            }
            for c in &snap.connections {
                self.sample(
                    prefix,
                    f.name,
                    &[("channel", c.id.as_str())],
                    Val::Int(get(c)),
                );
            }
        }
    }

    fn build_and_identity(&mut self, snap: &MetricsSnapshot) {
        self.head(PREFIX, &BUILD_INFO);
        self.s.push_str("rabbitmq_build_info{rabbitmq_version=\"");
        push_escaped(&mut self.s, &snap.rabbitmq_version);
        self.s.push_str("\",prometheus_plugin_version=\"");
        push_escaped(&mut self.s, &snap.rabbitmq_version);
        self.s
            .push_str("\",prometheus_client_version=\"4.9.1\",erlang_version=\"warren ");
        push_escaped(&mut self.s, &snap.warren_version);
        self.s.push_str("\"} 1\n");

        self.head(PREFIX, &IDENTITY_INFO);
        let id = permanent_id(&snap.cluster);
        self.sample(
            PREFIX,
            IDENTITY_INFO.name,
            &[
                ("rabbitmq_node", snap.node.as_str()),
                ("rabbitmq_cluster", snap.cluster.as_str()),
                ("rabbitmq_cluster_permanent_id", id.as_str()),
            ],
            Val::Int(1),
        );
    }

    /// The `rabbitmq_global_*` families (same on `/metrics` and `/metrics/per-object`).
    fn global(&mut self, snap: &MetricsSnapshot) {
        let g = &snap.global;
        let delivered = [
            g.delivered_consume_auto_ack,
            g.delivered_consume_manual_ack,
            g.delivered_get_auto_ack,
            g.delivered_get_manual_ack,
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add);

        self.proto(
            gauge("global_consumers", "Current number of consumers"),
            snap.consumers,
        );
        self.proto_qt(
            counter(
                "global_messages_acknowledged_total",
                "Total number of messages acknowledged by consumers",
            ),
            g.acknowledged,
        );
        self.proto(
            counter(
                "global_messages_confirmed_total",
                "Total number of messages confirmed to publishers",
            ),
            g.confirmed,
        );
        self.dead_lettered(
            counter(
                "global_messages_dead_lettered_confirmed_total",
                "Total number of messages dead-lettered and confirmed by target queues",
            ),
            &[(QUORUM, "at_least_once", 0)],
        );
        // Classic queues have no delivery limit in RabbitMQ, so it has no classic series; Warren
        // honours x-delivery-limit on classic queues, so it adds one once it has counted some.
        let mut limit = vec![];
        if g.dead_lettered_delivery_limit > 0 {
            limit.push((CLASSIC, "at_most_once", g.dead_lettered_delivery_limit));
        }
        limit.extend([
            (QUORUM, "at_least_once", 0),
            (QUORUM, "at_most_once", 0),
            (QUORUM, "disabled", 0),
        ]);
        self.dead_lettered(
            counter(
                "global_messages_dead_lettered_delivery_limit_total",
                "Total number of messages dead-lettered due to delivery-limit exceeded",
            ),
            &limit,
        );
        self.dead_lettered(
            counter(
                "global_messages_dead_lettered_expired_total",
                "Total number of messages dead-lettered due to message TTL exceeded",
            ),
            &five(g.dead_lettered_expired),
        );
        self.dead_lettered(
            counter(
                "global_messages_dead_lettered_maxlen_total",
                "Total number of messages dead-lettered due to overflow drop-head or reject-publish-dlx",
            ),
            &[
                (CLASSIC, "at_most_once", g.dead_lettered_maxlen),
                (CLASSIC, "disabled", 0),
                (QUORUM, "at_most_once", 0),
                (QUORUM, "disabled", 0),
            ],
        );
        self.dead_lettered(
            counter(
                "global_messages_dead_lettered_rejected_total",
                "Total number of messages dead-lettered due to basic.reject or basic.nack",
            ),
            &five(g.dead_lettered_rejected),
        );
        self.proto_qt(
            counter(
                "global_messages_delivered_consume_auto_ack_total",
                "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
            ),
            g.delivered_consume_auto_ack,
        );
        self.proto_qt(
            counter(
                "global_messages_delivered_consume_manual_ack_total",
                "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
            ),
            g.delivered_consume_manual_ack,
        );
        self.proto_qt(
            counter(
                "global_messages_delivered_get_auto_ack_total",
                "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
            ),
            g.delivered_get_auto_ack,
        );
        self.proto_qt(
            counter(
                "global_messages_delivered_get_manual_ack_total",
                "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
            ),
            g.delivered_get_manual_ack,
        );
        self.proto_qt(
            counter(
                "global_messages_delivered_total",
                "Total number of messages delivered to consumers",
            ),
            delivered,
        );
        self.proto_qt(
            counter(
                "global_messages_get_empty_total",
                "Total number of times basic.get operations fetched no message",
            ),
            g.get_empty,
        );
        self.proto(
            counter(
                "global_messages_received_confirm_total",
                "Total number of messages received from publishers expecting confirmations",
            ),
            g.received_confirm,
        );
        self.proto(
            counter(
                "global_messages_received_total",
                "Total number of messages received from publishers",
            ),
            g.received,
        );
        self.proto_qt(
            counter(
                "global_messages_redelivered_total",
                "Total number of messages redelivered to consumers",
            ),
            g.redelivered,
        );
        self.proto(
            counter(
                "global_messages_routed_total",
                "Total number of messages routed to queues or streams",
            ),
            g.routed,
        );
        self.proto(
            counter(
                "global_messages_unroutable_dropped_total",
                "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
            ),
            g.unroutable_dropped,
        );
        self.proto(
            counter(
                "global_messages_unroutable_returned_total",
                "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
            ),
            g.unroutable_returned,
        );
        self.proto(
            gauge("global_publishers", "Current number of publishers"),
            snap.publishers,
        );
    }

    fn proto(&mut self, f: Fam, v: u64) {
        self.head(PREFIX, &f);
        self.sample(PREFIX, f.name, &[("protocol", PROTOCOL)], Val::Int(v));
    }

    /// Three series, one per queue type: Warren's queues are all classic.
    fn proto_qt(&mut self, f: Fam, classic: u64) {
        self.head(PREFIX, &f);
        for (qt, v) in [(CLASSIC, classic), (QUORUM, 0), (STREAM, 0)] {
            self.sample(
                PREFIX,
                f.name,
                &[("protocol", PROTOCOL), ("queue_type", qt)],
                Val::Int(v),
            );
        }
    }

    fn dead_lettered(&mut self, f: Fam, series: &[(&str, &str, u64)]) {
        self.head(PREFIX, &f);
        for (qt, strategy, v) in series {
            self.sample(
                PREFIX,
                f.name,
                &[("queue_type", *qt), ("dead_letter_strategy", *strategy)],
                Val::Int(*v),
            );
        }
    }
}

/// The `expired` / `rejected` combinations; Warren's count (messages republished to a
/// dead-letter exchange, at most once) goes to (classic, at_most_once).
fn five(classic: u64) -> [(&'static str, &'static str, u64); 5] {
    [
        (CLASSIC, "at_most_once", classic),
        (CLASSIC, "disabled", 0),
        (QUORUM, "at_least_once", 0),
        (QUORUM, "at_most_once", 0),
        (QUORUM, "disabled", 0),
    ]
}

fn has_published(c: &ChannelFigures) -> bool {
    c.published > 0 || c.confirmed > 0 || c.unroutable_returned > 0 || c.unroutable_dropped > 0
}

fn has_queue_activity(c: &ChannelFigures) -> bool {
    c.get_ack > 0
        || c.get > 0
        || c.delivered_ack > 0
        || c.delivered > 0
        || c.redelivered > 0
        || c.acked > 0
        || c.get_empty > 0
}

fn every_channel(_: &ChannelFigures) -> bool {
    true
}

fn every_queue(_: &QueueFigures) -> bool {
    true
}

/// A label value escaped per the text format: backslash, double quote, newline.
fn push_escaped(out: &mut String, v: &str) {
    if !v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A float as Erlang prints it (`0.0`, `193.111`, `5.4e-5`): the shortest round-trip digits,
/// in fixed or scientific notation, whichever is shorter (fixed on a tie); `NaN`, `+Inf`.
fn push_float(out: &mut String, scratch: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v.is_sign_negative() {
        out.push('-');
    }
    if v == 0.0 {
        out.push_str("0.0");
        return;
    }
    scratch.clear();
    // Rust's `{:e}` gives the shortest round-trip digits: `5.4e-5`, `1.93111e2`, `6e1`.
    let _ = write!(scratch, "{:e}", v.abs());
    let (mantissa, exp) = scratch.split_once('e').unwrap_or((scratch.as_str(), "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let (first, rest) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = 1 + rest.len() as i64;
    // Digits before the decimal point in fixed notation.
    let place = exp + 1;
    let fixed_len = if place <= 0 {
        2 - place + digits
    } else if place < digits {
        digits + 1
    } else {
        place + 2
    };
    let exp_len =
        i64::from(exp < 0) + i64::from(exp.unsigned_abs().checked_ilog10().unwrap_or(0)) + 1;
    let sci_len = 2 + (rest.len() as i64).max(1) + 1 + exp_len;
    if sci_len < fixed_len {
        out.push_str(first);
        out.push('.');
        out.push_str(if rest.is_empty() { "0" } else { rest });
        let _ = write!(out, "e{exp}");
    } else if place <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-place) as usize));
        out.push_str(first);
        out.push_str(rest);
    } else if place < digits {
        let split = (place - 1) as usize;
        out.push_str(first);
        out.push_str(&rest[..split]);
        out.push('.');
        out.push_str(&rest[split..]);
    } else {
        out.push_str(first);
        out.push_str(rest);
        out.extend(std::iter::repeat_n('0', (place - digits) as usize));
        out.push_str(".0");
    }
}

/// `rabbitmq-cluster-id-` + 22 base64url characters. RabbitMQ draws 16 random bytes once per
/// cluster and stores them; Warren derives them from the cluster name (128-bit FNV-1a), so the
/// id is stable across restarts without extra state and changes only with the cluster's name.
pub(crate) fn permanent_id(cluster: &str) -> String {
    use base64::Engine;
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let hash = cluster
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u128::from(b)).wrapping_mul(PRIME));
    let mut id = String::with_capacity(42);
    id.push_str("rabbitmq-cluster-id-");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(hash.to_be_bytes(), &mut id);
    id
}

// ---------------------------------------------------------------------------------------------
// The registries

/// Renders `snap` as `registry` shows it; `query` is `/metrics/detailed`'s (ignored elsewhere).
pub(crate) fn render(snap: &MetricsSnapshot, registry: Registry, query: &DetailedQuery) -> String {
    let mut out = Out::with_capacity_for(snap);
    match registry {
        Registry::Aggregated => main(&mut out, snap, true),
        Registry::PerObject => main(&mut out, snap, false),
        Registry::Detailed => detailed(&mut out, snap, query),
    }
    out.s
}

/// `/metrics` (`aggregated`) and `/metrics/per-object`: the same families in the same order,
/// except what only one of them has.
fn main(out: &mut Out, snap: &MetricsSnapshot, aggregated: bool) {
    if aggregated {
        out.head(
            "",
            &gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            ),
        );
        // RabbitMQ prints whole seconds here.
        let start = snap.node_figures.start_time_seconds.max(0.0) as u64;
        out.sample("", "process_start_time_seconds", &[], Val::Int(start));
        out.scalars(PREFIX, &ALARMS, snap, true);
    }
    out.scalars(PREFIX, &CHURN, snap, true);
    out.scalars(PREFIX, &NODE_COARSE, snap, true);
    out.scalars(PREFIX, &NODE, snap, true);
    out.scalars(PREFIX, &PERSISTER, snap, true);
    out.scalars(PREFIX, &RAFT, snap, aggregated);
    out.auth(PREFIX, snap);
    if !aggregated {
        out.heads(PREFIX, AUTH_DETAILED);
    }
    out.queues(
        PREFIX,
        QUEUE_COARSE.iter().chain(&QUEUE_METRICS),
        snap,
        aggregated,
        &every_queue,
    );
    out.channels(PREFIX, &CHANNEL, snap, aggregated, every_channel);
    out.channels(PREFIX, &CHANNEL_EXCHANGE, snap, aggregated, has_published);
    out.channels(PREFIX, &CHANNEL_PROCESS, snap, aggregated, every_channel);
    out.channels(PREFIX, &CHANNEL_QUEUE, snap, aggregated, has_queue_activity);
    out.connections(PREFIX, &CONN_COARSE, snap, aggregated);
    out.connections(PREFIX, &CONN, snap, aggregated);
    out.queue_published(PREFIX, snap, aggregated, &every_queue);
    out.scalars(PREFIX, &TOTALS, snap, true);
    out.build_and_identity(snap);
    out.global(snap);
}

/// `/metrics/detailed`: the requested groups (each once, in [`GROUPS`] order), then the build
/// and identity info.
fn detailed(out: &mut Out, snap: &MetricsSnapshot, query: &DetailedQuery) {
    let keep = |q: &QueueFigures| query.keeps(q);
    // RabbitMQ lists neither the default exchange nor the internal trace exchange.
    let listed = || {
        snap.exchanges
            .iter()
            .filter(|x| !x.name.is_empty() && x.name != "amq.rabbitmq.trace")
    };
    for group in GROUPS.into_iter().filter(|g| query.wants(g)) {
        match group {
            "connection_churn_metrics" => out.scalars(DETAILED, &CHURN, snap, true),
            "node_coarse_metrics" => out.scalars(DETAILED, &NODE_COARSE, snap, true),
            "node_metrics" => out.scalars(DETAILED, &NODE, snap, true),
            "node_persister_metrics" => out.scalars(DETAILED, &PERSISTER, snap, true),
            "ra_metrics" => out.scalars(DETAILED, &RAFT, snap, false),
            "auth_attempt_metrics" => out.auth(DETAILED, snap),
            "auth_attempt_detailed_metrics" => out.heads(DETAILED, AUTH_DETAILED),
            "queue_coarse_metrics" => out.queues(DETAILED, &QUEUE_COARSE, snap, false, &keep),
            // `rabbitmq_detailed_queue_consumers` is printed once when both are asked for.
            "queue_consumer_count" if query.wants("queue_metrics") => {}
            "queue_consumer_count" => out.queues(DETAILED, &QUEUE_METRICS[..1], snap, false, &keep),
            "queue_metrics" => out.queues(DETAILED, &QUEUE_METRICS, snap, false, &keep),
            "connection_coarse_metrics" => out.connections(DETAILED, &CONN_COARSE, snap, false),
            "connection_metrics" => out.connections(DETAILED, &CONN, snap, false),
            // The vhost filter applies to the queue groups only, as in RabbitMQ.
            "channel_metrics" => out.channels(DETAILED, &CHANNEL, snap, false, every_channel),
            "channel_process_metrics" => {
                out.channels(DETAILED, &CHANNEL_PROCESS, snap, false, every_channel)
            }
            "channel_exchange_metrics" => {
                out.channels(DETAILED, &CHANNEL_EXCHANGE, snap, false, has_published)
            }
            "channel_queue_metrics" => {
                out.channels(DETAILED, &CHANNEL_QUEUE, snap, false, has_queue_activity)
            }
            "channel_queue_exchange_metrics" => out.queue_published(DETAILED, snap, false, &keep),
            "vhost_status" => {
                let f = gauge("vhost_status", "Whether a given vhost is running");
                out.head(CLUSTER, &f);
                for v in &snap.vhosts {
                    out.sample(CLUSTER, f.name, &[("vhost", v.as_str())], Val::Int(1));
                }
            }
            "exchange_bindings" => {
                let f = gauge(
                    "exchange_bindings",
                    "Number of bindings for an exchange. This value is cluster-wide.",
                );
                out.head(CLUSTER, &f);
                for x in listed() {
                    let labels = [
                        ("vhost", x.vhost.as_str()),
                        ("exchange", x.name.as_str()),
                        ("type", x.kind.as_str()),
                    ];
                    out.sample(CLUSTER, f.name, &labels, Val::Int(x.bindings));
                }
            }
            "exchange_names" => {
                let f = gauge(
                    "exchange_name",
                    "Enumerates exchanges without any additional info. This value is cluster-wide. A cheaper alternative to `exchange_bindings`",
                );
                out.head(CLUSTER, &f);
                for x in listed() {
                    let labels = [
                        ("vhost", x.vhost.as_str()),
                        ("exchange", x.name.as_str()),
                        ("type", x.kind.as_str()),
                    ];
                    out.sample(CLUSTER, f.name, &labels, Val::Int(1));
                }
            }
            _ => {}
        }
    }
    out.build_and_identity(snap);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Churn, ExchangeFigures, GlobalCounters, NodeFigures};

    const SAMPLE: &str = include_str!("../../../docs/samples/prometheus/metrics.txt");
    const SAMPLE_PER_OBJECT: &str =
        include_str!("../../../docs/samples/prometheus/metrics-per-object.txt");
    const SAMPLE_CLUSTER: &str =
        include_str!("../../../docs/samples/prometheus/metrics-detailed-cluster-families.txt");
    const DOC: &str = include_str!("../../../docs/rabbitmq-prometheus-observed.md");

    fn queue(vhost: &str, name: &str, ready: u64, unacked: u64, consumers: u64) -> QueueFigures {
        QueueFigures {
            vhost: vhost.into(),
            name: name.into(),
            messages_ready: ready,
            messages_unacked: unacked,
            consumers,
            published: ready + unacked,
        }
    }

    fn snapshot() -> MetricsSnapshot {
        MetricsSnapshot {
            node: "warren@host".into(),
            cluster: "warren@host".into(),
            rabbitmq_version: "3.10.8".into(),
            warren_version: "0.1.0".into(),
            global: GlobalCounters {
                received: 61,
                received_confirm: 56,
                routed: 56,
                confirmed: 56,
                unroutable_dropped: 5,
                delivered_consume_manual_ack: 30,
                delivered_get_manual_ack: 10,
                acknowledged: 5,
                dead_lettered_expired: 2,
                ..Default::default()
            },
            churn: Churn {
                connections_opened: 7,
                connections_closed: 6,
                queues_declared: 12,
                auth_attempts: 6,
                auth_succeeded: 6,
                ..Default::default()
            },
            node_figures: NodeFigures {
                open_fds: 44,
                max_fds: 1024,
                resident_memory: 140_050_432,
                uptime_seconds: 193.111,
                start_time_seconds: 1_796_606_529.7,
                disk_alarm: true,
                ..Default::default()
            },
            open_connections: 1,
            open_channels: 2,
            consumers: 1,
            publishers: 3,
            vhosts: vec!["/".into(), "pv".into()],
            queues: vec![
                queue("/", "q1", 1, 0, 0),
                queue("/", "q\"2\\\n", 25, 10, 1),
                queue("pv", "q3", 4, 1, 0),
            ],
            channels: vec![
                ChannelFigures {
                    id: "c1 (1)".into(),
                    vhost: "/".into(),
                    consumer_prefetch: 10,
                    published: 11,
                    ..Default::default()
                },
                ChannelFigures {
                    id: "c1 (2)".into(),
                    vhost: "/".into(),
                    consumers: 1,
                    consumer_prefetch: 20,
                    delivered_ack: 10,
                    ..Default::default()
                },
            ],
            connections: vec![ConnectionFigures {
                id: "127.0.0.1:5000 -> 127.0.0.1:5672".into(),
                incoming_bytes: 1261,
                channels: 2,
                ..Default::default()
            }],
            exchanges: vec![
                ExchangeFigures {
                    vhost: "/".into(),
                    name: "".into(),
                    kind: "direct".into(),
                    bindings: 0,
                },
                ExchangeFigures {
                    vhost: "/".into(),
                    name: "amq.topic".into(),
                    kind: "topic".into(),
                    bindings: 2,
                },
                ExchangeFigures {
                    vhost: "/".into(),
                    name: "amq.rabbitmq.trace".into(),
                    kind: "topic".into(),
                    bindings: 0,
                },
            ],
        }
    }

    fn render_query(snap: &MetricsSnapshot, query: &str) -> String {
        render(snap, Registry::Detailed, &DetailedQuery::parse(query))
    }

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    /// `# TYPE` and `# HELP` lines of the families whose name starts with `prefix`, in order.
    fn meta<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| {
                l.strip_prefix("# TYPE ")
                    .or_else(|| l.strip_prefix("# HELP "))
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .collect()
    }

    /// The family names (`# TYPE` lines) of a text with their types.
    fn types(text: &str) -> Vec<(&str, &str)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .collect()
    }

    fn check_type_then_help(text: &str) {
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                let next = lines.get(i + 1).copied().unwrap_or_default();
                assert!(next.starts_with(&format!("# HELP {name} ")), "{l} / {next}");
            }
            if l.starts_with("# HELP ") {
                assert!(i > 0 && lines[i - 1].starts_with("# TYPE "), "{l}");
            }
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn aggregated_has_rabbitmqs_families_types_helps_and_order() {
        let text = render(&snapshot(), Registry::Aggregated, &DetailedQuery::default());
        assert_eq!(meta(&text, "rabbitmq_"), meta(SAMPLE, "rabbitmq_"));
        assert_eq!(meta(&text, "rabbitmq_").len(), 2 * 128);
        check_type_then_help(&text);
        assert!(text.starts_with(
            "# TYPE process_start_time_seconds gauge\n\
             # HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n\
             process_start_time_seconds 1796606529\n"
        ));
    }

    #[test]
    fn per_object_has_rabbitmqs_families_types_helps_and_order() {
        let text = render(&snapshot(), Registry::PerObject, &DetailedQuery::default());
        assert_eq!(
            meta(&text, "rabbitmq_"),
            meta(SAMPLE_PER_OBJECT, "rabbitmq_")
        );
        check_type_then_help(&text);
        assert!(!text.contains("process_start_time_seconds"));
        assert!(!text.contains("rabbitmq_alarms_"));
    }

    #[test]
    fn aggregated_lines() {
        let text = render(&snapshot(), Registry::Aggregated, &DetailedQuery::default());
        for line in [
            "rabbitmq_alarms_file_descriptor_limit 0",
            "rabbitmq_alarms_free_disk_space_watermark 1",
            "rabbitmq_alarms_memory_used_watermark 0",
            "rabbitmq_connections_opened_total 7",
            "rabbitmq_process_open_fds 44",
            "rabbitmq_process_max_fds 1024",
            "rabbitmq_erlang_uptime_seconds 193.111",
            "rabbitmq_io_read_ops_total 0",
            "rabbitmq_raft_term_total 0",
            "rabbitmq_raft_entry_commit_latency_seconds 0.0",
            "rabbitmq_auth_attempts_total{protocol=\"amqp091\"} 6",
            "rabbitmq_auth_attempts_failed_total{protocol=\"amqp091\"} 0",
            // sums over the three queues
            "rabbitmq_queue_messages_ready 30",
            "rabbitmq_queue_messages_unacked 11",
            "rabbitmq_queue_messages 41",
            "rabbitmq_queue_consumers 1",
            "rabbitmq_queue_consumer_utilisation 0",
            // sums over the two channels / one connection
            "rabbitmq_channel_consumers 1",
            "rabbitmq_consumer_prefetch 30",
            "rabbitmq_channel_messages_published_total 11",
            "rabbitmq_channel_messages_delivered_ack_total 10",
            "rabbitmq_connection_incoming_bytes_total 1261",
            "rabbitmq_connection_channels 2",
            "rabbitmq_queue_messages_published_total 41",
            "rabbitmq_connections 1",
            "rabbitmq_channels 2",
            "rabbitmq_consumers 1",
            "rabbitmq_queues 3",
            "rabbitmq_build_info{rabbitmq_version=\"3.10.8\",prometheus_plugin_version=\"3.10.8\",prometheus_client_version=\"4.9.1\",erlang_version=\"warren 0.1.0\"} 1",
            "rabbitmq_global_consumers{protocol=\"amqp091\"} 1",
            "rabbitmq_global_publishers{protocol=\"amqp091\"} 3",
            "rabbitmq_global_messages_received_total{protocol=\"amqp091\"} 61",
            "rabbitmq_global_messages_acknowledged_total{protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"} 5",
            "rabbitmq_global_messages_acknowledged_total{protocol=\"amqp091\",queue_type=\"rabbit_quorum_queue\"} 0",
            "rabbitmq_global_messages_acknowledged_total{protocol=\"amqp091\",queue_type=\"rabbit_stream_queue\"} 0",
            "rabbitmq_global_messages_delivered_total{protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"} 40",
            "rabbitmq_global_messages_dead_lettered_expired_total{queue_type=\"rabbit_classic_queue\",dead_letter_strategy=\"at_most_once\"} 2",
            "rabbitmq_global_messages_dead_lettered_confirmed_total{queue_type=\"rabbit_quorum_queue\",dead_letter_strategy=\"at_least_once\"} 0",
        ] {
            assert!(has_line(&text, line), "missing {line}");
        }
        let id = permanent_id("warren@host");
        assert!(has_line(
            &text,
            &format!("rabbitmq_identity_info{{rabbitmq_node=\"warren@host\",rabbitmq_cluster=\"warren@host\",rabbitmq_cluster_permanent_id=\"{id}\"}} 1")
        ));
        // No object labels on /metrics; the families RabbitMQ leaves empty there stay empty.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                !l.contains("vhost=") && !l.contains("queue=\"") && !l.contains("channel="),
                "{l}"
            );
        }
        for empty in [
            "rabbitmq_queue_consumer_capacity",
            "rabbitmq_queue_messages_persistent_bytes",
            "rabbitmq_queue_head_message_timestamp",
        ] {
            assert!(
                !text.lines().any(|l| l.starts_with(&format!("{empty} "))),
                "{empty}"
            );
        }
        // the delivery-limit classic series appears only once there is a count
        assert!(!text.contains("delivery_limit_total{queue_type=\"rabbit_classic_queue\""));
    }

    #[test]
    fn dead_lettered_combinations() {
        let text = render(
            &MetricsSnapshot::default(),
            Registry::Aggregated,
            &DetailedQuery::default(),
        );
        let combos = |fam: &str| -> Vec<String> {
            let p = format!("rabbitmq_global_messages_dead_lettered_{fam}_total{{");
            text.lines()
                .filter_map(|l| l.strip_prefix(p.as_str()))
                .map(|l| {
                    l.replace("queue_type=\"rabbit_", "")
                        .replace("_queue\",dead_letter_strategy=\"", "/")
                })
                .collect()
        };
        assert_eq!(combos("confirmed"), ["quorum/at_least_once\"} 0"]);
        assert_eq!(
            combos("delivery_limit"),
            [
                "quorum/at_least_once\"} 0",
                "quorum/at_most_once\"} 0",
                "quorum/disabled\"} 0"
            ]
        );
        let five = [
            "classic/at_most_once\"} 0",
            "classic/disabled\"} 0",
            "quorum/at_least_once\"} 0",
            "quorum/at_most_once\"} 0",
            "quorum/disabled\"} 0",
        ];
        assert_eq!(combos("expired"), five);
        assert_eq!(combos("rejected"), five);
        assert_eq!(
            combos("maxlen"),
            [
                "classic/at_most_once\"} 0",
                "classic/disabled\"} 0",
                "quorum/at_most_once\"} 0",
                "quorum/disabled\"} 0"
            ]
        );
        // No login yet: the auth families have no series, as in RabbitMQ.
        assert!(!text.contains("rabbitmq_auth_attempts_total{"));
        assert!(has_line(&text, "rabbitmq_channel_consumers 0"));

        let mut snap = MetricsSnapshot::default();
        snap.global.dead_lettered_delivery_limit = 3;
        let text = render(&snap, Registry::Aggregated, &DetailedQuery::default());
        assert!(has_line(&text, "rabbitmq_global_messages_dead_lettered_delivery_limit_total{queue_type=\"rabbit_classic_queue\",dead_letter_strategy=\"at_most_once\"} 3"));
    }

    #[test]
    fn per_object_series_and_escaping() {
        let text = render(&snapshot(), Registry::PerObject, &DetailedQuery::default());
        for line in [
            "rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"q1\"} 1",
            "rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"q\\\"2\\\\\\n\"} 25",
            "rabbitmq_queue_messages{vhost=\"pv\",queue=\"q3\"} 5",
            "rabbitmq_queue_head_message_timestamp{vhost=\"pv\",queue=\"q3\"} NaN",
            "rabbitmq_queue_consumer_capacity{vhost=\"pv\",queue=\"q3\"} 0",
            "rabbitmq_channel_consumers{channel=\"c1 (1)\"} 0",
            "rabbitmq_consumer_prefetch{channel=\"c1 (2)\"} 20",
            "rabbitmq_channel_messages_published_total{channel=\"c1 (1)\"} 11",
            "rabbitmq_channel_messages_delivered_ack_total{channel=\"c1 (2)\"} 10",
            "rabbitmq_connection_incoming_bytes_total{channel=\"127.0.0.1:5000 -> 127.0.0.1:5672\"} 1261",
            "rabbitmq_connections 1",
            "rabbitmq_queues 3",
        ] {
            assert!(has_line(&text, line), "missing {line}");
        }
        // Channels without publishes / queue activity have no series in those groups.
        assert!(!text.contains("rabbitmq_channel_messages_published_total{channel=\"c1 (2)\"}"));
        assert!(!text.contains("rabbitmq_channel_get_total{channel=\"c1 (1)\"}"));
        // Raft: TYPE/HELP only; queue_messages_published: a series per queue.
        assert!(!text.lines().any(|l| l.starts_with("rabbitmq_raft_")));
        assert!(has_line(
            &text,
            "rabbitmq_queue_messages_published_total{queue_vhost=\"pv\",queue=\"q3\"} 5"
        ));
        assert!(has_line(
            &text,
            "# TYPE rabbitmq_auth_attempts_detailed_total counter"
        ));
    }

    #[test]
    fn detailed_groups_are_the_documented_ones() {
        let snap = snapshot();
        // Every un-prefixed family is on /metrics or /metrics/per-object (auth_attempts_detailed).
        let both = render(&snap, Registry::Aggregated, &DetailedQuery::default())
            + &render(&snap, Registry::PerObject, &DetailedQuery::default());
        let help_of = |name: &str| -> Option<String> {
            let p = format!("# HELP {name} ");
            both.lines()
                .find_map(|l| l.strip_prefix(p.as_str()))
                .map(String::from)
        };
        let rows: Vec<&str> = DOC
            .lines()
            .filter(|l| {
                l.starts_with("| `")
                    && (l.contains("| `rabbitmq_detailed_") || l.contains("| `rabbitmq_cluster_"))
            })
            .collect();
        assert_eq!(rows.len(), 20);
        let mut documented: Vec<&str> = vec![];
        for row in rows {
            let cells: Vec<&str> = row.split(" | ").collect();
            let group = cells[0].trim_start_matches("| ").trim_matches('`');
            documented.push(group);
            let expected: Vec<(String, String)> = cells[1]
                .split(", ")
                .map(|f| {
                    let (name, kind) = f.split_once(" (").unwrap_or_default();
                    (
                        name.trim_matches('`').to_string(),
                        kind.trim_end_matches(')').to_string(),
                    )
                })
                .collect();
            let text = render_query(&snap, &format!("family={group}"));
            check_type_then_help(&text);
            let got: Vec<(String, String)> = types(&text)
                .into_iter()
                .filter(|(n, _)| !matches!(*n, "rabbitmq_build_info" | "rabbitmq_identity_info"))
                .map(|(n, k)| (n.to_string(), k.to_string()))
                .collect();
            let mut sorted_got = got.clone();
            sorted_got.sort();
            let mut sorted_expected = expected.clone();
            sorted_expected.sort();
            assert_eq!(sorted_got, sorted_expected, "{group}");
            // HELP texts: the un-prefixed family's
            for (name, _) in &got {
                if let Some(plain) = name.strip_prefix("rabbitmq_detailed_") {
                    let help = text
                        .lines()
                        .find_map(|l| l.strip_prefix(format!("# HELP {name} ").as_str()))
                        .map(String::from);
                    assert_eq!(help, help_of(&format!("rabbitmq_{plain}")), "{name}");
                }
            }
        }
        let mut groups = GROUPS.to_vec();
        groups.sort();
        documented.sort();
        assert_eq!(groups, documented);
        // The cluster families' HELP lines as RabbitMQ prints them.
        let all = render_query(
            &snap,
            "family=vhost_status&family=exchange_names&family=exchange_bindings",
        );
        for l in meta(SAMPLE_CLUSTER, "rabbitmq_cluster_") {
            assert!(has_line(&all, l), "{l}");
        }
        for line in [
            "rabbitmq_cluster_vhost_status{vhost=\"/\"} 1",
            "rabbitmq_cluster_vhost_status{vhost=\"pv\"} 1",
            "rabbitmq_cluster_exchange_name{vhost=\"/\",exchange=\"amq.topic\",type=\"topic\"} 1",
            "rabbitmq_cluster_exchange_bindings{vhost=\"/\",exchange=\"amq.topic\",type=\"topic\"} 2",
        ] {
            assert!(has_line(&all, line), "missing {line}");
        }
        assert!(!all.contains("exchange=\"\""));
        assert!(!all.contains("amq.rabbitmq.trace"));
    }

    #[test]
    fn detailed_family_and_vhost_filters() {
        let snap = snapshot();
        let detailed = |t: &str| -> Vec<String> {
            types(t)
                .into_iter()
                .filter(|(n, _)| {
                    n.starts_with("rabbitmq_detailed_") || n.starts_with("rabbitmq_cluster_")
                })
                .map(|(n, _)| n.to_string())
                .collect()
        };
        // No family, unknown names, a comma list: only build and identity info.
        for q in [
            "",
            "family=bogus",
            "family=QUEUE_COARSE_METRICS",
            "family=queue_coarse_metrics%2Cqueue_metrics",
            "vhost=%2F",
        ] {
            let text = render_query(&snap, q);
            assert!(detailed(&text).is_empty(), "{q}");
            assert_eq!(
                types(&text),
                [
                    ("rabbitmq_build_info", "untyped"),
                    ("rabbitmq_identity_info", "untyped")
                ],
                "{q}"
            );
        }
        let text = render_query(&snap, "family=queue_coarse_metrics&vhost=%2F");
        assert_eq!(
            detailed(&text),
            [
                "rabbitmq_detailed_queue_messages_ready",
                "rabbitmq_detailed_queue_messages_unacked",
                "rabbitmq_detailed_queue_messages",
                "rabbitmq_detailed_queue_process_reductions_total"
            ]
        );
        assert!(has_line(
            &text,
            "rabbitmq_detailed_queue_messages_ready{vhost=\"/\",queue=\"q1\"} 1"
        ));
        assert!(has_line(
            &text,
            "rabbitmq_detailed_queue_messages{vhost=\"/\",queue=\"q\\\"2\\\\\\n\"} 35"
        ));
        assert!(!text.contains("vhost=\"pv\""));
        // The vhost filter repeats; `/` plain works too.
        let text = render_query(&snap, "vhost=pv&family=queue_coarse_metrics&vhost=/");
        assert!(text.contains("queue=\"q1\"") && text.contains("queue=\"q3\""));
        let text = render_query(&snap, "family=queue_coarse_metrics&vhost=pv");
        assert!(!text.contains("queue=\"q1\"") && text.contains("queue=\"q3\""));
        let text = render_query(&snap, "family=queue_coarse_metrics&vhost=nope");
        assert_eq!(detailed(&text).len(), 4);
        assert!(!text.contains("rabbitmq_detailed_queue_messages{"));
        // ... and applies to queue groups only.
        let text = render_query(&snap, "family=channel_metrics&vhost=nope");
        assert!(has_line(
            &text,
            "rabbitmq_detailed_channel_consumers{channel=\"c1 (2)\"} 1"
        ));
        // Two groups, in canonical order whatever the request's; duplicates once.
        let text = render_query(&snap, "family=queue_coarse_metrics&family=connection_churn_metrics&family=queue_coarse_metrics");
        let names = detailed(&text);
        assert_eq!(names.len(), 11);
        assert_eq!(names[0], "rabbitmq_detailed_connections_opened_total");
        assert!(has_line(
            &text,
            "rabbitmq_detailed_connections_opened_total 7"
        ));
        // queue_consumer_count alone, and with queue_metrics: consumers printed once.
        let text = render_query(&snap, "family=queue_consumer_count");
        assert_eq!(detailed(&text), ["rabbitmq_detailed_queue_consumers"]);
        assert!(has_line(
            &text,
            "rabbitmq_detailed_queue_consumers{vhost=\"/\",queue=\"q\\\"2\\\\\\n\"} 1"
        ));
        let text = render_query(&snap, "family=queue_consumer_count&family=queue_metrics");
        assert_eq!(
            text.matches("# TYPE rabbitmq_detailed_queue_consumers ")
                .count(),
            1
        );
        assert_eq!(detailed(&text).len(), 18);
        // No-series groups.
        let text = render_query(
            &snap,
            "family=ra_metrics&family=auth_attempt_detailed_metrics",
        );
        assert_eq!(detailed(&text).len(), 9);
        assert!(!text.lines().any(|l| l.starts_with("rabbitmq_detailed_")));
        // Publishes per queue, with the vhost filter.
        let text = render_query(&snap, "family=channel_queue_exchange_metrics&vhost=pv");
        assert!(has_line(
            &text,
            "rabbitmq_detailed_queue_messages_published_total{queue_vhost=\"pv\",queue=\"q3\"} 5"
        ));
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("rabbitmq_detailed_queue_messages_published_total"))
                .count(),
            1
        );
    }

    #[test]
    fn query_parsing() {
        let q = DetailedQuery::parse("family=a&vhost=%2F&family=b+c&x=1&vhost=v%2x&vhost&family=");
        assert_eq!(q.families, ["a", "b c", ""]);
        assert_eq!(q.vhosts, ["/", "v%2x", ""]);
        assert_eq!(percent_decode("%e2%9C%93%"), "✓%");
    }

    #[test]
    fn floats_print_as_erlang_does() {
        let mut scratch = String::new();
        let show = |v: f64, scratch: &mut String| {
            let mut out = String::new();
            push_float(&mut out, scratch, v);
            out
        };
        for (v, s) in [
            (0.0, "0.0"),
            (5.4e-5, "5.4e-5"),
            (0.007206, "0.007206"),
            (3.33e-4, "3.33e-4"),
            (0.04561, "0.04561"),
            (193.111, "193.111"),
            (0.13236040775987412, "0.13236040775987412"),
            (60.0, "60.0"),
            (100.0, "100.0"),
            (1000.0, "1.0e3"),
            (1796606529.0, "1796606529.0"),
            (-2.5, "-2.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(show(v, &mut scratch), s, "{v}");
            if v.is_finite() {
                assert_eq!(s.parse::<f64>().ok(), Some(v));
            }
        }
    }

    #[test]
    fn permanent_id_is_stable_and_rabbitmq_shaped() {
        let id = permanent_id("warren@host");
        assert_eq!(id, permanent_id("warren@host"));
        assert_ne!(id, permanent_id("warren@other"));
        let tail = id.strip_prefix("rabbitmq-cluster-id-").unwrap_or_default();
        assert_eq!(tail.len(), 22);
        assert!(tail
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
