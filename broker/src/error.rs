//! Protocol errors as typed values.
//!
//! Every handler returns `Result<_, AmqpError>`. The connection turns an error into `channel.close` or
//! `connection.close` in one place (`connection::Connection::fail`), by RabbitMQ's rule: a hard reply code,
//! or any error on channel 0, closes the connection; a soft code closes only the channel.

use amqp_codec::ReplyCode;
use std::fmt;

/// An AMQP error: reply code, RabbitMQ-style text, and the method that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpError {
    /// The reply code.
    pub code: ReplyCode,
    /// The explanation, without the `CODE_NAME - ` prefix.
    pub explanation: String,
    /// Class id of the offending method (0 if none).
    pub class_id: u16,
    /// Method id of the offending method (0 if none).
    pub method_id: u16,
}

impl AmqpError {
    /// An error with the given code and explanation; the method ids are filled in by the dispatcher.
    pub fn new(code: ReplyCode, explanation: impl Into<String>) -> Self {
        AmqpError {
            code,
            explanation: explanation.into(),
            class_id: 0,
            method_id: 0,
        }
    }

    /// Sets the offending method's ids unless already set.
    pub fn on_method(mut self, class_id: u16, method_id: u16) -> Self {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    /// The reply text as RabbitMQ writes it: `NOT_FOUND - no queue 'q' in vhost '/'`. A text over 255
    /// bytes is cut to 252 and ends in `...`, as RabbitMQ does.
    pub fn reply_text(&self) -> String {
        let mut text = format!("{} - {}", self.code.name(), self.explanation);
        if text.len() > 255 {
            let mut cut = 252;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        text
    }

    /// True if this error must close the whole connection.
    pub fn closes_connection(&self, channel: u16) -> bool {
        channel == 0 || self.code.is_hard()
    }

    /// 404 NOT_FOUND.
    pub fn not_found(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotFound, explanation)
    }
    /// 406 PRECONDITION_FAILED.
    pub fn precondition_failed(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::PreconditionFailed, explanation)
    }
    /// 403 ACCESS_REFUSED.
    pub fn access_refused(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::AccessRefused, explanation)
    }
    /// 405 RESOURCE_LOCKED.
    pub fn resource_locked(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::ResourceLocked, explanation)
    }
    /// 320 CONNECTION_FORCED.
    pub fn connection_forced(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::ConnectionForced, explanation)
    }
    /// 530 NOT_ALLOWED.
    pub fn not_allowed(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotAllowed, explanation)
    }
    /// 503 COMMAND_INVALID.
    pub fn command_invalid(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::CommandInvalid, explanation)
    }
    /// 504 CHANNEL_ERROR.
    pub fn channel_error(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::ChannelError, explanation)
    }
    /// 505 UNEXPECTED_FRAME.
    pub fn unexpected_frame(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::UnexpectedFrame, explanation)
    }
    /// 501 FRAME_ERROR.
    pub fn frame_error(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::FrameError, explanation)
    }
    /// 540 NOT_IMPLEMENTED.
    pub fn not_implemented(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotImplemented, explanation)
    }
    /// 541 INTERNAL_ERROR.
    pub fn internal(explanation: impl Into<String>) -> Self {
        Self::new(ReplyCode::InternalError, explanation)
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reply_text())?;
        if self.class_id != 0 {
            write!(f, " (class {}, method {})", self.class_id, self.method_id)?;
        }
        Ok(())
    }
}

impl std::error::Error for AmqpError {}

/// The result type of protocol handlers.
pub type AmqpResult<T> = Result<T, AmqpError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_text_has_rabbitmq_prefix_and_is_bounded() {
        let e = AmqpError::not_found("no queue 'q' in vhost '/'");
        assert_eq!(e.reply_text(), "NOT_FOUND - no queue 'q' in vhost '/'");
        assert!(!e.closes_connection(1));
        assert!(e.closes_connection(0));
        assert!(AmqpError::not_allowed("x").closes_connection(1));
        let long = AmqpError::not_found("é".repeat(300));
        assert!(long.reply_text().len() <= 255);
    }
}
