//! The check-in protocol's wire form: the property list a device PUTs to
//! the check-in URL (`Content-Type: application/x-apple-aspen-mdm-checkin`),
//! decoded into [`CheckInMessage`], and the bodies the server answers with.
//!
//! Built to Apple's schema `apple/device-management`, `mdm/checkin/`:
//! `authenticate.yaml`, `tokenupdate.yaml`, `checkout.yaml`,
//! `userauthenticate.yaml`, `setbootstraptoken.yaml`,
//! `getbootstraptoken.yaml`; `declarativemanagement.yaml`, `gettoken.yaml`
//! and `returntoservice.yaml` are recognised and declined.

use plist::{Dictionary, Value};

use super::wire::{Fields, WireError, quote, read_plist, top_dictionary};
use crate::apple_profiles::{EncodeError, to_xml};
use crate::domain::apple::checkin::{
    Authenticate, CheckInMessage, CheckOut, DeclinedMessageType, DeviceChannelId, EnrollmentId,
    GetBootstrapToken, SHARED_IPAD_USER_ID, SecretBytes, SetBootstrapToken, TokenUpdate,
    UserAuthenticate, UserChannelId,
};

/// Decodes a check-in message (XML or binary property list).
///
/// Every message must name its enrollment (`UDID`, or `EnrollmentID` for a
/// User Enrollment), including `SetBootstrapToken` and `GetBootstrapToken`
/// whose schema lists only `MessageType`: devices send the identity keys
/// with every check-in, and a message the server cannot attribute is of no
/// use. Declined message types are not decoded past their `MessageType`.
pub fn decode_checkin(body: &[u8]) -> Result<CheckInMessage, WireError> {
    let value = read_plist(body)?;
    let fields = top_dictionary(&value)?;
    let message_type = fields.required_string("MessageType")?;
    let message = match message_type.as_str() {
        // authenticate.yaml
        "Authenticate" => CheckInMessage::Authenticate(Authenticate {
            enrollment: EnrollmentId::device(device_channel(&fields)?),
            topic: fields.required_string("Topic")?,
            device_name: fields.string("DeviceName")?,
            model: fields.string("Model")?,
            model_name: fields.string("ModelName")?,
            serial_number: fields.string("SerialNumber")?,
            os_version: fields.string("OSVersion")?,
            build_version: fields.string("BuildVersion")?,
            product_name: fields.string("ProductName")?,
            imei: fields.string("IMEI")?,
            meid: fields.string("MEID")?,
        }),
        // tokenupdate.yaml
        "TokenUpdate" => CheckInMessage::TokenUpdate(TokenUpdate {
            enrollment: enrollment(&fields)?,
            topic: fields.required_string("Topic")?,
            token: fields.required_data("Token")?,
            push_magic: fields.required_string("PushMagic")?,
            unlock_token: fields
                .data("UnlockToken")?
                .filter(|token| !token.is_empty())
                .map(SecretBytes::new),
            awaiting_configuration: fields.boolean("AwaitingConfiguration")?.unwrap_or(false),
            not_on_console: fields.boolean("NotOnConsole")?.unwrap_or(false),
            user_short_name: fields.string("UserShortName")?,
            user_long_name: fields.string("UserLongName")?,
        }),
        // checkout.yaml
        "CheckOut" => CheckInMessage::CheckOut(CheckOut {
            enrollment: EnrollmentId::device(device_channel(&fields)?),
            topic: fields.required_string("Topic")?,
        }),
        // userauthenticate.yaml: always the user channel, named by UserID.
        "UserAuthenticate" => {
            let device = device_channel(&fields)?;
            let user = match user_channel(&fields)? {
                Some(user) => user,
                None => {
                    return Err(WireError::MissingKey {
                        key: "UserID".into(),
                    });
                }
            };
            CheckInMessage::UserAuthenticate(UserAuthenticate {
                enrollment: EnrollmentId {
                    device,
                    user: Some(user),
                },
                digest_response: fields.non_empty_string("DigestResponse")?,
            })
        }
        // setbootstraptoken.yaml: a missing or empty token means "delete".
        "SetBootstrapToken" => CheckInMessage::SetBootstrapToken(SetBootstrapToken {
            enrollment: EnrollmentId::device(device_channel(&fields)?),
            token: fields
                .data("BootstrapToken")?
                .filter(|token| !token.is_empty())
                .map(SecretBytes::new),
            awaiting_configuration: fields.boolean("AwaitingConfiguration")?.unwrap_or(false),
        }),
        // getbootstraptoken.yaml
        "GetBootstrapToken" => CheckInMessage::GetBootstrapToken(GetBootstrapToken {
            enrollment: EnrollmentId::device(device_channel(&fields)?),
            awaiting_configuration: fields.boolean("AwaitingConfiguration")?.unwrap_or(false),
        }),
        "DeclarativeManagement" => {
            CheckInMessage::Declined(DeclinedMessageType::DeclarativeManagement)
        }
        "GetToken" => CheckInMessage::Declined(DeclinedMessageType::GetToken),
        "ReturnToService" => CheckInMessage::Declined(DeclinedMessageType::ReturnToService),
        other => return Err(WireError::UnknownMessageType(quote(other))),
    };
    Ok(message)
}

/// The device channel a message names: `UDID`, else (User Enrollment)
/// `EnrollmentID`. Empty values count as absent.
pub(super) fn device_channel(fields: &Fields<'_>) -> Result<DeviceChannelId, WireError> {
    if let Some(udid) = fields.non_empty_string("UDID")? {
        return Ok(DeviceChannelId::Udid(udid));
    }
    if let Some(id) = fields.non_empty_string("EnrollmentID")? {
        return Ok(DeviceChannelId::EnrollmentId(id));
    }
    Err(WireError::MissingKey { key: "UDID".into() })
}

/// The user channel a message names, if any: `EnrollmentUserID` (User
/// Enrollment on macOS), else `UserID`, which for a Shared iPad is all `F`s
/// and the user is `UserShortName`.
pub(super) fn user_channel(fields: &Fields<'_>) -> Result<Option<UserChannelId>, WireError> {
    if let Some(id) = fields.non_empty_string("EnrollmentUserID")? {
        return Ok(Some(UserChannelId::EnrollmentUserId(id)));
    }
    let Some(user_id) = fields.non_empty_string("UserID")? else {
        return Ok(None);
    };
    if user_id.eq_ignore_ascii_case(SHARED_IPAD_USER_ID) {
        let short_name =
            fields
                .non_empty_string("UserShortName")?
                .ok_or_else(|| WireError::MissingKey {
                    key: "UserShortName".into(),
                })?;
        return Ok(Some(UserChannelId::SharedIpadUser(short_name)));
    }
    Ok(Some(UserChannelId::UserId(user_id)))
}

/// The enrollment a message that may come from a user channel names.
pub(super) fn enrollment(fields: &Fields<'_>) -> Result<EnrollmentId, WireError> {
    Ok(EnrollmentId {
        device: device_channel(fields)?,
        user: user_channel(fields)?,
    })
}

/// The answer to `GetBootstrapToken` (`getbootstraptoken.yaml`
/// `responsekeys`): `{BootstrapToken: <data>}`, or an empty dictionary
/// when none is escrowed, which the schema allows in place of empty data.
pub fn encode_get_bootstrap_token_response(
    token: Option<&SecretBytes>,
) -> Result<Vec<u8>, EncodeError> {
    let mut response = Dictionary::new();
    if let Some(token) = token {
        response.insert(
            "BootstrapToken".into(),
            Value::Data(token.expose().to_vec()),
        );
    }
    to_xml(&Value::Dictionary(response))
}

/// The answer to a first `UserAuthenticate` (`userauthenticate.yaml`
/// notes): `{DigestChallenge: <challenge>}`; an empty challenge accepts the
/// user channel without asking the user to authenticate.
pub fn encode_digest_challenge(challenge: &str) -> Result<Vec<u8>, EncodeError> {
    let mut response = Dictionary::new();
    response.insert(
        "DigestChallenge".into(),
        crate::apple_profiles::text("DigestChallenge", challenge)?,
    );
    to_xml(&Value::Dictionary(response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::apple::wire::tests_support::{golden, to_binary};

    const TOPIC: &str = "com.apple.mgmt.External.2b2d1f5e-6c0a-4f6e-9d43-6a1f0c3e8b11";

    fn checkin(name: &str) -> CheckInMessage {
        let body = golden(&format!("checkin/{name}"));
        let message = decode_checkin(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        if !name.contains("binary") {
            let binary = to_binary(&body);
            assert_eq!(
                decode_checkin(&binary).as_ref(),
                Ok(&message),
                "{name} as binary"
            );
        }
        message
    }

    fn udid(id: &str) -> EnrollmentId {
        EnrollmentId::device(DeviceChannelId::Udid(id.into()))
    }

    #[test]
    fn authenticate_from_a_mac() {
        let CheckInMessage::Authenticate(m) = checkin("Authenticate.macos.plist") else {
            panic!("not Authenticate");
        };
        assert_eq!(
            m,
            Authenticate {
                enrollment: udid("5A3B6C1D-2E4F-5061-7283-94A5B6C7D8E9"),
                topic: TOPIC.into(),
                device_name: Some("Kim’s MacBook Pro".into()),
                model: Some("Mac15,3".into()),
                model_name: Some("MacBook Pro".into()),
                serial_number: Some("C02XK1ABCDEF".into()),
                os_version: Some("15.1".into()),
                build_version: Some("24B83".into()),
                product_name: Some("Mac15,3".into()),
                imei: None,
                meid: None,
            }
        );
    }

    #[test]
    fn authenticate_of_a_user_enrollment_names_the_enrollment_id() {
        let CheckInMessage::Authenticate(m) = checkin("Authenticate.user-enrollment.plist") else {
            panic!("not Authenticate");
        };
        assert_eq!(
            m.enrollment,
            EnrollmentId::device(DeviceChannelId::EnrollmentId("F2A9C8D07B6E4A31".into()))
        );
        assert_eq!(m.enrollment.key(), "F2A9C8D07B6E4A31");
        assert_eq!(m.serial_number, None);
        assert_eq!(m.device_name, None);
        assert_eq!(m.product_name.as_deref(), Some("iPhone16,2"));
        assert_eq!(m.os_version.as_deref(), Some("18.1"));
    }

    fn assert_device_token_update(message: CheckInMessage) {
        let CheckInMessage::TokenUpdate(m) = message else {
            panic!("not TokenUpdate");
        };
        assert_eq!(m.enrollment, udid("00008110-000A1B2C3D4E801E"));
        assert_eq!(m.topic, TOPIC);
        assert_eq!(m.token, (0u8..32).collect::<Vec<_>>());
        assert_eq!(m.push_magic, "8A7E4F0C-1B2D-4E3F-9A8B-7C6D5E4F3A2B");
        assert_eq!(
            m.unlock_token.as_ref().map(SecretBytes::expose),
            Some(&b"unlock-token-bytes"[..])
        );
        assert!(m.awaiting_configuration);
        assert!(!m.not_on_console);
        assert_eq!(m.user_short_name, None);
    }

    #[test]
    fn token_update_of_a_device_channel() {
        assert_device_token_update(checkin("TokenUpdate.plist"));
    }

    #[test]
    fn a_binary_token_update_from_another_encoder_decodes_alike() {
        let body = golden("checkin/TokenUpdate.binary.plist");
        assert!(body.starts_with(b"bplist00"));
        assert_device_token_update(checkin("TokenUpdate.binary.plist"));
    }

    #[test]
    fn token_update_of_a_mac_user_channel() {
        let CheckInMessage::TokenUpdate(m) = checkin("TokenUpdate.user.plist") else {
            panic!("not TokenUpdate");
        };
        assert_eq!(
            m.enrollment,
            EnrollmentId {
                device: DeviceChannelId::Udid("5A3B6C1D-2E4F-5061-7283-94A5B6C7D8E9".into()),
                user: Some(UserChannelId::UserId(
                    "A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF".into()
                )),
            }
        );
        assert_eq!(
            m.enrollment.key(),
            "5A3B6C1D-2E4F-5061-7283-94A5B6C7D8E9:A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF"
        );
        assert_eq!(
            m.token,
            [
                0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22,
                0x11, 0x00
            ]
        );
        assert_eq!(m.user_short_name.as_deref(), Some("kim"));
        assert_eq!(m.user_long_name.as_deref(), Some("Kim Tanaka"));
        assert!(!m.not_on_console);
        assert!(!m.awaiting_configuration);
        assert_eq!(m.unlock_token, None);
    }

    #[test]
    fn token_update_of_a_shared_ipad_user_is_named_by_short_name() {
        let CheckInMessage::TokenUpdate(m) = checkin("TokenUpdate.shared-ipad.plist") else {
            panic!("not TokenUpdate");
        };
        assert_eq!(
            m.enrollment.user,
            Some(UserChannelId::SharedIpadUser("kim@example.org".into()))
        );
        assert_eq!(
            m.enrollment.key(),
            "00008020-001234567890002E:kim@example.org"
        );
        assert_eq!(m.token, [0xab, 0xcd, 0xef]);
    }

    #[test]
    fn check_out() {
        assert_eq!(
            checkin("CheckOut.plist"),
            CheckInMessage::CheckOut(CheckOut {
                enrollment: udid("00008110-000A1B2C3D4E801E"),
                topic: TOPIC.into(),
            })
        );
    }

    #[test]
    fn user_authenticate_with_and_without_a_digest() {
        let user = EnrollmentId {
            device: DeviceChannelId::Udid("5A3B6C1D-2E4F-5061-7283-94A5B6C7D8E9".into()),
            user: Some(UserChannelId::UserId(
                "A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF".into(),
            )),
        };
        assert_eq!(
            checkin("UserAuthenticate.plist"),
            CheckInMessage::UserAuthenticate(UserAuthenticate {
                enrollment: user.clone(),
                digest_response: None,
            })
        );
        assert_eq!(
            checkin("UserAuthenticate.digest.plist"),
            CheckInMessage::UserAuthenticate(UserAuthenticate {
                enrollment: user,
                digest_response: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
            })
        );
    }

    #[test]
    fn bootstrap_tokens_are_set_deleted_and_asked_for() {
        let mac = udid("5A3B6C1D-2E4F-5061-7283-94A5B6C7D8E9");
        assert_eq!(
            checkin("SetBootstrapToken.plist"),
            CheckInMessage::SetBootstrapToken(SetBootstrapToken {
                enrollment: mac.clone(),
                token: Some(SecretBytes::new(b"bootstrap-token-bytes".to_vec())),
                awaiting_configuration: false,
            })
        );
        assert_eq!(
            checkin("SetBootstrapToken.delete.plist"),
            CheckInMessage::SetBootstrapToken(SetBootstrapToken {
                enrollment: mac.clone(),
                token: None,
                awaiting_configuration: false,
            })
        );
        assert_eq!(
            checkin("GetBootstrapToken.plist"),
            CheckInMessage::GetBootstrapToken(GetBootstrapToken {
                enrollment: mac,
                awaiting_configuration: true,
            })
        );
    }

    #[test]
    fn declined_message_types_are_known_not_malformed() {
        for (name, declined) in [
            (
                "DeclarativeManagement.plist",
                DeclinedMessageType::DeclarativeManagement,
            ),
            ("GetToken.plist", DeclinedMessageType::GetToken),
            (
                "ReturnToService.plist",
                DeclinedMessageType::ReturnToService,
            ),
        ] {
            let message = checkin(name);
            assert_eq!(message, CheckInMessage::Declined(declined));
            assert_eq!(message.message_type(), declined.as_str());
            assert_eq!(message.enrollment(), None);
        }
    }

    #[test]
    fn every_check_in_golden_file_decodes() {
        for name in crate::api::apple::wire::tests_support::golden_names("checkin") {
            checkin(&name);
        }
    }

    fn body(entries: &[(&str, Value)]) -> Vec<u8> {
        let mut dict = Dictionary::new();
        for (key, value) in entries {
            dict.insert((*key).to_owned(), value.clone());
        }
        let mut out = Vec::new();
        Value::Dictionary(dict).to_writer_xml(&mut out).unwrap();
        out
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn unknown_message_types_are_refused_and_quoted_briefly() {
        let unknown = body(&[("MessageType", s("Frobnicate")), ("UDID", s("U"))]);
        assert_eq!(
            decode_checkin(&unknown),
            Err(WireError::UnknownMessageType("\"Frobnicate\"".into()))
        );
        let long = "A".repeat(100_000);
        let unknown = body(&[("MessageType", s(&long)), ("UDID", s("U"))]);
        let error = decode_checkin(&unknown).unwrap_err();
        assert!(matches!(error, WireError::UnknownMessageType(_)));
        assert!(error.to_string().len() < 200, "{error}");
    }

    #[test]
    fn a_message_without_an_enrollment_is_refused() {
        let no_udid = body(&[("MessageType", s("Authenticate")), ("Topic", s(TOPIC))]);
        assert_eq!(
            decode_checkin(&no_udid),
            Err(WireError::MissingKey { key: "UDID".into() })
        );
        let empty_udid = body(&[
            ("MessageType", s("CheckOut")),
            ("Topic", s(TOPIC)),
            ("UDID", s("")),
        ]);
        assert_eq!(
            decode_checkin(&empty_udid),
            Err(WireError::MissingKey { key: "UDID".into() })
        );
        let no_type = body(&[("UDID", s("U"))]);
        assert_eq!(
            decode_checkin(&no_type),
            Err(WireError::MissingKey {
                key: "MessageType".into()
            })
        );
    }

    #[test]
    fn wrong_types_name_the_key_and_the_type_expected() {
        let udid_number = body(&[
            ("MessageType", s("CheckOut")),
            ("Topic", s(TOPIC)),
            ("UDID", Value::Integer(7.into())),
        ]);
        assert_eq!(
            decode_checkin(&udid_number),
            Err(WireError::WrongType {
                key: "UDID".into(),
                expected: "a string",
                found: "an integer",
            })
        );
        let token_text = body(&[
            ("MessageType", s("TokenUpdate")),
            ("Topic", s(TOPIC)),
            ("UDID", s("U")),
            ("PushMagic", s("M")),
            ("Token", s("not data")),
        ]);
        assert_eq!(
            decode_checkin(&token_text),
            Err(WireError::WrongType {
                key: "Token".into(),
                expected: "data",
                found: "a string",
            })
        );
        let awaiting_text = body(&[
            ("MessageType", s("GetBootstrapToken")),
            ("UDID", s("U")),
            ("AwaitingConfiguration", s("true")),
        ]);
        assert_eq!(
            decode_checkin(&awaiting_text),
            Err(WireError::WrongType {
                key: "AwaitingConfiguration".into(),
                expected: "a boolean",
                found: "a string",
            })
        );
        let no_push_magic = body(&[
            ("MessageType", s("TokenUpdate")),
            ("Topic", s(TOPIC)),
            ("UDID", s("U")),
            ("Token", Value::Data(vec![1])),
        ]);
        assert_eq!(
            decode_checkin(&no_push_magic),
            Err(WireError::MissingKey {
                key: "PushMagic".into()
            })
        );
    }

    #[test]
    fn a_shared_ipad_user_without_a_short_name_is_refused() {
        let message = body(&[
            ("MessageType", s("TokenUpdate")),
            ("Topic", s(TOPIC)),
            ("UDID", s("U")),
            ("PushMagic", s("M")),
            ("Token", Value::Data(vec![1])),
            ("UserID", s(SHARED_IPAD_USER_ID)),
        ]);
        assert_eq!(
            decode_checkin(&message),
            Err(WireError::MissingKey {
                key: "UserShortName".into()
            })
        );
    }

    #[test]
    fn bodies_that_are_not_a_dictionary_are_refused() {
        let malformed = b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>MessageType</key><string>Authenticate</dict></plist>";
        assert!(matches!(
            decode_checkin(malformed),
            Err(WireError::NotAPlist(_))
        ));
        let array = b"<?xml version=\"1.0\"?><plist version=\"1.0\"><array><string>x</string></array></plist>";
        assert_eq!(
            decode_checkin(array),
            Err(WireError::NotADictionary { found: "an array" })
        );
        assert!(matches!(decode_checkin(b""), Err(WireError::NotAPlist(_))));
        assert!(matches!(
            decode_checkin(b"{\"MessageType\": \"Authenticate\"}"),
            Err(WireError::NotAPlist(_))
        ));
        let binary = golden("checkin/TokenUpdate.binary.plist");
        for cut in [9, binary.len() / 2, binary.len() - 1] {
            let truncated = binary.get(..cut).unwrap();
            assert!(
                matches!(decode_checkin(truncated), Err(WireError::NotAPlist(_))),
                "cut at {cut}: {:?}",
                decode_checkin(truncated)
            );
        }
    }

    #[test]
    fn bootstrap_token_responses() {
        let token = SecretBytes::new(b"escrowed".to_vec());
        let with = encode_get_bootstrap_token_response(Some(&token)).unwrap();
        let value = Value::from_reader_xml(&with[..]).unwrap();
        let dict = value.as_dictionary().unwrap();
        assert_eq!(dict.len(), 1);
        assert_eq!(
            dict.get("BootstrapToken").and_then(Value::as_data),
            Some(&b"escrowed"[..])
        );
        let without = encode_get_bootstrap_token_response(None).unwrap();
        let value = Value::from_reader_xml(&without[..]).unwrap();
        assert_eq!(value.as_dictionary().map(Dictionary::len), Some(0));
    }

    #[test]
    fn an_empty_digest_challenge_accepts_the_user_channel() {
        let body = encode_digest_challenge("").unwrap();
        let value = Value::from_reader_xml(&body[..]).unwrap();
        assert_eq!(
            value
                .as_dictionary()
                .and_then(|d| d.get("DigestChallenge"))
                .and_then(Value::as_string),
            Some("")
        );
    }
}
