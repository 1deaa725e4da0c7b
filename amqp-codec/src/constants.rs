//! Protocol constants and reply codes.

/// Frame type octet of a method frame.
pub const FRAME_METHOD: u8 = 1;
/// Frame type octet of a content header frame.
pub const FRAME_HEADER: u8 = 2;
/// Frame type octet of a content body frame.
pub const FRAME_BODY: u8 = 3;
/// Frame type octet of a heartbeat frame.
pub const FRAME_HEARTBEAT: u8 = 8;
/// The octet that ends every frame.
pub const FRAME_END: u8 = 0xCE;
/// Bytes a frame adds around its payload: type, channel, size, frame-end.
pub const FRAME_OVERHEAD: usize = 8;
/// The smallest frame_max a peer may negotiate; also the limit before tuning is done.
pub const FRAME_MIN_SIZE: u32 = 4096;
/// Class id of `basic`, the only content-bearing class.
pub const CLASS_BASIC: u16 = 60;

/// AMQP 0-9-1 reply codes, named as RabbitMQ names them in reply texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ReplyCode {
    /// 200
    ReplySuccess = 200,
    /// 311 (soft)
    ContentTooLarge = 311,
    /// 312 (used in basic.return)
    NoRoute = 312,
    /// 313 (used in basic.return)
    NoConsumers = 313,
    /// 320 (hard)
    ConnectionForced = 320,
    /// 402 (hard)
    InvalidPath = 402,
    /// 403 (soft)
    AccessRefused = 403,
    /// 404 (soft)
    NotFound = 404,
    /// 405 (soft)
    ResourceLocked = 405,
    /// 406 (soft)
    PreconditionFailed = 406,
    /// 501 (hard)
    FrameError = 501,
    /// 502 (hard)
    SyntaxError = 502,
    /// 503 (hard)
    CommandInvalid = 503,
    /// 504 (hard)
    ChannelError = 504,
    /// 505 (hard)
    UnexpectedFrame = 505,
    /// 506 (hard)
    ResourceError = 506,
    /// 530 (hard)
    NotAllowed = 530,
    /// 540 (hard)
    NotImplemented = 540,
    /// 541 (hard)
    InternalError = 541,
}

impl ReplyCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// RabbitMQ's name for the code, as it starts reply texts (`NOT_FOUND - ...`).
    pub fn name(self) -> &'static str {
        match self {
            ReplyCode::ReplySuccess => "OK",
            ReplyCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::NoConsumers => "NO_CONSUMERS",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::InvalidPath => "INVALID_PATH",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Hard errors close the whole connection; soft ones only the channel.
    pub fn is_hard(self) -> bool {
        !matches!(
            self,
            ReplyCode::ContentTooLarge
                | ReplyCode::NoRoute
                | ReplyCode::NoConsumers
                | ReplyCode::AccessRefused
                | ReplyCode::NotFound
                | ReplyCode::ResourceLocked
                | ReplyCode::PreconditionFailed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_and_soft_codes_follow_the_spec() {
        assert!(!ReplyCode::NotFound.is_hard());
        assert!(!ReplyCode::PreconditionFailed.is_hard());
        assert!(ReplyCode::FrameError.is_hard());
        assert!(ReplyCode::NotAllowed.is_hard());
        assert_eq!(ReplyCode::ResourceLocked.code(), 405);
        assert_eq!(ReplyCode::NotFound.name(), "NOT_FOUND");
    }
}
