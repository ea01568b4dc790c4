//! A configuration profile from a Latchkey policy: what of the policy an
//! Apple device can be made to enforce, rendered as an unsigned XML
//! property list, and the rules it cannot, so that an admin can be told.
//!
//! Built to Apple's schema `apple/device-management`, `mdm/profiles/`:
//! `TopLevel.yaml`, `com.apple.mobiledevice.passwordpolicy.yaml`,
//! `com.apple.screensaver.yaml` and `com.apple.security.firewall.yaml`.
//! `com.apple.applicationaccess.yaml` (restrictions) is not rendered: the
//! policy document has no rule that maps to a restriction yet.
//!
//! | rule              | iOS / iPadOS                              | macOS                                                |
//! |-------------------|-------------------------------------------|------------------------------------------------------|
//! | `screen_lock`     | passcode required, auto-lock ≤ 5 minutes  | the same, and a password as soon as the screen saver starts |
//! | `disk_encryption` | passcode required (Data Protection)       | not enforced; `SecurityInfo` reports `FDE_Enabled`   |
//! | `firewall`        | no host firewall                          | application firewall on                              |
//! | `os_version`      | not enforceable; `DeviceInformation` reports `OSVersion` | the same                              |
//!
//! The profile has one identifier per deployment, whatever the policy, so
//! installing the profile of a changed (or another) policy replaces the
//! one installed. Its `PayloadUUID` follows the content, so the same policy
//! renders the same bytes.

use plist::Value;

use super::enrollment::{
    ProfileError, RenderedProfile, non_empty, payload, reverse_dns, stable_uuid, top_level,
};
use super::{text, to_xml};
use crate::domain::policy::PolicyDocument;

/// The auto-lock the `screen_lock` rule sets, in minutes: the policy says
/// only that the screen must lock itself, and five minutes is the longest
/// auto-lock an iPhone offers.
pub const SCREEN_LOCK_IDLE_MINUTES: u64 = 5;

/// The Apple platforms a policy profile is rendered for: each gets only the
/// payloads it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplePlatform {
    /// iOS and iPadOS.
    Ios,
    MacOs,
}

impl ApplePlatform {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplePlatform::Ios => "ios",
            ApplePlatform::MacOs => "macos",
        }
    }

    /// `TargetDeviceType` (`TopLevel.yaml`).
    fn target_device_type(self) -> u64 {
        match self {
            ApplePlatform::Ios => 1,
            ApplePlatform::MacOs => 5,
        }
    }
}

/// A rule of the policy that the profile does not enforce on a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleGap {
    /// The check's name, as compliance reports it (`FailedCheck::check`).
    pub rule: &'static str,
    pub platform: ApplePlatform,
    /// The MDM query that still reports the state, if one does.
    pub reported_by: Option<&'static str>,
    pub reason: &'static str,
}

/// Where policy profiles are rendered for.
#[derive(Debug, Clone)]
pub struct PolicyProfileSettings {
    pub organization: String,
    /// Reverse-DNS base of every `PayloadIdentifier`.
    pub identifier_base: String,
}

/// A policy rendered for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProfile {
    /// The profile's `PayloadIdentifier`: the same for every policy, so it
    /// is also what to remove when the policy needs no profile.
    pub identifier: String,
    /// `None` when no rule of the policy needs a payload on the platform.
    pub profile: Option<RenderedProfile>,
    pub gaps: Vec<RuleGap>,
}

/// The `PayloadIdentifier` of the policy profile under `identifier_base`:
/// one for every policy, so installing one replaces the other.
pub fn policy_profile_identifier(identifier_base: &str) -> String {
    format!("{identifier_base}.policy")
}

/// Renders `policy` (named `policy_name`) for `platform`.
pub fn render_policy_profile(
    settings: &PolicyProfileSettings,
    policy_name: &str,
    policy: &PolicyDocument,
    platform: ApplePlatform,
) -> Result<PolicyProfile, ProfileError> {
    non_empty("organization", &settings.organization)?;
    reverse_dns(&settings.identifier_base)?;
    let base = settings.identifier_base.as_str();
    let identifier = policy_profile_identifier(base);
    let rules = &policy.rules;
    let payload_uuid = |payload_type: &str| {
        stable_uuid(&[
            base.as_bytes(),
            b"policy",
            platform.as_str().as_bytes(),
            payload_type.as_bytes(),
        ])
    };
    let mut content = Vec::new();
    let mut gaps = Vec::new();

    // com.apple.mobiledevice.passwordpolicy.yaml. On iOS a passcode is
    // also what turns Data Protection on.
    let passcode_for_encryption = platform == ApplePlatform::Ios && rules.disk_encryption;
    if rules.screen_lock || passcode_for_encryption {
        let mut passcode = payload(
            "com.apple.mobiledevice.passwordpolicy",
            &format!("{identifier}.passcode"),
            &payload_uuid("com.apple.mobiledevice.passwordpolicy"),
            "Passcode",
        );
        passcode.insert("forcePIN".into(), Value::Boolean(true));
        if rules.screen_lock {
            passcode.insert(
                "maxInactivity".into(),
                Value::Integer(SCREEN_LOCK_IDLE_MINUTES.into()),
            );
            passcode.insert("maxGracePeriod".into(), Value::Integer(0.into()));
        }
        content.push(Value::Dictionary(passcode));
    }

    if platform == ApplePlatform::MacOs && rules.screen_lock {
        // com.apple.screensaver.yaml: the password is asked as soon as the
        // screen saver starts. `moduleName`, which the schema marks
        // required, is left out: it would replace the user's screen saver,
        // and the keys present are applied without it.
        let mut screensaver = payload(
            "com.apple.screensaver",
            &format!("{identifier}.screensaver"),
            &payload_uuid("com.apple.screensaver"),
            "Screen saver",
        );
        screensaver.insert("askForPassword".into(), Value::Boolean(true));
        screensaver.insert("askForPasswordDelay".into(), Value::Integer(0.into()));
        content.push(Value::Dictionary(screensaver));
    }

    if rules.firewall {
        match platform {
            ApplePlatform::MacOs => {
                // com.apple.security.firewall.yaml
                let mut firewall = payload(
                    "com.apple.security.firewall",
                    &format!("{identifier}.firewall"),
                    &payload_uuid("com.apple.security.firewall"),
                    "Firewall",
                );
                firewall.insert("EnableFirewall".into(), Value::Boolean(true));
                content.push(Value::Dictionary(firewall));
            }
            ApplePlatform::Ios => gaps.push(RuleGap {
                rule: "firewall",
                platform,
                reported_by: None,
                reason: "iOS and iPadOS have no host firewall to require",
            }),
        }
    }

    if rules.disk_encryption && platform == ApplePlatform::MacOs {
        gaps.push(RuleGap {
            rule: "disk_encryption",
            platform,
            reported_by: Some("SecurityInfo FDE_Enabled"),
            reason: "turning FileVault on needs a FileVault payload with recovery-key escrow, which Latchkey does not render",
        });
    }

    if rules.min_os_version.contains_key(platform.as_str()) {
        gaps.push(RuleGap {
            rule: "os_version",
            platform,
            reported_by: Some("DeviceInformation OSVersion"),
            reason: "a configuration profile cannot require an OS version",
        });
    }

    let profile = if content.is_empty() {
        None
    } else {
        let content_digest = to_xml(&Value::Array(content.clone()))?;
        let uuid = stable_uuid(&[
            base.as_bytes(),
            b"policy",
            platform.as_str().as_bytes(),
            &content_digest,
        ]);
        let mut top = top_level(
            &identifier,
            &uuid,
            &format!("Policy {policy_name}"),
            &settings.organization,
            content,
        )?;
        top.insert(
            "PayloadDescription".into(),
            text(
                "PayloadDescription",
                &format!("The settings the policy {policy_name} requires of this device."),
            )?,
        );
        // The firewall payload must sit in a system-scoped profile.
        if platform == ApplePlatform::MacOs {
            top.insert("PayloadScope".into(), Value::String("System".into()));
        }
        top.insert(
            "TargetDeviceType".into(),
            Value::Integer(platform.target_device_type().into()),
        );
        Some(RenderedProfile {
            identifier: identifier.clone(),
            uuid,
            bytes: to_xml(&Value::Dictionary(top))?,
        })
    };
    Ok(PolicyProfile {
        identifier,
        profile,
        gaps,
    })
}

#[cfg(test)]
mod tests {
    use plist::Dictionary;

    use super::*;
    use crate::api::apple::wire::read_plist;
    use crate::domain::policy::parse_policy;

    fn settings() -> PolicyProfileSettings {
        PolicyProfileSettings {
            organization: "Example Corp".into(),
            identifier_base: "com.example.mdm".into(),
        }
    }

    const STRICT: &str = r#"
[compliance]
disk_encryption = true
screen_lock = true
firewall = true
[compliance.min_os_version]
ios = "17.5"
macos = "14.5"
linux = "12"
"#;

    fn render(policy: &str, platform: ApplePlatform) -> PolicyProfile {
        render_policy_profile(
            &settings(),
            "strict",
            &parse_policy(policy).unwrap(),
            platform,
        )
        .unwrap()
    }

    /// The profile's top level and its payloads by type.
    fn parse(profile: &PolicyProfile) -> (Dictionary, Vec<(String, Dictionary)>) {
        let rendered = profile.profile.as_ref().unwrap();
        let value = read_plist(&rendered.bytes).unwrap();
        let top = value.into_dictionary().unwrap();
        let payloads = top
            .get("PayloadContent")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|p| {
                let p = p.as_dictionary().unwrap().clone();
                let kind = p
                    .get("PayloadType")
                    .and_then(Value::as_string)
                    .unwrap()
                    .to_owned();
                (kind, p)
            })
            .collect();
        (top, payloads)
    }

    fn int(dict: &Dictionary, key: &str) -> Option<i64> {
        dict.get(key).and_then(Value::as_signed_integer)
    }

    fn boolean(dict: &Dictionary, key: &str) -> Option<bool> {
        dict.get(key).and_then(Value::as_boolean)
    }

    #[test]
    fn a_strict_policy_on_an_iphone() {
        let profile = render(STRICT, ApplePlatform::Ios);
        assert_eq!(profile.identifier, "com.example.mdm.policy");
        let (top, payloads) = parse(&profile);
        assert_eq!(
            top.get("PayloadIdentifier").and_then(Value::as_string),
            Some("com.example.mdm.policy")
        );
        assert_eq!(int(&top, "TargetDeviceType"), Some(1));
        assert!(!top.contains_key("PayloadScope"));
        let kinds: Vec<&str> = payloads.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["com.apple.mobiledevice.passwordpolicy"]);
        let passcode = &payloads[0].1;
        assert_eq!(boolean(passcode, "forcePIN"), Some(true));
        assert_eq!(int(passcode, "maxInactivity"), Some(5));
        assert_eq!(int(passcode, "maxGracePeriod"), Some(0));
        assert_eq!(
            profile.gaps,
            vec![
                RuleGap {
                    rule: "firewall",
                    platform: ApplePlatform::Ios,
                    reported_by: None,
                    reason: "iOS and iPadOS have no host firewall to require",
                },
                RuleGap {
                    rule: "os_version",
                    platform: ApplePlatform::Ios,
                    reported_by: Some("DeviceInformation OSVersion"),
                    reason: "a configuration profile cannot require an OS version",
                },
            ]
        );
    }

    #[test]
    fn a_strict_policy_on_a_mac() {
        let profile = render(STRICT, ApplePlatform::MacOs);
        let (top, payloads) = parse(&profile);
        assert_eq!(int(&top, "TargetDeviceType"), Some(5));
        assert_eq!(
            top.get("PayloadScope").and_then(Value::as_string),
            Some("System")
        );
        let kinds: Vec<&str> = payloads.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "com.apple.mobiledevice.passwordpolicy",
                "com.apple.screensaver",
                "com.apple.security.firewall"
            ]
        );
        let screensaver = &payloads[1].1;
        assert_eq!(boolean(screensaver, "askForPassword"), Some(true));
        assert_eq!(int(screensaver, "askForPasswordDelay"), Some(0));
        assert_eq!(boolean(&payloads[2].1, "EnableFirewall"), Some(true));
        for (_, payload) in &payloads {
            let identifier = payload
                .get("PayloadIdentifier")
                .and_then(Value::as_string)
                .unwrap();
            assert!(
                identifier.starts_with("com.example.mdm.policy."),
                "{identifier}"
            );
        }
        let rules: Vec<&str> = profile.gaps.iter().map(|g| g.rule).collect();
        assert_eq!(rules, ["disk_encryption", "os_version"]);
        assert_eq!(
            profile.gaps[0].reported_by,
            Some("SecurityInfo FDE_Enabled")
        );
    }

    #[test]
    fn disk_encryption_alone_asks_an_iphone_for_a_passcode_only() {
        let profile = render("[compliance]\ndisk_encryption = true", ApplePlatform::Ios);
        let (_, payloads) = parse(&profile);
        let passcode = &payloads[0].1;
        assert_eq!(boolean(passcode, "forcePIN"), Some(true));
        assert!(!passcode.contains_key("maxInactivity"));
        assert!(profile.gaps.is_empty());
        let mac = render("[compliance]\ndisk_encryption = true", ApplePlatform::MacOs);
        assert_eq!(mac.profile, None);
        assert_eq!(mac.gaps.len(), 1);
    }

    #[test]
    fn a_policy_apple_needs_nothing_for_renders_no_profile() {
        for platform in [ApplePlatform::Ios, ApplePlatform::MacOs] {
            let profile = render("[compliance.min_os_version]\nlinux = \"12\"", platform);
            assert_eq!(profile.profile, None);
            assert!(profile.gaps.is_empty());
            assert_eq!(profile.identifier, "com.example.mdm.policy");
        }
    }

    #[test]
    fn a_changed_policy_replaces_the_installed_profile() {
        let strict = render(STRICT, ApplePlatform::MacOs);
        let again = render(STRICT, ApplePlatform::MacOs);
        assert_eq!(strict, again, "the same policy renders the same bytes");
        let lighter = render("[compliance]\nscreen_lock = true", ApplePlatform::MacOs);
        let (strict_profile, lighter_profile) = (strict.profile.unwrap(), lighter.profile.unwrap());
        assert_eq!(strict_profile.identifier, lighter_profile.identifier);
        assert_ne!(strict_profile.uuid, lighter_profile.uuid);
        let (_, strict_payloads) = parse(&render(STRICT, ApplePlatform::MacOs));
        let (_, lighter_payloads) = parse(&render(
            "[compliance]\nscreen_lock = true",
            ApplePlatform::MacOs,
        ));
        assert_eq!(
            strict_payloads[0].1.get("PayloadUUID"),
            lighter_payloads[0].1.get("PayloadUUID"),
            "a payload keeps its UUID"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let policy = parse_policy(STRICT).unwrap();
        let bad = PolicyProfileSettings {
            organization: "Example Corp".into(),
            identifier_base: "not a reverse dns".into(),
        };
        assert_eq!(
            render_policy_profile(&bad, "strict", &policy, ApplePlatform::Ios),
            Err(ProfileError::NotReverseDns("not a reverse dns".into()))
        );
        assert_eq!(
            render_policy_profile(&settings(), "bad\u{0}name", &policy, ApplePlatform::Ios),
            Err(ProfileError::Encode(
                crate::api::apple::commands::EncodeError::UnencodableText {
                    key: "PayloadDisplayName"
                }
            ))
        );
    }
}
