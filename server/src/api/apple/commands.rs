//! A command as the server sends it on the command channel
//! (`{CommandUUID, Command: {RequestType, …}}`, an XML property list). The
//! device's report that answers it is read in `report.rs`.
//!
//! Commands are built to Apple's schema `apple/device-management`,
//! `mdm/commands/`: `device.lock.yaml`, `device.erase.yaml`,
//! `information.device.yaml`, `information.security.yaml`,
//! `profile.list.yaml`, `profile.install.yaml`, `profile.remove.yaml`,
//! `device.restart.yaml`, `device.lostmode.enable.yaml`,
//! `device.lostmode.disable.yaml`, `device.lostmode.location.yaml` and
//! `device.configured.yaml`. The report envelope (`Status`, `CommandUUID`,
//! `ErrorChain`) is in none of the YAML files; it follows Apple's
//! documentation of the command responses (e.g. `DeviceLockResponse` and
//! its `ErrorChainItem`), and the result keys follow each command's
//! `responsekeys`.

use plist::{Dictionary, Value};

use crate::apple_profiles::{text, to_xml};
use crate::domain::apple::command::AppleCommand;
use crate::domain::ids::CommandId;

pub use crate::apple_profiles::EncodeError;

/// Puts `value` under `key` when there is one.
fn put_text(
    body: &mut Dictionary,
    key: &'static str,
    value: Option<&str>,
) -> Result<(), EncodeError> {
    if let Some(value) = value {
        body.insert(key.into(), text(key, value)?);
    }
    Ok(())
}

/// The command as the server answers a report with it:
/// `{CommandUUID, Command: {RequestType, …}}`. Optional keys are written
/// only when set; booleans whose schema default is `false` only when true.
pub fn encode_command(
    command_uuid: &CommandId,
    command: &AppleCommand,
) -> Result<Vec<u8>, EncodeError> {
    let mut body = Dictionary::new();
    body.insert(
        "RequestType".into(),
        Value::String(command.request_type().into()),
    );
    match command {
        AppleCommand::DeviceLock {
            pin,
            message,
            phone_number,
        } => {
            put_text(&mut body, "PIN", pin.as_ref().map(|p| p.expose()))?;
            put_text(&mut body, "Message", message.as_deref())?;
            put_text(&mut body, "PhoneNumber", phone_number.as_deref())?;
        }
        AppleCommand::EraseDevice {
            pin,
            preserve_data_plan,
            disallow_proximity_setup,
            obliteration_behavior,
        } => {
            put_text(&mut body, "PIN", pin.as_ref().map(|p| p.expose()))?;
            put_text(
                &mut body,
                "ObliterationBehavior",
                obliteration_behavior.map(|b| b.as_str()),
            )?;
            if *preserve_data_plan {
                body.insert("PreserveDataPlan".into(), Value::Boolean(true));
            }
            if *disallow_proximity_setup {
                body.insert("DisallowProximitySetup".into(), Value::Boolean(true));
            }
        }
        AppleCommand::DeviceInformation { queries } => {
            let queries = queries
                .iter()
                .map(|q| text("Queries", q))
                .collect::<Result<Vec<_>, _>>()?;
            body.insert("Queries".into(), Value::Array(queries));
        }
        AppleCommand::ProfileList { managed_only } => {
            if *managed_only {
                body.insert("ManagedOnly".into(), Value::Boolean(true));
            }
        }
        AppleCommand::InstallProfile { payload } => {
            body.insert("Payload".into(), Value::Data(payload.clone()));
        }
        AppleCommand::RemoveProfile { identifier } => {
            put_text(&mut body, "Identifier", Some(identifier))?;
        }
        AppleCommand::EnableLostMode(notice) => {
            put_text(&mut body, "Message", notice.message())?;
            put_text(&mut body, "PhoneNumber", notice.phone_number())?;
            put_text(&mut body, "Footnote", notice.footnote())?;
        }
        AppleCommand::SecurityInfo
        | AppleCommand::RestartDevice
        | AppleCommand::DisableLostMode
        | AppleCommand::DeviceLocation
        | AppleCommand::DeviceConfigured => {}
    }
    let mut envelope = Dictionary::new();
    envelope.insert(
        "CommandUUID".into(),
        Value::String(command_uuid.as_str().into()),
    );
    envelope.insert("Command".into(), Value::Dictionary(body));
    to_xml(&Value::Dictionary(envelope))
}

/// Decodes a report on the command channel (XML or binary property list).
/// A report other than `Idle` must carry its `CommandUUID`.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::apple::wire::tests_support::{golden, golden_names};
    use crate::domain::apple::command::{FindMyPin, LostModeNotice, ObliterationBehavior};

    const UUID: &str = "0123456789abcdef0123456789abcdef";

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Text,
        Boolean,
        Data,
        TextArray,
    }

    /// Each command's `payloadkeys` in Apple's `mdm/commands/*.yaml`: key,
    /// type, and whether the schema requires it.
    /// A command's keys: name, type, and whether the schema requires it.
    type Keys = &'static [(&'static str, Kind, bool)];

    const SCHEMA: &[(&str, Keys)] = &[
        (
            "DeviceLock",
            &[
                ("PIN", Kind::Text, false),
                ("Message", Kind::Text, false),
                ("PhoneNumber", Kind::Text, false),
            ],
        ),
        (
            "EraseDevice",
            &[
                ("PIN", Kind::Text, false),
                ("PreserveDataPlan", Kind::Boolean, false),
                ("DisallowProximitySetup", Kind::Boolean, false),
                ("ObliterationBehavior", Kind::Text, false),
            ],
        ),
        (
            "DeviceInformation",
            &[
                ("Queries", Kind::TextArray, true),
                ("DeviceAttestationNonce", Kind::Data, false),
            ],
        ),
        ("SecurityInfo", &[]),
        ("ProfileList", &[("ManagedOnly", Kind::Boolean, false)]),
        ("InstallProfile", &[("Payload", Kind::Data, true)]),
        ("RemoveProfile", &[("Identifier", Kind::Text, true)]),
        (
            "RestartDevice",
            &[
                ("RebuildKernelCache", Kind::Boolean, false),
                ("KextPaths", Kind::TextArray, false),
                ("NotifyUser", Kind::Boolean, false),
            ],
        ),
        (
            "EnableLostMode",
            &[
                ("Message", Kind::Text, false),
                ("PhoneNumber", Kind::Text, false),
                ("Footnote", Kind::Text, false),
            ],
        ),
        ("DisableLostMode", &[]),
        ("DeviceLocation", &[]),
        ("DeviceConfigured", &[]),
    ];

    fn kind_matches(kind: Kind, value: &Value) -> bool {
        match (kind, value) {
            (Kind::Text, Value::String(_))
            | (Kind::Boolean, Value::Boolean(_))
            | (Kind::Data, Value::Data(_)) => true,
            (Kind::TextArray, Value::Array(items)) => {
                items.iter().all(|item| matches!(item, Value::String(_)))
            }
            _ => false,
        }
    }

    /// Checks an encoded command against the schema: the envelope, the
    /// request type, every key's name and type, the required keys.
    fn check_against_schema(encoded: &[u8]) -> Value {
        let value = Value::from_reader_xml(encoded).unwrap();
        let envelope = value.as_dictionary().unwrap();
        assert_eq!(envelope.len(), 2, "{envelope:?}");
        assert_eq!(
            envelope.get("CommandUUID").and_then(Value::as_string),
            Some(UUID)
        );
        let command = envelope
            .get("Command")
            .and_then(Value::as_dictionary)
            .unwrap();
        let request_type = command
            .get("RequestType")
            .and_then(Value::as_string)
            .unwrap();
        let (_, keys) = SCHEMA
            .iter()
            .find(|(name, _)| *name == request_type)
            .unwrap_or_else(|| panic!("{request_type} is not in the schema table"));
        for (key, value) in command {
            if key == "RequestType" {
                continue;
            }
            let (_, kind, _) = keys
                .iter()
                .find(|(name, _, _)| name == key)
                .unwrap_or_else(|| panic!("{request_type} has no key {key} in the schema"));
            assert!(
                kind_matches(*kind, value),
                "{request_type}.{key} is {value:?}, expected {kind:?}"
            );
        }
        for (key, _, required) in keys.iter() {
            if *required {
                assert!(command.contains_key(key), "{request_type} lacks {key}");
            }
        }
        value
    }

    fn commands() -> Vec<AppleCommand> {
        vec![
            AppleCommand::DeviceLock {
                pin: FindMyPin::parse("123456"),
                message: Some("This Mac is locked. Call IT.".into()),
                phone_number: Some("+1 555 0100".into()),
            },
            AppleCommand::EraseDevice {
                pin: FindMyPin::parse("654321"),
                preserve_data_plan: true,
                disallow_proximity_setup: true,
                obliteration_behavior: Some(ObliterationBehavior::Default),
            },
            AppleCommand::inventory(),
            AppleCommand::SecurityInfo,
            AppleCommand::ProfileList { managed_only: true },
            AppleCommand::InstallProfile {
                payload: b"<plist version=\"1.0\"><dict/></plist>".to_vec(),
            },
            AppleCommand::RemoveProfile {
                identifier: "com.example.mdm.policy".into(),
            },
            AppleCommand::RestartDevice,
            AppleCommand::EnableLostMode(
                LostModeNotice::new(
                    Some("This iPhone was lost. Please call.".into()),
                    Some("+1 555 0100".into()),
                    Some("Reward if found".into()),
                )
                .unwrap(),
            ),
            AppleCommand::DisableLostMode,
            AppleCommand::DeviceLocation,
            AppleCommand::DeviceConfigured,
        ]
    }

    #[test]
    fn every_command_encodes_to_its_golden_file_and_the_schema() {
        let id = CommandId::parse(UUID).unwrap();
        let mut covered = Vec::new();
        for command in commands() {
            let request_type = command.request_type();
            let encoded = encode_command(&id, &command).unwrap();
            assert!(encoded.starts_with(b"<?xml"), "{request_type} is not XML");
            let value = check_against_schema(&encoded);
            let expected =
                Value::from_reader_xml(&golden(&format!("command/{request_type}.plist"))[..])
                    .unwrap();
            assert_eq!(value, expected, "{request_type}");
            covered.push(format!("{request_type}.plist"));
        }
        covered.sort();
        assert_eq!(covered, golden_names("command"));
        assert_eq!(covered.len(), SCHEMA.len());
    }

    #[test]
    fn optional_keys_are_left_out_when_unset() {
        let id = CommandId::parse(UUID).unwrap();
        let lock = AppleCommand::DeviceLock {
            pin: None,
            message: None,
            phone_number: None,
        };
        let value = check_against_schema(&encode_command(&id, &lock).unwrap());
        let command = value
            .as_dictionary()
            .and_then(|d| d.get("Command"))
            .and_then(Value::as_dictionary)
            .unwrap();
        assert_eq!(command.keys().collect::<Vec<_>>(), ["RequestType"]);
        let erase = AppleCommand::EraseDevice {
            pin: None,
            preserve_data_plan: false,
            disallow_proximity_setup: false,
            obliteration_behavior: None,
        };
        let value = check_against_schema(&encode_command(&id, &erase).unwrap());
        assert_eq!(
            value
                .as_dictionary()
                .and_then(|d| d.get("Command"))
                .and_then(Value::as_dictionary)
                .map(Dictionary::len),
            Some(1)
        );
    }

    #[test]
    fn text_xml_cannot_carry_is_refused() {
        let id = CommandId::parse(UUID).unwrap();
        let lock = AppleCommand::DeviceLock {
            pin: None,
            message: Some("call\u{0}me".into()),
            phone_number: None,
        };
        assert_eq!(
            encode_command(&id, &lock),
            Err(EncodeError::UnencodableText { key: "Message" })
        );
        let notice =
            LostModeNotice::new(None, Some("+1".into()), Some("\u{1b}[2J".into())).unwrap();
        assert_eq!(
            encode_command(&id, &AppleCommand::EnableLostMode(notice)),
            Err(EncodeError::UnencodableText { key: "Footnote" })
        );
        let fine = AppleCommand::DeviceLock {
            pin: None,
            message: Some("Tab\there\nnew line, 日本語, <&> 🙂".into()),
            phone_number: None,
        };
        let value = check_against_schema(&encode_command(&id, &fine).unwrap());
        assert_eq!(
            value
                .as_dictionary()
                .and_then(|d| d.get("Command"))
                .and_then(Value::as_dictionary)
                .and_then(|c| c.get("Message"))
                .and_then(Value::as_string),
            Some("Tab\there\nnew line, 日本語, <&> 🙂")
        );
    }
}
