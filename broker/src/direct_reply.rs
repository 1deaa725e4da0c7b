//! Direct reply-to (`amq.rabbitmq.reply-to`): RPC replies delivered straight to the requesting
//! channel, without a queue.
//!
//! A channel consumes the pseudo-queue `amq.rabbitmq.reply-to` (no-ack only) and gets a unique
//! address `amq.rabbitmq.reply-to.<token>`. A request it publishes with that `reply_to` carries the
//! address instead; a reply published to the default exchange with the address as routing key is
//! delivered to the consumer at once. Replies to an address whose consumer is gone are unroutable.

use crate::message::Message;
use rand::Rng;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, Weak};

/// The pseudo-queue a reply consumer consumes from, and the reply_to value that asks for it.
pub(crate) const REPLY_QUEUE: &str = "amq.rabbitmq.reply-to";
/// Prefix of reply addresses.
pub(crate) const REPLY_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// Where replies to an address go: the requesting channel.
pub trait ReplySink: Send + Sync + Debug {
    /// Delivers a reply to the reply consumer `consumer_tag` (no ack); false if the channel
    /// closed.
    fn deliver_reply(&self, consumer_tag: &Arc<str>, message: Arc<Message>) -> bool;
}

#[derive(Debug)]
struct Target {
    channel: Weak<dyn ReplySink>,
    consumer_tag: Arc<str>,
}

/// A vhost's live reply addresses.
#[derive(Debug, Default)]
pub struct ReplyTargets {
    targets: Mutex<HashMap<String, Target>>,
}

impl ReplyTargets {
    /// Registers a reply consumer; returns its address.
    pub fn register(&self, channel: Weak<dyn ReplySink>, consumer_tag: Arc<str>) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut rng = rand::thread_rng();
        let token: String = (0..32)
            .map(|_| ALPHABET[rng.gen_range(0..64)] as char)
            .collect();
        let address = format!("{REPLY_PREFIX}{token}");
        self.lock().insert(
            address.clone(),
            Target {
                channel,
                consumer_tag,
            },
        );
        address
    }

    /// Forgets an address (consumer cancelled or channel closed).
    pub fn unregister(&self, address: &str) {
        self.lock().remove(address);
    }

    /// True if the address has a live consumer.
    pub fn is_live(&self, address: &str) -> bool {
        self.lock()
            .get(address)
            .is_some_and(|t| t.channel.strong_count() > 0)
    }

    /// Delivers a reply to its address; false if nobody is there (unroutable).
    pub fn deliver(&self, address: &str, message: Arc<Message>) -> bool {
        let (channel, tag) = {
            let targets = self.lock();
            let Some(t) = targets.get(address) else {
                return false;
            };
            let Some(ch) = t.channel.upgrade() else {
                return false;
            };
            (ch, t.consumer_tag.clone())
        };
        channel.deliver_reply(&tag, message)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Target>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }
}
