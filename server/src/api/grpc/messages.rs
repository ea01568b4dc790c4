//! The admin API's messages built from the domain's types: admins,
//! tokens, devices and their commands, policies, audit entries, users,
//! groups and apps, times as Unix seconds. One function per message, used
//! by every call that answers with it.

use chrono::{DateTime, Utc};
use latchkey_proto::v1;

use super::enums::{
    audit_outcome_msg, command_kind_msg, command_status_msg, compliance_msg, device_policy_msg,
    device_state_msg, mfa_policy_msg, role_msg, token_status_msg, user_kind_msg, user_status_msg,
};
use crate::core::apps::ClientSecret;
use crate::core::{DeviceDetails, DeviceView};
use crate::domain::admin::{Admin, EnrollmentToken};
use crate::domain::app::App;
use crate::domain::audit::AuditEvent;
use crate::domain::command::Command;
use crate::domain::policy::StoredPolicy;
use crate::domain::user::{Group, User};

pub(super) fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

pub(super) fn admin_msg(a: Admin) -> v1::Admin {
    v1::Admin {
        id: a.id.to_string(),
        email: a.email,
        role: role_msg(a.role).into(),
        role_text: a.role.as_str().to_owned(),
        created_at: unix(a.created_at),
    }
}

/// A token as it stands at `now`, the time of the call.
pub(super) fn token_msg(t: EnrollmentToken, now: DateTime<Utc>) -> v1::EnrollmentToken {
    v1::EnrollmentToken {
        status: token_status_msg(t.status(now)).into(),
        id: t.id.to_string(),
        user: t.user.unwrap_or_default(),
        group: t.group.unwrap_or_default(),
        expires_at: unix(t.expires_at),
        uses_allowed: t.uses_allowed,
        uses_count: t.uses_count,
        revoked: t.revoked_at.is_some(),
        created_at: unix(t.created_at),
        created_by: t.created_by,
    }
}

pub(super) fn device_msg(view: DeviceView) -> v1::Device {
    let DeviceView {
        device: d,
        policy,
        compliance,
    } = view;
    let posture = d.posture.as_ref();
    let check = |f: fn(&crate::domain::device::Posture) -> crate::domain::device::CheckState| {
        posture
            .map(|p| f(p).as_str().to_owned())
            .unwrap_or_default()
    };
    v1::Device {
        id: d.id.to_string(),
        hostname: d.hostname.clone(),
        platform: d.platform.clone(),
        os_version: d.os_version.clone(),
        state: device_state_msg(d.state).into(),
        state_text: d.state.as_str().to_owned(),
        user: d.user.clone().unwrap_or_default(),
        compliance: compliance_msg(&compliance).into(),
        compliance_text: compliance.as_str().to_owned(),
        failed_checks: compliance
            .failed_checks()
            .iter()
            .map(|f| v1::FailedCheck {
                check: f.check.to_owned(),
                detail: f.detail.clone(),
            })
            .collect(),
        last_seen: d.last_seen.map_or(0, unix),
        enrolled_at: unix(d.enrolled_at),
        serial: d.serial.clone(),
        model: d.model.clone(),
        machine_id: d.machine_id.clone(),
        group: d.group.clone().unwrap_or_default(),
        policy: policy.unwrap_or_default(),
        certificate_expires_at: d.certificate_expires_at.map_or(0, unix),
        posture_disk_encryption: check(|p| p.disk_encryption),
        posture_screen_lock: check(|p| p.screen_lock),
        posture_firewall: check(|p| p.firewall),
        posture_at: d.posture_at.map_or(0, unix),
        apple: None,
        policy_gaps: Vec::new(),
        apple_identity: None,
    }
}

/// A device as `device show` presents it.
pub(super) fn device_details_msg(details: DeviceDetails) -> v1::Device {
    let DeviceDetails {
        view,
        apple,
        unlock_pin,
        policy_gaps,
        apple_identity,
    } = details;
    let mut device = device_msg(view);
    device.apple = apple.map(|a| v1::AppleDeviceFacts {
        supervised: a.supervised,
        last_check_in: a.last_seen_at.map_or(0, unix),
        last_push_at: a.last_push_at.map_or(0, unix),
        last_push_result: a.last_push_result.unwrap_or_default(),
        push_token_invalid: a.push_token_invalid_at.is_some(),
        push_enabled: a.enabled,
        awaiting_configuration: a.awaiting_configuration,
        topic: a.topic.unwrap_or_default(),
        unlock_pin: unlock_pin
            .as_ref()
            .map(|p| p.pin.clone())
            .unwrap_or_default(),
        unlock_pin_set_at: unlock_pin.as_ref().map_or(0, |p| unix(p.set_at)),
    });
    device.apple_identity = apple_identity.map(|i| {
        let renewal = i.renewal.as_ref();
        let last = i.last_renewal.as_ref().and_then(|r| r.closed);
        v1::AppleIdentity {
            expires_at: i.expires_at.map_or(0, unix),
            renewal_started_at: renewal.map_or(0, |r| unix(r.started_at)),
            renewal_expires_at: renewal.map_or(0, |r| unix(r.expires_at)),
            renewal_certificate_issued: renewal.is_some_and(|r| r.issued.is_some()),
            last_renewal_at: last.map_or(0, |(at, _)| unix(at)),
            last_renewal_outcome: last
                .map(|(_, outcome)| outcome.as_str().to_owned())
                .unwrap_or_default(),
        }
    });
    device.policy_gaps = policy_gaps
        .into_iter()
        .map(|g| v1::PolicyGap {
            rule: g.rule.to_owned(),
            reason: g.reason.to_owned(),
            reported_by: g.reported_by.unwrap_or_default().to_owned(),
        })
        .collect();
    device
}

pub(super) fn command_msg(c: Command) -> v1::DeviceCommand {
    v1::DeviceCommand {
        id: c.id.to_string(),
        device_id: c.device_id.to_string(),
        kind: command_kind_msg(c.kind).into(),
        status: command_status_msg(c.status).into(),
        result: c.result.unwrap_or_default(),
        created_at: unix(c.created_at),
        acknowledged_at: c.acked_at.map_or(0, unix),
        created_by: c.created_by,
        pin: String::new(),
    }
}

pub(super) fn policy_msg(p: StoredPolicy) -> v1::Policy {
    v1::Policy {
        name: p.name,
        document: p.document,
        version: p.version,
        updated_at: unix(p.updated_at),
        groups: p.groups,
        devices: p.devices,
    }
}

pub(super) fn audit_msg(e: AuditEvent) -> v1::AuditEvent {
    v1::AuditEvent {
        id: e.id,
        at: unix(e.at),
        actor: e.actor,
        action: e.action,
        target: e.target,
        outcome: audit_outcome_msg(e.outcome).into(),
        detail: e.detail,
    }
}

pub(super) fn user_msg(u: User) -> v1::User {
    v1::User {
        id: u.id.to_string(),
        email: u.email,
        name: u.name,
        kind: user_kind_msg(u.kind).into(),
        status: user_status_msg(u.status).into(),
        groups: u.groups,
        created_at: unix(u.created_at),
        updated_at: unix(u.updated_at),
    }
}

pub(super) fn group_msg(g: Group) -> v1::Group {
    v1::Group {
        name: g.name,
        members: g.members,
        created_at: unix(g.created_at),
    }
}

/// A user's new temporary password, shown once.
pub(super) fn temporary_password_msg(
    user: crate::domain::user::User,
    temporary: &crate::core::users::TemporaryPassword,
) -> v1::ResetPasswordResponse {
    v1::ResetPasswordResponse {
        user: Some(user_msg(user)),
        temporary_password: temporary.password.expose().to_owned(),
        expires_at: unix(temporary.expires_at),
    }
}

pub(super) fn app_msg(a: App) -> v1::App {
    v1::App {
        name: a.name,
        client_id: a.client_id.to_string(),
        public: a.public,
        redirect_uris: a.redirect_uris,
        device: device_policy_msg(a.device_policy).into(),
        mfa: mfa_policy_msg(a.mfa_policy).into(),
        allowed_networks: a.allowed_networks.iter().map(ToString::to_string).collect(),
        post_logout_redirect_uris: a.post_logout_redirect_uris,
        offline_access: a.offline_access,
        refresh_lifetime_seconds: a.refresh_lifetime.num_seconds(),
        created_at: unix(a.created_at),
        updated_at: unix(a.updated_at),
    }
}

pub(super) fn app_with_secret(app: App, secret: Option<ClientSecret>) -> v1::AppWithSecret {
    v1::AppWithSecret {
        app: Some(app_msg(app)),
        client_secret: secret.map(|s| s.0).unwrap_or_default(),
    }
}

pub(super) fn non_empty(s: String) -> Option<String> {
    let s = s.trim().to_owned();
    (!s.is_empty()).then_some(s)
}
