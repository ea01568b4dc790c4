//! The one mapping between the domain's enums and the admin API's protobuf
//! enums. Every match is exhaustive on the side it reads, so a value added
//! to the domain or to `admin.proto` does not build until it is mapped
//! here.

use latchkey_proto::v1;

use crate::domain::admin::{Role, TokenStatus};
use crate::domain::device::DeviceState;
use crate::domain::policy::Compliance;

pub fn role_msg(role: Role) -> v1::Role {
    match role {
        Role::Owner => v1::Role::Owner,
        Role::Admin => v1::Role::Admin,
        Role::Helpdesk => v1::Role::Helpdesk,
        Role::Auditor => v1::Role::Auditor,
    }
}

/// The role an `AddAdminRequest` names, in the words `Core::add_admin`
/// reads. A value this server does not know becomes words no role has, so
/// the core refuses it where it refuses any unknown role: after checking
/// that the caller may add admins at all (and auditing a caller who may
/// not). An unspecified role is the empty word, as an absent one was.
pub fn requested_role(value: i32) -> String {
    match v1::Role::try_from(value) {
        Ok(v1::Role::Owner) => Role::Owner.as_str().to_owned(),
        Ok(v1::Role::Admin) => Role::Admin.as_str().to_owned(),
        Ok(v1::Role::Helpdesk) => Role::Helpdesk.as_str().to_owned(),
        Ok(v1::Role::Auditor) => Role::Auditor.as_str().to_owned(),
        Ok(v1::Role::Unspecified) => String::new(),
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

#[cfg(test)]
mod tests {
    use latchkey_proto::v1;

    use super::*;

    #[test]
    fn a_role_this_server_does_not_know_is_no_role_the_core_accepts() {
        for value in [0, 5, 99, -1] {
            assert_eq!(Role::parse(&requested_role(value)), None, "{value}");
        }
        for role in [Role::Owner, Role::Admin, Role::Helpdesk, Role::Auditor] {
            let value: i32 = role_msg(role).into();
            assert_eq!(Role::parse(&requested_role(value)), Some(role));
        }
        assert_eq!(requested_role(v1::Role::Unspecified.into()), "");
    }
}
