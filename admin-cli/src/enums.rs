//! The words latchctl prints for the server's enum values (roles, device
//! states, compliance, token statuses, commands' kinds and statuses,
//! users' kinds and statuses, apps' device and second-factor policies,
//! audit outcomes), and the words it reads into them (`--role`, `--device`,
//! `--mfa`).
//!
//! Protobuf enums arrive as numbers, and a server newer than latchctl may
//! send one latchctl does not know; that, or a value the server left
//! unspecified, is an error naming the field, never a guess.

use latchkey_proto::v1;

use crate::CliError;

/// The error for a value latchctl cannot print: `0` (unspecified) or a
/// number this latchctl does not know.
fn cannot_print(field: &str, value: i32) -> CliError {
    if value == 0 {
        CliError::Answer(format!(
            "has no {field}; a server older than this latchctl sends none, so use a latchctl as old as the server"
        ))
    } else {
        CliError::Answer(format!(
            "has {field} number {value}, which this latchctl does not know; use a latchctl as new as the server"
        ))
    }
}

pub fn role(value: i32) -> Result<&'static str, CliError> {
    match v1::Role::try_from(value) {
        Ok(v1::Role::Owner) => Ok("owner"),
        Ok(v1::Role::Admin) => Ok("admin"),
        Ok(v1::Role::Helpdesk) => Ok("helpdesk"),
        Ok(v1::Role::Auditor) => Ok("auditor"),
        Ok(v1::Role::Unspecified) | Err(_) => Err(cannot_print("role", value)),
    }
}

/// A role as the admin types it (`--role helpdesk`). An unknown one is
/// refused in the words the server refuses it with.
pub fn parse_role(text: &str) -> Result<v1::Role, CliError> {
    match text {
        "owner" => Ok(v1::Role::Owner),
        "admin" => Ok(v1::Role::Admin),
        "helpdesk" => Ok(v1::Role::Helpdesk),
        "auditor" => Ok(v1::Role::Auditor),
        _ => Err(CliError::Usage(format!(
            "invalid argument: unknown role {text:?}; use owner, admin, helpdesk or auditor"
        ))),
    }
}

pub fn device_state(value: i32) -> Result<&'static str, CliError> {
    match v1::DeviceState::try_from(value) {
        Ok(v1::DeviceState::Active) => Ok("active"),
        Ok(v1::DeviceState::Locked) => Ok("locked"),
        Ok(v1::DeviceState::WipePending) => Ok("wipe-pending"),
        Ok(v1::DeviceState::Retired) => Ok("retired"),
        Ok(v1::DeviceState::Wiped) => Ok("wiped"),
        Ok(v1::DeviceState::AwaitingEnrollment) => Ok("awaiting-enrollment"),
        Ok(v1::DeviceState::Lost) => Ok("lost"),
        Ok(v1::DeviceState::Unspecified) | Err(_) => Err(cannot_print("device state", value)),
    }
}

/// Compliance as JSON's `compliant` says it (true, false, or null while
/// unknown) and as text says it.
pub fn compliance(value: i32) -> Result<(Option<bool>, &'static str), CliError> {
    match v1::Compliance::try_from(value) {
        Ok(v1::Compliance::Compliant) => Ok((Some(true), "compliant")),
        Ok(v1::Compliance::Noncompliant) => Ok((Some(false), "noncompliant")),
        Ok(v1::Compliance::Unknown) => Ok((None, "unknown")),
        Ok(v1::Compliance::Unspecified) | Err(_) => Err(cannot_print("compliance", value)),
    }
}

pub fn token_status(value: i32) -> Result<&'static str, CliError> {
    match v1::TokenStatus::try_from(value) {
        Ok(v1::TokenStatus::Usable) => Ok("usable"),
        Ok(v1::TokenStatus::Revoked) => Ok("revoked"),
        Ok(v1::TokenStatus::Expired) => Ok("expired"),
        Ok(v1::TokenStatus::UsedUp) => Ok("used up"),
        Ok(v1::TokenStatus::Unspecified) | Err(_) => Err(cannot_print("token status", value)),
    }
}

pub fn command_kind(value: i32) -> Result<&'static str, CliError> {
    match v1::CommandKind::try_from(value) {
        Ok(v1::CommandKind::Lock) => Ok("lock"),
        Ok(v1::CommandKind::Unlock) => Ok("unlock"),
        Ok(v1::CommandKind::Wipe) => Ok("wipe"),
        Ok(v1::CommandKind::LostMode) => Ok("lost-mode"),
        Ok(v1::CommandKind::Inventory) => Ok("inventory"),
        Ok(v1::CommandKind::SecurityInfo) => Ok("security-info"),
        Ok(v1::CommandKind::InstallProfile) => Ok("install-profile"),
        Ok(v1::CommandKind::ReleaseSetup) => Ok("release-setup"),
        Ok(v1::CommandKind::EndLostMode) => Ok("end-lost-mode"),
        Ok(v1::CommandKind::Locate) => Ok("locate"),
        Ok(v1::CommandKind::Restart) => Ok("restart"),
        Ok(v1::CommandKind::ListProfiles) => Ok("list-profiles"),
        Ok(v1::CommandKind::RemoveProfile) => Ok("remove-profile"),
        Ok(v1::CommandKind::Unspecified) | Err(_) => Err(cannot_print("command kind", value)),
    }
}

pub fn command_status(value: i32) -> Result<&'static str, CliError> {
    match v1::CommandStatus::try_from(value) {
        Ok(v1::CommandStatus::Pending) => Ok("pending"),
        Ok(v1::CommandStatus::Sent) => Ok("sent"),
        Ok(v1::CommandStatus::Acknowledged) => Ok("acknowledged"),
        Ok(v1::CommandStatus::Failed) => Ok("failed"),
        Ok(v1::CommandStatus::Unspecified) | Err(_) => Err(cannot_print("command status", value)),
    }
}

pub fn user_kind(value: i32) -> Result<&'static str, CliError> {
    match v1::UserKind::try_from(value) {
        Ok(v1::UserKind::User) => Ok("user"),
        Ok(v1::UserKind::BreakGlass) => Ok("break-glass"),
        Ok(v1::UserKind::Unspecified) | Err(_) => Err(cannot_print("user kind", value)),
    }
}

pub fn user_status(value: i32) -> Result<&'static str, CliError> {
    match v1::UserStatus::try_from(value) {
        Ok(v1::UserStatus::Active) => Ok("active"),
        Ok(v1::UserStatus::Suspended) => Ok("suspended"),
        Ok(v1::UserStatus::Deleted) => Ok("deleted"),
        Ok(v1::UserStatus::Unspecified) | Err(_) => Err(cannot_print("user status", value)),
    }
}

pub fn device_policy(value: i32) -> Result<&'static str, CliError> {
    match v1::DevicePolicy::try_from(value) {
        Ok(v1::DevicePolicy::None) => Ok("none"),
        Ok(v1::DevicePolicy::Confirm) => Ok("confirm"),
        Ok(v1::DevicePolicy::Bound) => Ok("bound"),
        Ok(v1::DevicePolicy::Unspecified) | Err(_) => Err(cannot_print("device policy", value)),
    }
}

/// An app's device policy as the admin types it (`--device confirm`).
pub fn parse_device_policy(text: &str) -> Result<v1::DevicePolicy, CliError> {
    match text {
        "none" => Ok(v1::DevicePolicy::None),
        "confirm" => Ok(v1::DevicePolicy::Confirm),
        "bound" => Ok(v1::DevicePolicy::Bound),
        _ => Err(CliError::Usage(format!(
            "invalid argument: unknown device policy {text:?}; use none, confirm or bound"
        ))),
    }
}

pub fn mfa_policy(value: i32) -> Result<&'static str, CliError> {
    match v1::MfaPolicy::try_from(value) {
        Ok(v1::MfaPolicy::None) => Ok("none"),
        Ok(v1::MfaPolicy::Totp) => Ok("totp"),
        Ok(v1::MfaPolicy::Email) => Ok("email"),
        Ok(v1::MfaPolicy::Unspecified) | Err(_) => Err(cannot_print("second-factor policy", value)),
    }
}

/// An app's second factor as the admin types it (`--mfa totp`).
pub fn parse_mfa_policy(text: &str) -> Result<v1::MfaPolicy, CliError> {
    match text {
        "none" => Ok(v1::MfaPolicy::None),
        "totp" => Ok(v1::MfaPolicy::Totp),
        "email" => Ok(v1::MfaPolicy::Email),
        _ => Err(CliError::Usage(format!(
            "invalid argument: unknown second factor {text:?}; use none, totp or email"
        ))),
    }
}

pub fn audit_outcome(value: i32) -> Result<&'static str, CliError> {
    match v1::AuditOutcome::try_from(value) {
        Ok(v1::AuditOutcome::Ok) => Ok("ok"),
        Ok(v1::AuditOutcome::Denied) => Ok("denied"),
        Ok(v1::AuditOutcome::Failed) => Ok("failed"),
        Ok(v1::AuditOutcome::Unspecified) | Err(_) => Err(cannot_print("audit outcome", value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_latchctl_prints_it_also_reads() {
        for role in [
            v1::Role::Owner,
            v1::Role::Admin,
            v1::Role::Helpdesk,
            v1::Role::Auditor,
        ] {
            let word = super::role(role.into()).unwrap();
            assert_eq!(parse_role(word).unwrap(), role);
        }
    }

    #[test]
    fn every_app_policy_latchctl_prints_it_also_reads() {
        for policy in [
            v1::DevicePolicy::None,
            v1::DevicePolicy::Confirm,
            v1::DevicePolicy::Bound,
        ] {
            let word = device_policy(policy.into()).unwrap();
            assert_eq!(parse_device_policy(word).unwrap(), policy);
        }
        for policy in [
            v1::MfaPolicy::None,
            v1::MfaPolicy::Totp,
            v1::MfaPolicy::Email,
        ] {
            let word = mfa_policy(policy.into()).unwrap();
            assert_eq!(parse_mfa_policy(word).unwrap(), policy);
        }
    }

    #[test]
    fn an_unknown_policy_word_is_refused_in_the_words_the_server_used() {
        assert_eq!(
            parse_device_policy("maybe").unwrap_err().to_string(),
            r#"invalid argument: unknown device policy "maybe"; use none, confirm or bound"#
        );
        assert_eq!(
            parse_mfa_policy("sms").unwrap_err().to_string(),
            r#"invalid argument: unknown second factor "sms"; use none, totp or email"#
        );
        assert!(parse_device_policy("").is_err());
        assert!(parse_mfa_policy("TOTP").is_err());
    }

    #[test]
    fn an_unknown_role_word_is_refused_as_the_server_refused_it() {
        let error = parse_role("root").unwrap_err().to_string();
        assert_eq!(
            error,
            r#"invalid argument: unknown role "root"; use owner, admin, helpdesk or auditor"#
        );
        assert!(parse_role("").is_err());
        assert!(parse_role("Owner").is_err());
    }

    #[test]
    fn an_unspecified_or_unknown_value_is_an_error_that_names_the_field() {
        assert_eq!(
            device_state(0).unwrap_err().to_string(),
            "the server's answer has no device state; a server older than this latchctl sends none, so use a latchctl as old as the server"
        );
        let newer = compliance(42).unwrap_err().to_string();
        assert!(newer.contains("compliance number 42"), "{newer}");
        assert!(newer.contains("as new as the server"), "{newer}");
        assert!(role(-1).is_err());
        assert!(token_status(99).is_err());
        assert_eq!(
            user_status(0).unwrap_err().to_string(),
            "the server's answer has no user status; a server older than this latchctl sends none, so use a latchctl as old as the server"
        );
        for error in [
            command_kind(99),
            command_status(99),
            user_kind(99),
            device_policy(99),
            mfa_policy(99),
            audit_outcome(99),
        ] {
            let error = error.unwrap_err().to_string();
            assert!(error.contains("number 99"), "{error}");
        }
    }

    #[test]
    fn values_print_as_latchctl_always_printed_them() {
        assert_eq!(
            device_state(v1::DeviceState::WipePending.into()).unwrap(),
            "wipe-pending"
        );
        assert_eq!(
            compliance(v1::Compliance::Unknown.into()).unwrap(),
            (None, "unknown")
        );
        assert_eq!(
            compliance(v1::Compliance::Noncompliant.into()).unwrap(),
            (Some(false), "noncompliant")
        );
        assert_eq!(
            token_status(v1::TokenStatus::UsedUp.into()).unwrap(),
            "used up"
        );
        assert_eq!(
            command_kind(v1::CommandKind::Unlock.into()).unwrap(),
            "unlock"
        );
        assert_eq!(
            command_status(v1::CommandStatus::Acknowledged.into()).unwrap(),
            "acknowledged"
        );
        assert_eq!(user_kind(v1::UserKind::User.into()).unwrap(), "user");
        assert_eq!(
            user_kind(v1::UserKind::BreakGlass.into()).unwrap(),
            "break-glass"
        );
        assert_eq!(
            user_status(v1::UserStatus::Suspended.into()).unwrap(),
            "suspended"
        );
        assert_eq!(
            audit_outcome(v1::AuditOutcome::Denied.into()).unwrap(),
            "denied"
        );
    }
}
