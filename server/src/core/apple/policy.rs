//! A Latchkey policy on an Apple device: rendered as a configuration
//! profile (`apple_profiles::policy`) and queued as InstallProfile when
//! the device completes its enrollment and whenever the policy in force
//! changes; the profile's fixed identifier makes each install replace the
//! one before. Rules Apple cannot enforce are reported, not rendered.

use chrono::{DateTime, Utc};
use tracing::warn;

use super::AppleSettings;
use crate::apple_profiles::policy::{ApplePlatform, PolicyProfileSettings, render_policy_profile};
use crate::domain::audit::Actor;
use crate::domain::command::{Command, CommandArgs, CommandKind, CommandStatus};
use crate::domain::device::Device;
use crate::domain::ids::CommandId;
use crate::domain::policy::parse_policy;

/// The profile platform of an Apple device's `platform`.
fn profile_platform(platform: &str) -> Option<ApplePlatform> {
    match platform {
        "ios" | "ipados" => Some(ApplePlatform::Ios),
        "macos" => Some(ApplePlatform::MacOs),
        _ => None,
    }
}

/// The InstallProfile command that brings `device` to the policy `name`
/// (its TOML `document`), if the policy needs a profile on the device's
/// platform.
pub(crate) fn policy_install_command(
    settings: &AppleSettings,
    device: &Device,
    name: &str,
    document: &str,
    now: DateTime<Utc>,
) -> Option<Command> {
    let platform = profile_platform(&device.platform)?;
    let parsed = match parse_policy(document) {
        Ok(parsed) => parsed,
        Err(e) => {
            warn!(policy = %name, error = %e, "a stored policy does not parse");
            return None;
        }
    };
    let rendered = match render_policy_profile(
        &PolicyProfileSettings {
            organization: settings.organization.clone(),
            identifier_base: settings.identifier_base(),
        },
        name,
        &parsed,
        platform,
    ) {
        Ok(rendered) => rendered,
        Err(e) => {
            warn!(policy = %name, error = %e, "the policy cannot be rendered as a profile");
            return None;
        }
    };
    let profile = rendered.profile?;
    Some(Command {
        id: CommandId::generate(),
        device_id: device.id.clone(),
        kind: CommandKind::InstallProfile,
        message: format!("policy {name}"),
        args: CommandArgs {
            profile: Some(profile.bytes),
            ..CommandArgs::default()
        },
        status: CommandStatus::Pending,
        result: None,
        created_at: now,
        sent_at: None,
        acked_at: None,
        created_by: Actor::System.to_string(),
    })
}
