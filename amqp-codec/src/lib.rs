//! AMQP 0-9-1 framing for the Warren broker.
//!
//! Method payloads are parsed and generated with the `amq-protocol` crate (the spec as data);
//! this crate adds what a server needs on top of it:
//!
//! * frame splitting that checks the frame size against `frame_max` *before* buffering the payload,
//!   and checks the frame-end octet ([`frame`]);
//! * content headers whose properties are kept as raw bytes, so that they are forwarded byte for byte
//!   and only parsed when a field is needed ([`properties`]);
//! * bodies kept as [`bytes::Bytes`] slices of the read buffer (no copy on decode), and split to the
//!   peer's `frame_max` on encode;
//! * a per-channel content assembler (method, then header, then body frames) ([`content`]);
//! * reply codes with RabbitMQ's names and the hard/soft split ([`constants`]).
//!
//! It knows nothing of vhosts, queues or exchanges.

pub mod constants;
pub mod content;
pub mod frame;
pub mod properties;
pub mod rawtable;
pub mod table;

pub use amq_protocol::protocol;
pub use amq_protocol::protocol::AMQPClass;
pub use amq_protocol::types;
pub use constants::ReplyCode;
pub use content::{Assembled, ContentAssembler, ContentError};
pub use frame::{decode_frame, Frame, FrameError, PROTOCOL_HEADER};
pub use properties::{Properties, PropertiesError};
