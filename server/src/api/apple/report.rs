//! A device's report on the command channel (`Content-Type:
//! application/x-apple-aspen-mdm`) decoded into [`CommandReport`]: the
//! status, the command it answers, its error chain, and the typed result
//! of the commands whose answers the server reads. The envelope
//! (`Status`, `CommandUUID`, `ErrorChain`) is in none of the YAML files of
//! Apple's schema; it follows Apple's documentation of the command
//! responses (e.g. `DeviceLockResponse` and its `ErrorChainItem`), and the
//! result keys follow each command's `responsekeys` in `mdm/commands/`.

use chrono::{DateTime, Utc};

use super::checkin::enrollment;
use super::wire::{Fields, WireError, quote, read_plist, top_dictionary};
use crate::domain::apple::command::{
    CommandAnswer, CommandReport, CommandResult, DeviceInformation, DeviceLocation, ErrorChainItem,
    FirewallSettings, HardwareEncryptionCaps, InstalledProfile, LockMessageResult,
    ManagementStatus, ReportStatus, SecurityInfo,
};

pub fn decode_report(body: &[u8]) -> Result<CommandReport, WireError> {
    let value = read_plist(body)?;
    let fields = top_dictionary(&value)?;
    let enrollment = enrollment(&fields)?;
    let status = fields.required_string("Status")?;
    let status: &'static str = match status.as_str() {
        "Idle" => {
            return Ok(CommandReport {
                enrollment,
                status: ReportStatus::Idle,
            });
        }
        "Acknowledged" => "Acknowledged",
        "Error" => "Error",
        "CommandFormatError" => "CommandFormatError",
        "NotNow" => "NotNow",
        other => return Err(WireError::UnknownStatus(quote(other))),
    };
    let command_uuid = fields
        .non_empty_string("CommandUUID")?
        .ok_or(WireError::MissingCommandUuid { status })?;
    let answer = CommandAnswer {
        command_uuid,
        error_chain: error_chain(&fields)?,
        result: result(&fields)?,
    };
    let status = match status {
        "Acknowledged" => ReportStatus::Acknowledged(answer),
        "Error" => ReportStatus::Error(answer),
        "CommandFormatError" => ReportStatus::CommandFormatError(answer),
        _ => ReportStatus::NotNow(answer),
    };
    Ok(CommandReport { enrollment, status })
}

/// `ErrorChain`: `ErrorCode` and `ErrorDomain` are required of each item.
fn error_chain(fields: &Fields<'_>) -> Result<Vec<ErrorChainItem>, WireError> {
    let Some(items) = fields.dictionaries("ErrorChain")? else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|item| {
            Ok(ErrorChainItem {
                code: item.required_integer("ErrorCode")?,
                domain: item.required_string("ErrorDomain")?,
                localized_description: item.string("LocalizedDescription")?,
                us_english_description: item.string("USEnglishDescription")?,
            })
        })
        .collect()
}

/// The typed result, told apart by its keys: a report does not name the
/// command it answers.
fn result(fields: &Fields<'_>) -> Result<Option<CommandResult>, WireError> {
    if let Some(responses) = fields.dictionary("QueryResponses")? {
        return Ok(Some(CommandResult::DeviceInformation(Box::new(
            device_information(&responses)?,
        ))));
    }
    if let Some(info) = fields.dictionary("SecurityInfo")? {
        return Ok(Some(CommandResult::SecurityInfo(security_info(&info)?)));
    }
    if let Some(items) = fields.dictionaries("ProfileList")? {
        let profiles = items
            .iter()
            .map(installed_profile)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Some(CommandResult::ProfileList(profiles)));
    }
    if fields.contains("Latitude") || fields.contains("Longitude") {
        return Ok(Some(CommandResult::DeviceLocation(device_location(
            fields,
        )?)));
    }
    if let Some(result) = fields.string("MessageResult")? {
        return Ok(Some(CommandResult::DeviceLock(LockMessageResult::parse(
            &result,
        ))));
    }
    Ok(None)
}

/// `information.device.yaml` `responsekeys.QueryResponses`.
fn device_information(q: &Fields<'_>) -> Result<DeviceInformation, WireError> {
    Ok(DeviceInformation {
        udid: q.string("UDID")?,
        serial_number: q.string("SerialNumber")?,
        device_name: q.string("DeviceName")?,
        model: q.string("Model")?,
        model_name: q.string("ModelName")?,
        product_name: q.string("ProductName")?,
        os_version: q.string("OSVersion")?,
        build_version: q.string("BuildVersion")?,
        is_supervised: q.boolean("IsSupervised")?,
        is_activation_lock_enabled: q.boolean("IsActivationLockEnabled")?,
        is_device_locator_service_enabled: q.boolean("IsDeviceLocatorServiceEnabled")?,
        is_mdm_lost_mode_enabled: q.boolean("IsMDMLostModeEnabled")?,
        awaiting_configuration: q.boolean("AwaitingConfiguration")?,
        is_apple_silicon: q.boolean("IsAppleSilicon")?,
        device_capacity: q.real("DeviceCapacity")?,
        available_device_capacity: q.real("AvailableDeviceCapacity")?,
        battery_level: q.real("BatteryLevel")?,
        imei: q.string("IMEI")?,
        meid: q.string("MEID")?,
        wifi_mac: q.string("WiFiMAC")?,
        bluetooth_mac: q.string("BluetoothMAC")?,
        ethernet_mac: q.string("EthernetMAC")?,
    })
}

/// `information.security.yaml` `responsekeys.SecurityInfo`.
fn security_info(s: &Fields<'_>) -> Result<SecurityInfo, WireError> {
    let firewall = match s.dictionary("FirewallSettings")? {
        Some(f) => Some(FirewallSettings {
            enabled: f.boolean("FirewallEnabled")?,
            block_all_incoming: f.boolean("BlockAllIncoming")?,
            stealth_mode: f.boolean("StealthMode")?,
        }),
        None => None,
    };
    let management_status = match s.dictionary("ManagementStatus")? {
        Some(m) => Some(ManagementStatus {
            enrolled_via_dep: m.boolean("EnrolledViaDEP")?,
            user_approved_enrollment: m.boolean("UserApprovedEnrollment")?,
            is_user_enrollment: m.boolean("IsUserEnrollment")?,
        }),
        None => None,
    };
    let secure_boot_level = match s.dictionary("SecureBoot")? {
        Some(b) => b.string("SecureBootLevel")?,
        None => None,
    };
    Ok(SecurityInfo {
        hardware_encryption_caps: s
            .integer("HardwareEncryptionCaps")?
            .map(HardwareEncryptionCaps::from_code),
        passcode_present: s.boolean("PasscodePresent")?,
        passcode_compliant: s.boolean("PasscodeCompliant")?,
        passcode_compliant_with_profiles: s.boolean("PasscodeCompliantWithProfiles")?,
        fde_enabled: s.boolean("FDE_Enabled")?,
        fde_has_personal_recovery_key: s.boolean("FDE_HasPersonalRecoveryKey")?,
        fde_has_institutional_recovery_key: s.boolean("FDE_HasInstitutionalRecoveryKey")?,
        system_integrity_protection_enabled: s.boolean("SystemIntegrityProtectionEnabled")?,
        firewall,
        management_status,
        secure_boot_level,
        authenticated_root_volume_enabled: s.boolean("AuthenticatedRootVolumeEnabled")?,
    })
}

/// `profile.list.yaml` `responsekeys.ProfileList[]`.
fn installed_profile(p: &Fields<'_>) -> Result<InstalledProfile, WireError> {
    Ok(InstalledProfile {
        identifier: p.required_string("PayloadIdentifier")?,
        uuid: p.required_string("PayloadUUID")?,
        display_name: p.string("PayloadDisplayName")?,
        organization: p.string("PayloadOrganization")?,
        is_managed: p.boolean("IsManaged")?,
        is_encrypted: p.boolean("IsEncrypted")?.unwrap_or(false),
        removal_disallowed: p.boolean("PayloadRemovalDisallowed")?.unwrap_or(false),
    })
}

/// `device.lostmode.location.yaml` `responsekeys`; `Timestamp` is RFC 3339.
fn device_location(l: &Fields<'_>) -> Result<DeviceLocation, WireError> {
    let timestamp = match l.string("Timestamp")? {
        None => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(&text)
                .map_err(|_| WireError::InvalidValue {
                    key: l.path("Timestamp"),
                    detail: format!("{} is not an RFC 3339 time", quote(&text)),
                })?
                .with_timezone(&Utc),
        ),
    };
    Ok(DeviceLocation {
        latitude: l.required_real("Latitude")?,
        longitude: l.required_real("Longitude")?,
        horizontal_accuracy: l.real("HorizontalAccuracy")?,
        vertical_accuracy: l.real("VerticalAccuracy")?,
        altitude: l.real("Altitude")?,
        speed: l.real("Speed")?,
        course: l.real("Course")?,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::apple::wire::MAX_DEPTH;
    use crate::api::apple::wire::tests_support::{golden, golden_names, to_binary};
    use crate::domain::apple::checkin::{DeviceChannelId, EnrollmentId, UserChannelId};
    use plist::{Dictionary, Value};

    const UUID: &str = "0123456789abcdef0123456789abcdef";
    fn report(name: &str) -> CommandReport {
        let body = golden(&format!("report/{name}"));
        let report = decode_report(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        if !name.contains("binary") {
            assert_eq!(
                decode_report(&to_binary(&body)).as_ref(),
                Ok(&report),
                "{name} as binary"
            );
        }
        report
    }

    fn answer(report: &CommandReport) -> &CommandAnswer {
        report.status.answer().unwrap()
    }

    fn udid(id: &str) -> EnrollmentId {
        EnrollmentId::device(DeviceChannelId::Udid(id.into()))
    }

    #[test]
    fn every_report_golden_file_decodes() {
        for name in golden_names("report") {
            report(&name);
        }
    }

    #[test]
    fn idle_reports_have_no_command() {
        let idle = report("Idle.plist");
        assert_eq!(idle.enrollment, udid("00008110-000A1B2C3D4E801E"));
        assert_eq!(idle.status, ReportStatus::Idle);
        let byod = report("Idle.user-enrollment.plist");
        assert_eq!(
            byod.enrollment,
            EnrollmentId::device(DeviceChannelId::EnrollmentId("F2A9C8D07B6E4A31".into()))
        );
        assert_eq!(byod.status.command_uuid(), None);
    }

    #[test]
    fn device_information_of_an_iphone() {
        let report = report("DeviceInformation.ios.plist");
        assert_eq!(report.status.as_str(), "Acknowledged");
        let answer = answer(&report);
        assert_eq!(answer.command_uuid, "0123456789abcdef0123456789abcdef");
        assert!(answer.error_chain.is_empty());
        assert_eq!(
            answer.result,
            Some(CommandResult::DeviceInformation(Box::new(
                DeviceInformation {
                    udid: Some("00008110-000A1B2C3D4E801E".into()),
                    serial_number: Some("F17ZX0ABCDEF".into()),
                    device_name: Some("Kim’s iPhone".into()),
                    model: Some("MU663".into()),
                    model_name: Some("iPhone".into()),
                    product_name: Some("iPhone16,2".into()),
                    os_version: Some("18.1".into()),
                    build_version: Some("22B83".into()),
                    is_supervised: Some(true),
                    is_activation_lock_enabled: Some(true),
                    is_device_locator_service_enabled: Some(true),
                    is_mdm_lost_mode_enabled: Some(false),
                    awaiting_configuration: Some(false),
                    is_apple_silicon: None,
                    device_capacity: Some(128.0),
                    available_device_capacity: Some(87.25),
                    battery_level: Some(0.8),
                    imei: Some("35 123456 789012 3".into()),
                    meid: Some("35123456789012".into()),
                    wifi_mac: Some("a4:83:e7:00:11:23".into()),
                    bluetooth_mac: Some("a4:83:e7:00:11:22".into()),
                    ethernet_mac: None,
                }
            )))
        );
    }

    #[test]
    fn device_information_of_a_mac() {
        let report = report("DeviceInformation.macos.plist");
        let Some(CommandResult::DeviceInformation(info)) = &answer(&report).result else {
            panic!("no DeviceInformation result");
        };
        assert_eq!(
            info.udid.as_deref(),
            Some("5A3B6C1D-2E4F-5061-7283-94A5B6C7D8E9")
        );
        assert_eq!(info.serial_number.as_deref(), Some("C02XK1ABCDEF"));
        assert_eq!(info.os_version.as_deref(), Some("15.1"));
        assert_eq!(info.is_apple_silicon, Some(true));
        assert_eq!(info.is_supervised, Some(false));
        assert_eq!(info.is_activation_lock_enabled, Some(false));
        assert_eq!(info.device_capacity, Some(494.38));
        assert_eq!(info.ethernet_mac.as_deref(), Some("00:11:22:33:44:55"));
        assert_eq!(info.battery_level, None);
        assert_eq!(info.imei, None);
    }

    #[test]
    fn security_info_of_an_iphone() {
        let report = report("SecurityInfo.ios.plist");
        let Some(CommandResult::SecurityInfo(info)) = &answer(&report).result else {
            panic!("no SecurityInfo result");
        };
        assert_eq!(
            info,
            &SecurityInfo {
                hardware_encryption_caps: Some(HardwareEncryptionCaps::BlockAndFileLevel),
                passcode_present: Some(true),
                passcode_compliant: Some(true),
                passcode_compliant_with_profiles: Some(true),
                management_status: Some(ManagementStatus {
                    is_user_enrollment: Some(false),
                    ..ManagementStatus::default()
                }),
                ..SecurityInfo::default()
            }
        );
        assert_eq!(info.data_protection(), Some(true));
    }

    fn assert_mac_security_info(report: &CommandReport) {
        assert_eq!(
            report.enrollment,
            udid("5A3B6C1D-2E4F-5061-7283-94A5B6C7D8E9")
        );
        assert_eq!(
            answer(report).command_uuid,
            "3123456789abcdef0123456789abcdef"
        );
        let Some(CommandResult::SecurityInfo(info)) = &answer(report).result else {
            panic!("no SecurityInfo result");
        };
        assert_eq!(
            info,
            &SecurityInfo {
                fde_enabled: Some(true),
                fde_has_personal_recovery_key: Some(true),
                fde_has_institutional_recovery_key: Some(false),
                system_integrity_protection_enabled: Some(true),
                firewall: Some(FirewallSettings {
                    enabled: Some(true),
                    block_all_incoming: Some(false),
                    stealth_mode: Some(true),
                }),
                management_status: Some(ManagementStatus {
                    enrolled_via_dep: Some(true),
                    user_approved_enrollment: Some(true),
                    is_user_enrollment: Some(false),
                }),
                secure_boot_level: Some("full".into()),
                authenticated_root_volume_enabled: Some(true),
                ..SecurityInfo::default()
            }
        );
        assert_eq!(info.data_protection(), None);
    }

    #[test]
    fn security_info_of_a_mac_in_xml_and_binary() {
        assert_mac_security_info(&report("SecurityInfo.macos.plist"));
        let binary = golden("report/SecurityInfo.macos.binary.plist");
        assert!(binary.starts_with(b"bplist00"));
        assert_mac_security_info(&report("SecurityInfo.macos.binary.plist"));
    }

    #[test]
    fn profile_list() {
        let report = report("ProfileList.plist");
        assert_eq!(
            answer(&report).result,
            Some(CommandResult::ProfileList(vec![
                InstalledProfile {
                    identifier: "com.example.mdm.enrollment".into(),
                    uuid: "0C1D2E3F-4A5B-8C6D-9E7F-0A1B2C3D4E5F".into(),
                    display_name: Some("Example Corp enrollment".into()),
                    organization: Some("Example Corp".into()),
                    is_managed: Some(true),
                    is_encrypted: false,
                    removal_disallowed: false,
                },
                InstalledProfile {
                    identifier: "com.example.wifi".into(),
                    uuid: "9A8B7C6D-5E4F-4A3B-8C2D-1E0F9A8B7C6D".into(),
                    display_name: None,
                    organization: None,
                    is_managed: None,
                    is_encrypted: true,
                    removal_disallowed: true,
                },
            ]))
        );
    }

    #[test]
    fn device_location() {
        let report = report("DeviceLocation.plist");
        assert_eq!(
            answer(&report).result,
            Some(CommandResult::DeviceLocation(DeviceLocation {
                latitude: 35.681236,
                longitude: 139.767125,
                horizontal_accuracy: Some(12.5),
                vertical_accuracy: Some(3.0),
                altitude: Some(41.5),
                speed: Some(-1.0),
                course: Some(-1.0),
                timestamp: DateTime::parse_from_rfc3339("2024-11-05T09:30:15Z")
                    .ok()
                    .map(|t| t.with_timezone(&Utc)),
            }))
        );
    }

    #[test]
    fn device_lock_message_result() {
        let report = report("DeviceLock.plist");
        assert_eq!(
            answer(&report).result,
            Some(CommandResult::DeviceLock(LockMessageResult::NoPasscodeSet))
        );
    }

    #[test]
    fn errors_carry_their_chain() {
        let error = report("Error.plist");
        assert!(matches!(error.status, ReportStatus::Error(_)));
        assert!(error.status.is_terminal());
        let chain = answer(&error);
        assert_eq!(chain.command_uuid, "7123456789abcdef0123456789abcdef");
        assert_eq!(
            chain.error_chain,
            vec![
                ErrorChainItem {
                    code: 4001,
                    domain: "MCProfileErrorDomain".into(),
                    localized_description: Some("Profile Installation Failed".into()),
                    us_english_description: Some("Profile Installation Failed".into()),
                },
                ErrorChainItem {
                    code: 2003,
                    domain: "MCInstallationErrorDomain".into(),
                    localized_description: None,
                    us_english_description: None,
                },
            ]
        );
        assert_eq!(chain.result, None);

        let format_error = report("CommandFormatError.plist");
        assert!(matches!(
            format_error.status,
            ReportStatus::CommandFormatError(_)
        ));
        assert_eq!(
            answer(&format_error).error_chain.first().map(|e| e.code),
            Some(12021)
        );
    }

    #[test]
    fn not_now_names_the_command_to_send_again() {
        let report = report("NotNow.plist");
        assert!(matches!(report.status, ReportStatus::NotNow(_)));
        assert!(!report.status.is_terminal());
        assert_eq!(
            report.status.command_uuid(),
            Some("8123456789abcdef0123456789abcdef")
        );
    }

    #[test]
    fn a_report_on_a_user_channel_names_the_user() {
        let report = report("Acknowledged.user-channel.plist");
        assert_eq!(
            report.enrollment,
            EnrollmentId {
                device: DeviceChannelId::Udid("5A3B6C1D-2E4F-5061-7283-94A5B6C7D8E9".into()),
                user: Some(UserChannelId::UserId(
                    "A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF".into()
                )),
            }
        );
        assert_eq!(answer(&report).result, None);
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

    fn dict(entries: &[(&str, Value)]) -> Value {
        let mut dict = Dictionary::new();
        for (key, value) in entries {
            dict.insert((*key).to_owned(), value.clone());
        }
        Value::Dictionary(dict)
    }

    #[test]
    fn only_idle_may_come_without_a_command_uuid() {
        for status in ["Acknowledged", "Error", "CommandFormatError", "NotNow"] {
            let report = body(&[("Status", s(status)), ("UDID", s("U"))]);
            assert_eq!(
                decode_report(&report),
                Err(WireError::MissingCommandUuid { status }),
                "{status}"
            );
            let empty = body(&[
                ("Status", s(status)),
                ("UDID", s("U")),
                ("CommandUUID", s("")),
            ]);
            assert_eq!(
                decode_report(&empty),
                Err(WireError::MissingCommandUuid { status })
            );
        }
    }

    #[test]
    fn unknown_statuses_and_missing_keys_are_refused() {
        let unknown = body(&[("Status", s("Done")), ("UDID", s("U"))]);
        assert_eq!(
            decode_report(&unknown),
            Err(WireError::UnknownStatus("\"Done\"".into()))
        );
        let no_status = body(&[("UDID", s("U"))]);
        assert_eq!(
            decode_report(&no_status),
            Err(WireError::MissingKey {
                key: "Status".into()
            })
        );
        let no_udid = body(&[("Status", s("Idle"))]);
        assert_eq!(
            decode_report(&no_udid),
            Err(WireError::MissingKey { key: "UDID".into() })
        );
    }

    #[test]
    fn wrong_types_in_results_name_the_full_key() {
        let base = [
            ("Status", s("Acknowledged")),
            ("UDID", s("U")),
            ("CommandUUID", s(UUID)),
        ];
        let with = |extra: (&str, Value)| {
            let mut entries = base.to_vec();
            entries.push(extra);
            body(&entries)
        };
        assert_eq!(
            decode_report(&with((
                "QueryResponses",
                dict(&[("IsSupervised", s("true"))])
            ))),
            Err(WireError::WrongType {
                key: "QueryResponses.IsSupervised".into(),
                expected: "a boolean",
                found: "a string",
            })
        );
        assert_eq!(
            decode_report(&with((
                "SecurityInfo",
                dict(&[(
                    "FirewallSettings",
                    dict(&[("FirewallEnabled", Value::Integer(1.into()))])
                )])
            ))),
            Err(WireError::WrongType {
                key: "SecurityInfo.FirewallSettings.FirewallEnabled".into(),
                expected: "a boolean",
                found: "an integer",
            })
        );
        assert_eq!(
            decode_report(&with((
                "ErrorChain",
                Value::Array(vec![dict(&[
                    ("ErrorCode", s("4001")),
                    ("ErrorDomain", s("D"))
                ])])
            ))),
            Err(WireError::WrongType {
                key: "ErrorChain[0].ErrorCode".into(),
                expected: "an integer",
                found: "a string",
            })
        );
        assert_eq!(
            decode_report(&with(("ErrorChain", s("broken")))),
            Err(WireError::WrongType {
                key: "ErrorChain".into(),
                expected: "an array",
                found: "a string",
            })
        );
        assert_eq!(
            decode_report(&with((
                "ProfileList",
                Value::Array(vec![dict(&[("PayloadUUID", s("X"))])])
            ))),
            Err(WireError::MissingKey {
                key: "ProfileList[0].PayloadIdentifier".into()
            })
        );
        assert!(matches!(
            decode_report(&with(("Latitude", Value::Real(1.0)))),
            Err(WireError::MissingKey { key }) if key == "Longitude"
        ));
        let bad_time = body(&[
            ("Status", s("Acknowledged")),
            ("UDID", s("U")),
            ("CommandUUID", s(UUID)),
            ("Latitude", Value::Real(1.0)),
            ("Longitude", Value::Real(2.0)),
            ("Timestamp", s("yesterday")),
        ]);
        assert!(matches!(
            decode_report(&bad_time),
            Err(WireError::InvalidValue { key, .. }) if key == "Timestamp"
        ));
    }

    #[test]
    fn deep_nesting_is_refused_in_xml() {
        let depth = 100_000;
        let xml = format!(
            "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Status</key><string>Idle</string><key>UDID</key><string>U</string><key>Deep</key>{}{}</dict></plist>",
            "<array>".repeat(depth),
            "</array>".repeat(depth)
        );
        assert_eq!(
            decode_report(xml.as_bytes()),
            Err(WireError::TooDeep { limit: MAX_DEPTH })
        );
    }

    /// A binary property list of `objects`, each given as its encoded
    /// bytes, with 4-byte offsets and references, the first as the top.
    fn binary_plist(objects: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"bplist00".to_vec();
        let mut offsets = Vec::new();
        for object in objects {
            offsets.push(u32::try_from(out.len()).unwrap());
            out.extend_from_slice(object);
        }
        let table = out.len() as u64;
        for offset in offsets {
            out.extend_from_slice(&offset.to_be_bytes());
        }
        out.extend_from_slice(&[0; 6]);
        out.push(4); // offset size
        out.push(4); // reference size
        out.extend_from_slice(&(objects.len() as u64).to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        out.extend_from_slice(&table.to_be_bytes());
        out
    }

    /// An array object of `refs` (4-byte references).
    fn array_object(refs: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        if refs.len() < 15 {
            out.push(0xA0 | refs.len() as u8);
        } else {
            out.push(0xAF);
            out.push(0x12); // a 4-byte integer follows
            out.extend_from_slice(&(refs.len() as u32).to_be_bytes());
        }
        for r in refs {
            out.extend_from_slice(&r.to_be_bytes());
        }
        out
    }

    #[test]
    fn deep_nesting_is_refused_in_binary() {
        let depth = 100_000u32;
        let objects: Vec<Vec<u8>> = (0..depth)
            .map(|i| {
                if i + 1 < depth {
                    array_object(&[i + 1])
                } else {
                    array_object(&[])
                }
            })
            .collect();
        let body = binary_plist(&objects);
        assert_eq!(
            decode_report(&body),
            Err(WireError::TooDeep { limit: MAX_DEPTH })
        );
    }

    #[test]
    fn shared_references_cannot_unfold_a_small_body_into_billions_of_values() {
        // Four levels of 1000 references to the level below: 10^12 values
        // from about 16 kB.
        let width = 1000;
        let objects: Vec<Vec<u8>> = (0..5u32)
            .map(|level| {
                if level < 4 {
                    array_object(&vec![level + 1; width])
                } else {
                    vec![0x09] // true
                }
            })
            .collect();
        let body = binary_plist(&objects);
        assert!(body.len() < 20_000);
        assert!(matches!(
            decode_report(&body),
            Err(WireError::TooManyValues { .. })
        ));
    }

    #[test]
    fn shared_references_cannot_copy_one_large_object_a_thousand_times() {
        // One array of 1000 references to one 16 kB data object: 16 MB of
        // copies from a 20 kB body (at full size, 64 kB unfold into 1 GB).
        let data = |size: u16| {
            let mut out = vec![0x4f, 0x11]; // data, its length a 2-byte integer
            out.extend_from_slice(&size.to_be_bytes());
            out.extend(std::iter::repeat_n(b'x', usize::from(size)));
            out
        };
        let body = binary_plist(&[array_object(&[1; 1000]), data(16_000)]);
        assert!(body.len() < 21_000);
        assert!(matches!(
            decode_report(&body),
            Err(WireError::TooManyBytes { .. })
        ));
        // The same object referenced twice is within bounds: the list is
        // read, and refused only for not being a report.
        let body = binary_plist(&[array_object(&[1, 1]), data(16_000)]);
        assert!(matches!(
            decode_report(&body),
            Err(WireError::NotADictionary { .. })
        ));
    }

    #[test]
    fn large_honest_bodies_decode() {
        let profiles: Vec<Value> = (0..5_000)
            .map(|i| {
                dict(&[
                    ("PayloadIdentifier", s(&format!("com.example.profile{i}"))),
                    ("PayloadUUID", s(&format!("UUID-{i}"))),
                    ("IsManaged", Value::Boolean(i % 2 == 0)),
                    (
                        "PayloadContent",
                        Value::Array(vec![dict(&[("PayloadType", s("x"))])]),
                    ),
                ])
            })
            .collect();
        let noise: Vec<Value> = (0..100_000).map(|i| Value::Integer(i.into())).collect();
        let xml = body(&[
            ("Status", s("Acknowledged")),
            ("UDID", s("U")),
            ("CommandUUID", s(UUID)),
            ("ProfileList", Value::Array(profiles)),
            ("SomethingNew", Value::Array(noise)),
        ]);
        assert!(xml.len() > 1_000_000, "{}", xml.len());
        for encoded in [xml.clone(), to_binary(&xml)] {
            let report = decode_report(&encoded).unwrap();
            let Some(CommandResult::ProfileList(list)) = &answer(&report).result else {
                panic!("no ProfileList");
            };
            assert_eq!(list.len(), 5_000);
            assert_eq!(
                list.last().map(|p| p.identifier.as_str()),
                Some("com.example.profile4999")
            );
        }
    }

    #[test]
    fn bodies_that_are_not_a_property_list_are_refused() {
        let binary = golden("report/SecurityInfo.macos.binary.plist");
        for cut in [0, 8, 40, binary.len() - 20, binary.len() - 1] {
            let truncated = binary.get(..cut).unwrap();
            assert!(
                matches!(decode_report(truncated), Err(WireError::NotAPlist(_))),
                "cut at {cut}: {:?}",
                decode_report(truncated)
            );
        }
        let truncated_xml = golden("report/Idle.plist");
        let cut = truncated_xml.get(..truncated_xml.len() / 2).unwrap();
        assert!(matches!(decode_report(cut), Err(WireError::NotAPlist(_))));
        let top_string = b"<plist version=\"1.0\"><string>Idle</string></plist>";
        assert_eq!(
            decode_report(top_string),
            Err(WireError::NotADictionary { found: "a string" })
        );
    }
}
