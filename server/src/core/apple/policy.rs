//! A Latchkey policy on an Apple device: rendered as a configuration
//! profile (`apple_profiles::policy`) and queued as InstallProfile when
//! the device completes its enrollment and whenever the policy in force
//! changes; the profile's fixed identifier makes each install replace the
//! one before, and a RemoveProfile takes it away once the policy in force
//! needs no profile. Rules Apple cannot enforce are reported, not
//! rendered.

use chrono::{DateTime, Utc};
use tracing::warn;

use super::AppleSettings;
use crate::apple_profiles::policy::{
    ApplePlatform, PolicyProfile, PolicyProfileSettings, policy_profile_identifier,
    render_policy_profile,
};
use crate::domain::audit::Actor;
use crate::domain::command::{Command, CommandArgs, CommandKind, CommandStatus};
use crate::domain::device::Device;
use crate::domain::policy::parse_policy;

/// The profile platform of an Apple device's `platform`.
pub(crate) fn profile_platform(platform: &str) -> Option<ApplePlatform> {
    match platform {
        "ios" | "ipados" => Some(ApplePlatform::Ios),
        "macos" => Some(ApplePlatform::MacOs),
        _ => None,
    }
}

/// The policy `name` (its TOML `document`) rendered for `device`'s
/// platform; `None` when the device is no platform profiles are made for,
/// or the stored policy no longer parses or renders (logged).
pub(crate) fn rendered_policy(
    settings: &AppleSettings,
    device: &Device,
    name: &str,
    document: &str,
) -> Option<PolicyProfile> {
    let platform = profile_platform(&device.platform)?;
    let parsed = match parse_policy(document) {
        Ok(parsed) => parsed,
        Err(e) => {
            warn!(policy = %name, error = %e, "a stored policy does not parse");
            return None;
        }
    };
    match render_policy_profile(
        &PolicyProfileSettings {
            organization: settings.organization.clone(),
            identifier_base: settings.identifier_base(),
        },
        name,
        &parsed,
        platform,
    ) {
        Ok(rendered) => Some(rendered),
        Err(e) => {
            warn!(policy = %name, error = %e, "the policy cannot be rendered as a profile");
            None
        }
    }
}

/// The InstallProfile command that brings a device just enrolled (nothing
/// of ours installed yet) to the policy `name`, if the policy needs a
/// profile on the device's platform.
pub(crate) fn policy_install_command(
    settings: &AppleSettings,
    device: &Device,
    name: &str,
    document: &str,
    now: DateTime<Utc>,
) -> Option<Command> {
    let rendered = rendered_policy(settings, device, name, document)?;
    let profile = rendered.profile?;
    Some(profile_command(
        device,
        CommandKind::InstallProfile,
        format!("policy {name}"),
        CommandArgs {
            profile: Some(profile.bytes),
            profile_identifier: Some(rendered.identifier),
            ..CommandArgs::default()
        },
        now,
    ))
}

/// Whether `command` installs or removes the policy profile `identifier`.
/// Installs queued before commands named their profile are the policy's:
/// nothing else was installed then.
fn concerns_policy_profile(command: &Command, identifier: &str) -> bool {
    match command.kind {
        CommandKind::InstallProfile | CommandKind::RemoveProfile => {
            match &command.args.profile_identifier {
                Some(named) => named == identifier,
                None => {
                    command.kind == CommandKind::InstallProfile
                        && command.message.starts_with("policy ")
                }
            }
        }
        _ => false,
    }
}

/// What the device holds of the policy profile, as far as the commands
/// sent for it show: the profile last installed, or nothing. A failed
/// install changed nothing; a failed removal is taken as the profile
/// being gone (Apple refuses to remove a profile it does not have).
fn installed_policy_profile<'a>(history: &'a [Command], identifier: &str) -> Option<&'a [u8]> {
    history
        .iter()
        .filter(|c| concerns_policy_profile(c, identifier))
        .rev()
        .find(|c| !(c.kind == CommandKind::InstallProfile && c.status == CommandStatus::Failed))
        .filter(|c| c.kind == CommandKind::InstallProfile)
        .and_then(|c| c.args.profile.as_deref())
}

/// The command that brings an enrolled Apple device from what it was last
/// sent (`history`, its commands oldest first) to the policy in force
/// (`policy`: its name and document; `None` when no policy applies):
/// InstallProfile when the profile differs, RemoveProfile when a profile
/// is installed and the policy needs none, and nothing when the device
/// already has what the policy asks.
pub(crate) fn policy_profile_command(
    settings: &AppleSettings,
    device: &Device,
    policy: Option<(&str, &str)>,
    history: &[Command],
    now: DateTime<Utc>,
) -> Option<Command> {
    profile_platform(&device.platform)?;
    let identifier = policy_profile_identifier(&settings.identifier_base());
    let installed = installed_policy_profile(history, &identifier);
    let wanted = match policy {
        Some((name, document)) => match rendered_policy(settings, device, name, document) {
            Some(rendered) => rendered.profile.map(|p| (name, p.bytes)),
            // A policy that no longer renders leaves the device as it is.
            None => return None,
        },
        None => None,
    };
    match (wanted, installed) {
        (Some((_, bytes)), Some(installed)) if bytes == installed => None,
        (Some((name, bytes)), _) => Some(profile_command(
            device,
            CommandKind::InstallProfile,
            format!("policy {name}"),
            CommandArgs {
                profile: Some(bytes),
                profile_identifier: Some(identifier),
                ..CommandArgs::default()
            },
            now,
        )),
        (None, Some(_)) => Some(profile_command(
            device,
            CommandKind::RemoveProfile,
            match policy {
                Some((name, _)) => format!("policy {name} needs no profile"),
                None => "no policy in force".to_owned(),
            },
            CommandArgs {
                profile_identifier: Some(identifier),
                ..CommandArgs::default()
            },
            now,
        )),
        (None, None) => None,
    }
}

fn profile_command(
    device: &Device,
    kind: CommandKind,
    message: String,
    args: CommandArgs,
    now: DateTime<Utc>,
) -> Command {
    Command::pending(
        device.id.clone(),
        kind,
        message,
        args,
        Actor::System.to_string(),
        now,
    )
}
