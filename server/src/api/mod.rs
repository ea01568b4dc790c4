//! Front-ends, one protocol family each: decode, call `core`, encode.
//! Protocol error dialects (gRPC status, MQTT CONNACK codes) live here only.

pub mod accept;
pub mod apple;
pub mod grpc;
pub mod https;
pub mod long_poll;
pub mod mqtt;
