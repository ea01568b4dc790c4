//! Latchkey wire types (`latchkey.v1`): the gRPC `DeviceService` and
//! `AdminService`, and the protobuf messages carried over MQTT.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("latchkey.v1");
}

pub mod limits;
pub mod text;

/// MQTT topic names, one place for server and agent.
pub mod topics {
    /// Prefix of every per-device topic.
    pub const DEVICE_PREFIX: &str = "latchkey/v1/d/";

    /// Server -> agent: commands and policy.
    pub fn command(device_id: &str) -> String {
        format!("{DEVICE_PREFIX}{device_id}/cmd")
    }

    /// Agent -> server: acknowledgements, posture, hello.
    pub fn up(device_id: &str) -> String {
        format!("{DEVICE_PREFIX}{device_id}/up")
    }

    /// Server -> agent: device-auth requests.
    pub fn auth(device_id: &str) -> String {
        format!("{DEVICE_PREFIX}{device_id}/auth")
    }

    /// The filter the server subscribes to for every device's uplink.
    pub const ALL_UP: &str = "latchkey/v1/d/+/up";

    /// Returns the device id of an uplink topic, `None` for any other topic.
    pub fn device_of_up(topic: &str) -> Option<&str> {
        let rest = topic.strip_prefix(DEVICE_PREFIX)?;
        let id = rest.strip_suffix("/up")?;
        (!id.is_empty() && !id.contains('/')).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::topics;

    #[test]
    fn uplink_topic_names_its_device_and_nothing_else_does() {
        assert_eq!(topics::device_of_up(&topics::up("abc")), Some("abc"));
        assert_eq!(topics::device_of_up(&topics::command("abc")), None);
        assert_eq!(topics::device_of_up("latchkey/v1/d//up"), None);
        assert_eq!(topics::device_of_up("latchkey/v1/d/a/b/up"), None);
    }
}
