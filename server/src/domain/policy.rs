//! Policies: the TOML document an admin writes, which policy applies to a
//! device, and compliance evaluated from the device's latest posture.
//!
//! A device's policy is the one assigned to the device itself, else the one
//! assigned to its group. A device without a policy is held to the default
//! rules: a posture report no older than 24 hours and nothing else.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::device::{CheckState, Device};

/// The policy in force for one device: its name and document.
#[derive(Debug, Clone)]
pub struct EffectivePolicy {
    pub name: String,
    pub document: String,
}

/// A device's compliance as judged when its posture arrived: compliant
/// before `compliant_until` (none: not compliant) while the basis it was
/// judged on (`policy::verdict_basis`) is still current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceVerdict {
    pub compliant_until: Option<DateTime<Utc>>,
    pub basis: String,
}

#[derive(Debug, Clone)]
pub struct StoredPolicy {
    pub name: String,
    pub document: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub groups: Vec<String>,
    pub devices: Vec<String>,
}

pub const DEFAULT_MAX_POSTURE_AGE: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_POSTURE_INTERVAL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid policy: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDocument {
    #[serde(default)]
    compliance: FileCompliance,
    #[serde(default)]
    settings: FileSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCompliance {
    #[serde(default)]
    min_os_version: BTreeMap<String, String>,
    #[serde(default)]
    disk_encryption: bool,
    #[serde(default)]
    screen_lock: bool,
    #[serde(default)]
    firewall: bool,
    max_posture_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    posture_interval: Option<String>,
}

/// A validated policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    pub rules: ComplianceRules,
    /// How often the agent reports posture.
    pub posture_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceRules {
    /// Platform ("linux", "macos", "windows") -> minimum dotted version.
    pub min_os_version: BTreeMap<String, String>,
    pub disk_encryption: bool,
    pub screen_lock: bool,
    pub firewall: bool,
    pub max_posture_age: Duration,
}

impl Default for PolicyDocument {
    fn default() -> Self {
        PolicyDocument {
            rules: ComplianceRules {
                min_os_version: BTreeMap::new(),
                disk_encryption: false,
                screen_lock: false,
                firewall: false,
                max_posture_age: DEFAULT_MAX_POSTURE_AGE,
            },
            posture_interval: DEFAULT_POSTURE_INTERVAL,
        }
    }
}

const PLATFORMS: [&str; 5] = ["linux", "macos", "windows", "ios", "android"];

pub fn parse_policy(text: &str) -> Result<PolicyDocument, PolicyError> {
    let file: FileDocument =
        toml::from_str(text).map_err(|e| PolicyError::Invalid(e.to_string().trim().to_owned()))?;
    let mut min_os_version = BTreeMap::new();
    for (platform, version) in file.compliance.min_os_version {
        if !PLATFORMS.contains(&platform.as_str()) {
            return Err(PolicyError::Invalid(format!(
                "min_os_version: unknown platform {platform:?}; use one of {}",
                PLATFORMS.join(", ")
            )));
        }
        if parse_version(&version).is_none() {
            return Err(PolicyError::Invalid(format!(
                "min_os_version.{platform}: {version:?} is not a dotted version such as \"14.5\""
            )));
        }
        min_os_version.insert(platform, version);
    }
    let duration = |field: &str, value: Option<String>, default: Duration| match value {
        Some(text) => latchkey_proto::text::parse_duration(&text)
            .map_err(|e| PolicyError::Invalid(format!("{field}: {e}"))),
        None => Ok(default),
    };
    let max_posture_age = duration(
        "compliance.max_posture_age",
        file.compliance.max_posture_age,
        DEFAULT_MAX_POSTURE_AGE,
    )?;
    let posture_interval = duration(
        "settings.posture_interval",
        file.settings.posture_interval,
        DEFAULT_POSTURE_INTERVAL,
    )?;
    if posture_interval < Duration::from_secs(30) {
        return Err(PolicyError::Invalid(
            "settings.posture_interval must be at least 30s".into(),
        ));
    }
    if posture_interval >= max_posture_age {
        return Err(PolicyError::Invalid(format!(
            "settings.posture_interval ({}) must be shorter than compliance.max_posture_age ({}), or every device falls out of compliance between reports",
            latchkey_proto::text::format_duration(posture_interval),
            latchkey_proto::text::format_duration(max_posture_age)
        )));
    }
    Ok(PolicyDocument {
        rules: ComplianceRules {
            min_os_version,
            disk_encryption: file.compliance.disk_encryption,
            screen_lock: file.compliance.screen_lock,
            firewall: file.compliance.firewall,
            max_posture_age,
        },
        posture_interval,
    })
}

/// The policy that applies to `device`: its own assignment, else its group's.
pub fn effective_policy<'a>(
    device: &Device,
    policies: &'a [StoredPolicy],
) -> Option<&'a StoredPolicy> {
    let id = device.id.as_str();
    policies
        .iter()
        .find(|p| p.devices.iter().any(|d| d == id))
        .or_else(|| {
            let group = device.group.as_deref()?;
            policies
                .iter()
                .find(|p| p.groups.iter().any(|g| g == group))
        })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCheck {
    pub check: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compliance {
    Compliant,
    NonCompliant(Vec<FailedCheck>),
    /// The agent has not reported posture yet.
    Unknown,
}

impl Compliance {
    pub fn as_str(&self) -> &'static str {
        match self {
            Compliance::Compliant => "compliant",
            Compliance::NonCompliant(_) => "noncompliant",
            Compliance::Unknown => "unknown",
        }
    }

    pub fn failed_checks(&self) -> &[FailedCheck] {
        match self {
            Compliance::NonCompliant(failed) => failed,
            _ => &[],
        }
    }
}

fn parse_version(text: &str) -> Option<Vec<u64>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    text.split('.').map(|part| part.parse().ok()).collect()
}

/// Compares dotted versions numerically; "14" equals "14.0".
fn version_at_least(actual: &str, minimum: &str) -> Option<bool> {
    let mut a = parse_version(actual)?;
    let mut m = parse_version(minimum)?;
    let len = a.len().max(m.len());
    a.resize(len, 0);
    m.resize(len, 0);
    Some(a >= m)
}

fn required_enabled(check: &'static str, label: &str, state: CheckState) -> Option<FailedCheck> {
    match state {
        CheckState::Enabled => None,
        CheckState::Disabled => Some(FailedCheck {
            check,
            detail: format!("{label} is off"),
        }),
        CheckState::Unknown => Some(FailedCheck {
            check,
            detail: format!("{label} could not be read on this device"),
        }),
    }
}

/// The rules of a stored policy document; the default rules without one.
/// Documents are checked when they are stored, so one that no longer
/// parses is held to the default rules as well.
pub fn rules_of(document: Option<&str>) -> ComplianceRules {
    document
        .and_then(|d| parse_policy(d).ok())
        .unwrap_or_default()
        .rules
}

/// The revision of the judgement [`evaluate`] makes. Raise it with any
/// change to `evaluate`, to policy parsing or to the default rules that
/// could judge a posture differently: stored verdicts of another revision
/// are then no longer trusted.
pub const RULES_REVISION: &str = "1";

/// What a stored verdict rests on besides the posture: the rules revision,
/// then the policy document in force ("" for none).
pub fn verdict_basis(document: &str) -> String {
    format!("{RULES_REVISION}:{document}")
}

/// The verdict on the posture `device` has just reported, under the policy
/// `document` in force ("" for none). Posture age is the only check that
/// depends on the time: a device compliant when its posture arrives stays
/// compliant until that posture is as old as the policy allows. Times are
/// stored in whole milliseconds: `compliant_until` is the posture time as
/// stored plus that age, and a verdict is trusted only strictly before it,
/// so it never outlasts what [`evaluate`] would say.
pub fn verdict(device: &Device, document: &str) -> ComplianceVerdict {
    let rules = rules_of(Some(document));
    let compliant_until = device
        .posture_at
        .filter(|&at| evaluate(device, &rules, at) == Compliance::Compliant)
        .and_then(|at| DateTime::from_timestamp_millis(at.timestamp_millis()))
        .and_then(|at| {
            let age = chrono::Duration::from_std(rules.max_posture_age).ok()?;
            at.checked_add_signed(age)
        });
    ComplianceVerdict {
        compliant_until,
        basis: verdict_basis(document),
    }
}

pub fn evaluate(device: &Device, rules: &ComplianceRules, now: DateTime<Utc>) -> Compliance {
    let (Some(posture), Some(posture_at)) = (&device.posture, device.posture_at) else {
        return Compliance::Unknown;
    };
    let mut failed = Vec::new();
    let age = (now - posture_at).to_std().unwrap_or_default();
    if age > rules.max_posture_age {
        failed.push(FailedCheck {
            check: "posture_age",
            detail: format!(
                "last posture report is {} old; the policy allows {}",
                latchkey_proto::text::format_duration(Duration::from_secs(age.as_secs())),
                latchkey_proto::text::format_duration(rules.max_posture_age)
            ),
        });
    }
    if let Some(minimum) = rules.min_os_version.get(&device.platform) {
        let actual = if posture.os_version.is_empty() {
            &device.os_version
        } else {
            &posture.os_version
        };
        match version_at_least(actual, minimum) {
            Some(true) => {}
            Some(false) => failed.push(FailedCheck {
                check: "os_version",
                detail: format!("{} {actual} is older than {minimum}", device.platform),
            }),
            None => failed.push(FailedCheck {
                check: "os_version",
                detail: format!("OS version {actual:?} cannot be compared with {minimum}"),
            }),
        }
    }
    if rules.disk_encryption {
        failed.extend(required_enabled(
            "disk_encryption",
            "disk encryption",
            posture.disk_encryption,
        ));
    }
    if rules.screen_lock {
        failed.extend(required_enabled(
            "screen_lock",
            "screen lock",
            posture.screen_lock,
        ));
    }
    if rules.firewall {
        failed.extend(required_enabled("firewall", "firewall", posture.firewall));
    }
    if failed.is_empty() {
        Compliance::Compliant
    } else {
        Compliance::NonCompliant(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::device::{DeviceState, Posture};
    use crate::domain::ids::DeviceId;

    fn device(now: DateTime<Utc>, posture: Option<Posture>) -> Device {
        Device {
            id: DeviceId::generate(),
            hostname: "h".into(),
            platform: "linux".into(),
            os_version: "12".into(),
            machine_id: String::new(),
            serial: String::new(),
            model: String::new(),
            state: DeviceState::Active,
            user: None,
            group: Some("staff".into()),
            enrolled_at: now,
            last_seen: Some(now),
            posture_at: posture.as_ref().map(|_| now),
            posture,
            certificate_expires_at: None,
            channel: crate::domain::device::Channel::agent(),
        }
    }

    const POLICY: &str = r#"
[compliance]
disk_encryption = true
max_posture_age = "1h"
[compliance.min_os_version]
linux = "12.4"
[settings]
posture_interval = "5m"
"#;

    #[test]
    fn policy_document_parses_and_rejects_mistakes() {
        let doc = parse_policy(POLICY).unwrap();
        assert!(doc.rules.disk_encryption);
        assert_eq!(doc.posture_interval, Duration::from_secs(300));
        assert!(
            parse_policy("[compliance]\ndisk_encrypton = true")
                .unwrap_err()
                .to_string()
                .contains("disk_encrypton")
        );
        assert!(
            parse_policy("[compliance.min_os_version]\nbeos = \"5\"")
                .unwrap_err()
                .to_string()
                .contains("beos")
        );
        assert!(
            parse_policy(
                "[compliance]\nmax_posture_age = \"10m\"\n[settings]\nposture_interval = \"15m\""
            )
            .unwrap_err()
            .to_string()
            .contains("shorter")
        );
    }

    #[test]
    fn the_example_policy_in_the_docs_parses() {
        let doc =
            parse_policy(include_str!("../../../docs/examples/baseline-policy.toml")).unwrap();
        assert_eq!(
            doc.rules.min_os_version.get("linux").map(String::as_str),
            Some("12")
        );
        assert_eq!(doc.posture_interval, Duration::from_secs(900));
    }

    #[test]
    fn failing_checks_are_named() {
        let now = Utc::now();
        let rules = parse_policy(POLICY).unwrap().rules;
        let posture = Posture {
            os_version: "12".into(),
            disk_encryption: CheckState::Disabled,
            screen_lock: CheckState::Unknown,
            firewall: CheckState::Unknown,
        };
        let result = evaluate(&device(now, Some(posture.clone())), &rules, now);
        let checks: Vec<_> = result.failed_checks().iter().map(|f| f.check).collect();
        assert_eq!(checks, ["os_version", "disk_encryption"]);

        let good = Posture {
            os_version: "12.10".into(),
            disk_encryption: CheckState::Enabled,
            ..posture
        };
        assert_eq!(
            evaluate(&device(now, Some(good.clone())), &rules, now),
            Compliance::Compliant
        );
        let later = now + chrono::Duration::hours(2);
        let stale = evaluate(&device(now, Some(good)), &rules, later);
        assert_eq!(stale.failed_checks()[0].check, "posture_age");
        assert_eq!(
            evaluate(&device(now, None), &rules, now),
            Compliance::Unknown
        );
    }
}
