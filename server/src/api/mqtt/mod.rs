//! MQTT front-ends: the device gateway of the embedded broker, and the
//! handler of agent messages arriving on `latchkey/v1/d/<id>/up`.

pub mod gateway;
pub mod uplink;
