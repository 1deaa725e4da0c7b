//! Per-channel assembly of content: a content-bearing method, then one header frame, then body frames
//! until `body_size` bytes have arrived.

use crate::frame::ContentHeader;
use crate::properties::{Properties, PropertiesError};
use bytes::{Bytes, BytesMut};

/// A content-bearing method with its properties and whole body.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled<M> {
    /// The method that announced the content (basic.publish for a server).
    pub method: M,
    /// The properties, raw.
    pub properties: Properties,
    /// The body: the single body frame's bytes when it came in one frame, else one buffer.
    pub body: Bytes,
}

/// What went wrong while assembling; the caller maps these to reply codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// A header or body frame arrived when a method frame was expected (505).
    #[error("expected method frame, got non method frame instead")]
    ExpectedMethod,
    /// Something other than the content header followed the method (505).
    #[error("expected content header for class 60, got non content header frame instead")]
    ExpectedHeader,
    /// Something other than a body frame arrived before the body was complete (505).
    #[error("expected content body, got non content body frame instead")]
    ExpectedBody,
    /// The header names a class other than basic (505).
    #[error("expected content header for class 60, got one for class {0} instead")]
    WrongClass(u16),
    /// More body bytes than the header announced (501).
    #[error("received body of {got} bytes, exceeding the declared size {declared}")]
    BodyTooLong {
        /// Bytes received so far.
        got: u64,
        /// Size the header announced.
        declared: u64,
    },
    /// The announced body is over the broker's maximum message size (406, channel error).
    #[error("message size {size} is larger than configured max size {max}")]
    MessageTooLarge {
        /// Announced size.
        size: u64,
        /// Configured maximum.
        max: u64,
    },
    /// The property list is malformed (502).
    #[error(transparent)]
    Properties(#[from] PropertiesError),
}

/// The assembler's state; one per channel.
#[derive(Debug, Default)]
pub enum ContentAssembler<M> {
    /// Not inside a content sequence.
    #[default]
    Idle,
    /// Got the method, waiting for the header.
    Header(M),
    /// Got method and header, collecting body frames.
    Body {
        /// The method.
        method: M,
        /// Its properties.
        properties: Properties,
        /// Size announced by the header.
        size: u64,
        /// Body received so far.
        parts: BodyParts,
    },
}

/// Body bytes received so far: one frame is kept as is, several are joined.
#[derive(Debug, Default)]
pub enum BodyParts {
    /// Nothing yet.
    #[default]
    Empty,
    /// Exactly one frame.
    One(Bytes),
    /// Several frames, joined.
    Many(BytesMut),
}

impl BodyParts {
    fn len(&self) -> u64 {
        match self {
            BodyParts::Empty => 0,
            BodyParts::One(b) => b.len() as u64,
            BodyParts::Many(b) => b.len() as u64,
        }
    }

    fn push(&mut self, chunk: Bytes, total: u64) {
        *self = match std::mem::take(self) {
            BodyParts::Empty => BodyParts::One(chunk),
            BodyParts::One(first) => {
                // Grow as data arrives rather than trusting the announced size up front.
                let mut joined = BytesMut::with_capacity((total as usize).min(4 << 20));
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&chunk);
                BodyParts::Many(joined)
            }
            BodyParts::Many(mut joined) => {
                joined.extend_from_slice(&chunk);
                BodyParts::Many(joined)
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            BodyParts::Empty => Bytes::new(),
            BodyParts::One(b) => b,
            BodyParts::Many(b) => b.freeze(),
        }
    }
}

impl<M> ContentAssembler<M> {
    /// True when no content sequence is in progress (a method frame may come next).
    pub fn is_idle(&self) -> bool {
        matches!(self, ContentAssembler::Idle)
    }

    /// A content-bearing method arrived; its header must come next.
    pub fn start(&mut self, method: M) -> Result<(), ContentError> {
        match self {
            ContentAssembler::Idle => {
                *self = ContentAssembler::Header(method);
                Ok(())
            }
            ContentAssembler::Header(_) => Err(ContentError::ExpectedHeader),
            ContentAssembler::Body { .. } => Err(ContentError::ExpectedBody),
        }
    }

    /// Checks that a non-content method may arrive now.
    pub fn check_method(&self) -> Result<(), ContentError> {
        match self {
            ContentAssembler::Idle => Ok(()),
            ContentAssembler::Header(_) => Err(ContentError::ExpectedHeader),
            ContentAssembler::Body { .. } => Err(ContentError::ExpectedBody),
        }
    }

    /// A header frame arrived. Completes at once for an empty body.
    pub fn header(
        &mut self,
        header: ContentHeader,
        max_size: u64,
    ) -> Result<Option<Assembled<M>>, ContentError> {
        let method = match std::mem::take(self) {
            ContentAssembler::Header(m) => m,
            ContentAssembler::Idle => return Err(ContentError::ExpectedMethod),
            body @ ContentAssembler::Body { .. } => {
                *self = body;
                return Err(ContentError::ExpectedBody);
            }
        };
        if header.class_id != crate::constants::CLASS_BASIC {
            return Err(ContentError::WrongClass(header.class_id));
        }
        if header.body_size > max_size {
            return Err(ContentError::MessageTooLarge {
                size: header.body_size,
                max: max_size,
            });
        }
        let properties = Properties::new(header.properties)?;
        if header.body_size == 0 {
            return Ok(Some(Assembled {
                method,
                properties,
                body: Bytes::new(),
            }));
        }
        *self = ContentAssembler::Body {
            method,
            properties,
            size: header.body_size,
            parts: BodyParts::Empty,
        };
        Ok(None)
    }

    /// A body frame arrived. Completes when the announced size is reached.
    pub fn body(&mut self, chunk: Bytes) -> Result<Option<Assembled<M>>, ContentError> {
        match self {
            ContentAssembler::Body { size, parts, .. } => {
                let got = parts.len() + chunk.len() as u64;
                if got > *size {
                    let declared = *size;
                    *self = ContentAssembler::Idle;
                    return Err(ContentError::BodyTooLong { got, declared });
                }
                let total = *size;
                parts.push(chunk, total);
                if got < total {
                    return Ok(None);
                }
            }
            ContentAssembler::Idle => return Err(ContentError::ExpectedMethod),
            ContentAssembler::Header(_) => return Err(ContentError::ExpectedHeader),
        }
        match std::mem::take(self) {
            ContentAssembler::Body {
                method,
                properties,
                parts,
                ..
            } => Ok(Some(Assembled {
                method,
                properties,
                body: parts.into_bytes(),
            })),
            _ => unreachable!("checked above"),
        }
    }

    /// Drops any partial content (channel closed).
    pub fn reset(&mut self) {
        *self = ContentAssembler::Idle;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: u64) -> ContentHeader {
        ContentHeader {
            class_id: 60,
            body_size: size,
            properties: Bytes::from_static(&[0, 0]),
        }
    }

    #[test]
    fn assembles_one_and_many_frames() {
        let mut a = ContentAssembler::default();
        a.start(1).unwrap();
        assert_eq!(a.header(header(5), 100).unwrap(), None);
        let done = a.body(Bytes::from_static(b"hello")).unwrap().unwrap();
        assert_eq!(done.body, Bytes::from_static(b"hello"));
        assert!(a.is_idle());

        a.start(2).unwrap();
        a.header(header(6), 100).unwrap();
        assert_eq!(a.body(Bytes::from_static(b"abc")).unwrap(), None);
        let done = a.body(Bytes::from_static(b"def")).unwrap().unwrap();
        assert_eq!((done.method, &done.body[..]), (2, &b"abcdef"[..]));
    }

    #[test]
    fn empty_body_completes_on_header() {
        let mut a = ContentAssembler::default();
        a.start(()).unwrap();
        assert!(a.header(header(0), 100).unwrap().is_some());
    }

    #[test]
    fn out_of_order_frames_are_errors() {
        let mut a: ContentAssembler<u8> = ContentAssembler::default();
        assert_eq!(a.body(Bytes::new()), Err(ContentError::ExpectedMethod));
        a.start(1).unwrap();
        assert_eq!(a.check_method(), Err(ContentError::ExpectedHeader));
        a.header(header(2), 100).unwrap();
        assert_eq!(a.check_method(), Err(ContentError::ExpectedBody));
        assert!(matches!(
            a.body(Bytes::from_static(b"abc")),
            Err(ContentError::BodyTooLong { .. })
        ));
        a.start(1).unwrap();
        assert!(matches!(
            a.header(header(101), 100),
            Err(ContentError::MessageTooLarge { .. })
        ));
    }
}
