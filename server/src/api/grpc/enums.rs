//! The one mapping between the domain's enums and the admin API's protobuf
//! enums, both ways. Every match is exhaustive on the side it reads, so a
//! value added to the domain or to `admin.proto` does not build until it is
//! mapped here.
//!
//! A request's enum arrives as a number. A number this server does not
//! know is refused with INVALID_ARGUMENT naming the field and the values it
//! takes; so is an unspecified value (0) where the request must carry one.
//! Where the API gives unspecified a meaning (a default, or "unchanged"),
//! the reader returns `None` and the handler applies it.

use latchkey_proto::v1;
use tonic::Status;

use crate::domain::admin::{Role, TokenStatus};
use crate::domain::app::{DevicePolicy, MfaPolicy};
use crate::domain::audit::AuditOutcome;
use crate::domain::command::{CommandKind, CommandStatus};
use crate::domain::device::DeviceState;
use crate::domain::policy::Compliance;
use crate::domain::user::{UserKind, UserStatus};

/// A protobuf enum's value as the refusal names it: its name in
/// `admin.proto` and its number.
trait WireName: Copy + Into<i32> {
    fn wire_name(self) -> &'static str;
}

macro_rules! wire_name {
    ($($wire:ty),+ $(,)?) => {
        $(impl WireName for $wire {
            fn wire_name(self) -> &'static str {
                self.as_str_name()
            }
        })+
    };
}

wire_name!(
    v1::UserKind,
    v1::UserStatus,
    v1::DevicePolicy,
    v1::MfaPolicy
);

/// "A (1), B (2) or C (3)".
fn listed<E: WireName>(allowed: &[E]) -> String {
    let names: Vec<String> = allowed
        .iter()
        .map(|value| format!("{} ({})", value.wire_name(), (*value).into()))
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// The refusal of a number `field` has no value for.
fn unknown<E: WireName>(field: &str, number: i32, allowed: &[E]) -> Status {
    Status::invalid_argument(format!(
        "{field} has the unknown value {number}; use {}",
        listed(allowed)
    ))
}

/// The refusal of an unspecified value where `field` must have one.
fn missing<E: WireName>(field: &str, allowed: &[E]) -> Status {
    Status::invalid_argument(format!("{field} is required; use {}", listed(allowed)))
}

pub fn role_msg(role: Role) -> v1::Role {
    match role {
        Role::Owner => v1::Role::Owner,
        Role::Admin => v1::Role::Admin,
        Role::Helpdesk => v1::Role::Helpdesk,
        Role::Auditor => v1::Role::Auditor,
    }
}

/// The role an `AddAdminRequest` names, in the words `Admins::add_admin`
/// reads. A value this server does not know becomes words no role has, so
/// the core refuses it where it refuses any unknown role: after checking
/// that the caller may add admins at all (and auditing a caller who may
/// not). An unspecified role is the role as text, which a latchctl older
/// than the enum sends instead (the empty word when neither is given).
pub fn requested_role(value: i32, text: &str) -> String {
    match v1::Role::try_from(value) {
        Ok(v1::Role::Owner) => Role::Owner.as_str().to_owned(),
        Ok(v1::Role::Admin) => Role::Admin.as_str().to_owned(),
        Ok(v1::Role::Helpdesk) => Role::Helpdesk.as_str().to_owned(),
        Ok(v1::Role::Auditor) => Role::Auditor.as_str().to_owned(),
        Ok(v1::Role::Unspecified) => text.to_owned(),
        Err(_) => format!("role number {value}"),
    }
}

pub fn device_state_msg(state: DeviceState) -> v1::DeviceState {
    match state {
        DeviceState::Active => v1::DeviceState::Active,
        DeviceState::Locked => v1::DeviceState::Locked,
        DeviceState::WipePending => v1::DeviceState::WipePending,
        DeviceState::Retired => v1::DeviceState::Retired,
        DeviceState::Wiped => v1::DeviceState::Wiped,
        DeviceState::AwaitingEnrollment => v1::DeviceState::AwaitingEnrollment,
        DeviceState::Lost => v1::DeviceState::Lost,
    }
}

pub fn compliance_msg(compliance: &Compliance) -> v1::Compliance {
    match compliance {
        Compliance::Compliant => v1::Compliance::Compliant,
        Compliance::NonCompliant(_) => v1::Compliance::Noncompliant,
        Compliance::Unknown => v1::Compliance::Unknown,
    }
}

pub fn token_status_msg(status: TokenStatus) -> v1::TokenStatus {
    match status {
        TokenStatus::Usable => v1::TokenStatus::Usable,
        TokenStatus::Revoked => v1::TokenStatus::Revoked,
        TokenStatus::Expired => v1::TokenStatus::Expired,
        TokenStatus::UsedUp => v1::TokenStatus::UsedUp,
    }
}

pub fn command_kind_msg(kind: CommandKind) -> v1::CommandKind {
    match kind {
        CommandKind::Lock => v1::CommandKind::Lock,
        CommandKind::Unlock => v1::CommandKind::Unlock,
        CommandKind::Wipe => v1::CommandKind::Wipe,
        CommandKind::LostMode => v1::CommandKind::LostMode,
        CommandKind::Inventory => v1::CommandKind::Inventory,
        CommandKind::SecurityInfo => v1::CommandKind::SecurityInfo,
        CommandKind::InstallProfile => v1::CommandKind::InstallProfile,
        CommandKind::ReleaseSetup => v1::CommandKind::ReleaseSetup,
        CommandKind::EndLostMode => v1::CommandKind::EndLostMode,
        CommandKind::Locate => v1::CommandKind::Locate,
        CommandKind::Restart => v1::CommandKind::Restart,
        CommandKind::ListProfiles => v1::CommandKind::ListProfiles,
        CommandKind::RemoveProfile => v1::CommandKind::RemoveProfile,
    }
}

pub fn command_status_msg(status: CommandStatus) -> v1::CommandStatus {
    match status {
        CommandStatus::Pending => v1::CommandStatus::Pending,
        CommandStatus::Sent => v1::CommandStatus::Sent,
        CommandStatus::Acknowledged => v1::CommandStatus::Acknowledged,
        CommandStatus::Failed => v1::CommandStatus::Failed,
    }
}

pub fn audit_outcome_msg(outcome: AuditOutcome) -> v1::AuditOutcome {
    match outcome {
        AuditOutcome::Ok => v1::AuditOutcome::Ok,
        AuditOutcome::Denied => v1::AuditOutcome::Denied,
        AuditOutcome::Failed => v1::AuditOutcome::Failed,
    }
}

pub fn user_kind_msg(kind: UserKind) -> v1::UserKind {
    match kind {
        UserKind::Employee => v1::UserKind::User,
        UserKind::BreakGlass => v1::UserKind::BreakGlass,
    }
}

/// A request's user kind; `None` when unspecified.
pub fn user_kind(field: &str, number: i32) -> Result<Option<UserKind>, Status> {
    match v1::UserKind::try_from(number) {
        Ok(v1::UserKind::Unspecified) => Ok(None),
        Ok(v1::UserKind::User) => Ok(Some(UserKind::Employee)),
        Ok(v1::UserKind::BreakGlass) => Ok(Some(UserKind::BreakGlass)),
        Err(_) => Err(unknown(field, number, USER_KINDS)),
    }
}

const USER_KINDS: &[v1::UserKind] = &[v1::UserKind::User, v1::UserKind::BreakGlass];

pub fn user_status_msg(status: UserStatus) -> v1::UserStatus {
    match status {
        UserStatus::Active => v1::UserStatus::Active,
        UserStatus::Suspended => v1::UserStatus::Suspended,
        UserStatus::Deleted => v1::UserStatus::Deleted,
    }
}

/// A request's user status, which it must carry.
pub fn required_user_status(field: &str, number: i32) -> Result<UserStatus, Status> {
    match v1::UserStatus::try_from(number) {
        Ok(v1::UserStatus::Active) => Ok(UserStatus::Active),
        Ok(v1::UserStatus::Suspended) => Ok(UserStatus::Suspended),
        Ok(v1::UserStatus::Deleted) => Ok(UserStatus::Deleted),
        Ok(v1::UserStatus::Unspecified) => Err(missing(field, USER_STATUSES)),
        Err(_) => Err(unknown(field, number, USER_STATUSES)),
    }
}

const USER_STATUSES: &[v1::UserStatus] = &[
    v1::UserStatus::Active,
    v1::UserStatus::Suspended,
    v1::UserStatus::Deleted,
];

pub fn device_policy_msg(policy: DevicePolicy) -> v1::DevicePolicy {
    match policy {
        DevicePolicy::None => v1::DevicePolicy::None,
        DevicePolicy::Confirm => v1::DevicePolicy::Confirm,
        DevicePolicy::Bound => v1::DevicePolicy::Bound,
    }
}

/// A request's device policy; `None` when unspecified.
pub fn device_policy(field: &str, number: i32) -> Result<Option<DevicePolicy>, Status> {
    match v1::DevicePolicy::try_from(number) {
        Ok(v1::DevicePolicy::Unspecified) => Ok(None),
        Ok(v1::DevicePolicy::None) => Ok(Some(DevicePolicy::None)),
        Ok(v1::DevicePolicy::Confirm) => Ok(Some(DevicePolicy::Confirm)),
        Ok(v1::DevicePolicy::Bound) => Ok(Some(DevicePolicy::Bound)),
        Err(_) => Err(unknown(field, number, DEVICE_POLICIES)),
    }
}

const DEVICE_POLICIES: &[v1::DevicePolicy] = &[
    v1::DevicePolicy::None,
    v1::DevicePolicy::Confirm,
    v1::DevicePolicy::Bound,
];

pub fn mfa_policy_msg(policy: MfaPolicy) -> v1::MfaPolicy {
    match policy {
        MfaPolicy::None => v1::MfaPolicy::None,
        MfaPolicy::Totp => v1::MfaPolicy::Totp,
        MfaPolicy::Email => v1::MfaPolicy::Email,
    }
}

/// A request's second-factor policy; `None` when unspecified.
pub fn mfa_policy(field: &str, number: i32) -> Result<Option<MfaPolicy>, Status> {
    match v1::MfaPolicy::try_from(number) {
        Ok(v1::MfaPolicy::Unspecified) => Ok(None),
        Ok(v1::MfaPolicy::None) => Ok(Some(MfaPolicy::None)),
        Ok(v1::MfaPolicy::Totp) => Ok(Some(MfaPolicy::Totp)),
        Ok(v1::MfaPolicy::Email) => Ok(Some(MfaPolicy::Email)),
        Err(_) => Err(unknown(field, number, MFA_POLICIES)),
    }
}

const MFA_POLICIES: &[v1::MfaPolicy] = &[
    v1::MfaPolicy::None,
    v1::MfaPolicy::Totp,
    v1::MfaPolicy::Email,
];

#[cfg(test)]
mod tests {
    use latchkey_proto::v1;

    use super::*;

    #[test]
    fn a_role_this_server_does_not_know_is_no_role_the_core_accepts() {
        for value in [0, 5, 99, -1] {
            assert_eq!(Role::parse(&requested_role(value, "")), None, "{value}");
        }
        for role in [Role::Owner, Role::Admin, Role::Helpdesk, Role::Auditor] {
            let value: i32 = role_msg(role).into();
            assert_eq!(Role::parse(&requested_role(value, "")), Some(role));
            // The enum wins over the text.
            assert_eq!(Role::parse(&requested_role(value, "auditor")), Some(role));
        }
        assert_eq!(requested_role(v1::Role::Unspecified.into(), ""), "");
        // An older latchctl's role as text, read only without the enum.
        assert_eq!(
            Role::parse(&requested_role(v1::Role::Unspecified.into(), "helpdesk")),
            Some(Role::Helpdesk)
        );
        assert_eq!(requested_role(99, "owner"), "role number 99");
    }

    #[test]
    fn every_value_a_request_may_name_reads_back_as_the_value_sent() {
        for kind in [UserKind::Employee, UserKind::BreakGlass] {
            let number = user_kind_msg(kind).into();
            assert_eq!(user_kind("kind", number).ok(), Some(Some(kind)));
        }
        for status in [
            UserStatus::Active,
            UserStatus::Suspended,
            UserStatus::Deleted,
        ] {
            let number = user_status_msg(status).into();
            assert_eq!(required_user_status("status", number).ok(), Some(status));
        }
        for policy in [
            DevicePolicy::None,
            DevicePolicy::Confirm,
            DevicePolicy::Bound,
        ] {
            let number = device_policy_msg(policy).into();
            assert_eq!(device_policy("device", number).ok(), Some(Some(policy)));
        }
        for policy in [MfaPolicy::None, MfaPolicy::Totp, MfaPolicy::Email] {
            let number = mfa_policy_msg(policy).into();
            assert_eq!(mfa_policy("mfa", number).ok(), Some(Some(policy)));
        }
    }

    #[test]
    fn the_allowed_lists_are_every_known_value_but_unspecified() {
        fn known<E: WireName>(list: &[E], read: impl Fn(i32) -> bool) {
            let listed: Vec<i32> = list.iter().map(|v| (*v).into()).collect();
            let readable: Vec<i32> = (1..64).filter(|n| read(*n)).collect();
            assert_eq!(listed, readable);
        }
        known(USER_KINDS, |n| v1::UserKind::try_from(n).is_ok());
        known(USER_STATUSES, |n| v1::UserStatus::try_from(n).is_ok());
        known(DEVICE_POLICIES, |n| v1::DevicePolicy::try_from(n).is_ok());
        known(MFA_POLICIES, |n| v1::MfaPolicy::try_from(n).is_ok());
    }

    #[test]
    fn an_unspecified_value_means_the_request_left_it_out() {
        assert_eq!(user_kind("kind", 0).ok(), Some(None));
        assert_eq!(device_policy("device", 0).ok(), Some(None));
        assert_eq!(mfa_policy("mfa", 0).ok(), Some(None));
    }

    #[test]
    fn a_refusal_names_the_field_and_the_values_it_takes() {
        let unknown = user_kind("AddUserRequest.kind", 7).unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            unknown.message(),
            "AddUserRequest.kind has the unknown value 7; use USER_KIND_USER (1) or USER_KIND_BREAK_GLASS (2)"
        );
        let missing = required_user_status("SetUserStatusRequest.status", 0).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            missing.message(),
            "SetUserStatusRequest.status is required; use USER_STATUS_ACTIVE (1), USER_STATUS_SUSPENDED (2) or USER_STATUS_DELETED (3)"
        );
        let negative = mfa_policy("UpdateAppRequest.mfa", -1).unwrap_err();
        assert!(
            negative.message().starts_with(
                "UpdateAppRequest.mfa has the unknown value -1; use MFA_POLICY_NONE (1)"
            ),
            "{}",
            negative.message()
        );
    }
}
