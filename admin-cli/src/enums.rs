//! The words latchctl prints for the server's enum values (roles, device
//! states, compliance, token statuses), and the role words it reads.
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
    }
}
