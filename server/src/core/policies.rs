//! The policies service: policies set, assigned to groups and devices, and
//! pushed to the agents they now apply to; and a device's compliance with
//! the policy in force for it, which the admin views, the users service and
//! sign-in read.

use chrono::{DateTime, Utc};
use tracing::warn;

use super::auth::{AuthenticatedAdmin, Permission};
use super::{Audit, CoreError, DeviceView, parse_device_id, validate_label, validate_name};
use crate::domain::audit::{AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::device::{Channel, Device, DeviceState};
use crate::domain::ids::DeviceId;
use crate::domain::policy::{self, StoredPolicy};
use crate::push::Push;
use crate::push::port::Ports;
use crate::store::Store;

/// The device with the policy in force for it among `policies`, and its
/// compliance with it.
pub(crate) fn view(device: Device, policies: &[StoredPolicy], now: DateTime<Utc>) -> DeviceView {
    let effective =
        policy::effective_policy(&device, policies).map(|p| (p.name.as_str(), p.document.as_str()));
    view_under(device, effective, now)
}

/// The device's compliance with the policy in force for it (`name`,
/// `document`), or with none.
pub(crate) fn view_under(
    device: Device,
    policy: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> DeviceView {
    let rules = policy::rules_of(policy.map(|(_, document)| document));
    let compliance = policy::evaluate(&device, &rules, now);
    DeviceView {
        policy: policy.map(|(name, _)| name.to_owned()),
        device,
        compliance,
    }
}

/// Cheap to clone: devices, users and sign-in hold one.
#[derive(Clone)]
pub struct Policies {
    pub(super) store: Store,
    pub(super) audit: Audit,
    /// Sends an agent its policy over MQTT.
    pub(super) push: Push,
    /// Wakes an Apple device whose policy profile changed.
    pub(super) ports: Ports,
    /// Where Apple policy profiles are rendered for.
    pub(super) apple: super::apple::AppleSettings,
}

impl Policies {
    /// The device as an admin sees it: its policy and compliance now.
    pub(crate) async fn device_view(
        &self,
        id: &DeviceId,
        now: DateTime<Utc>,
    ) -> Result<DeviceView, CoreError> {
        let device = self
            .store
            .device(id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("device {id}")))?;
        let policies = self.store.all_policies().await?;
        Ok(view(device, &policies, now))
    }

    /// The device's compliance now, for checks outside the admin API.
    pub async fn compliance_of(
        &self,
        id: &DeviceId,
        now: DateTime<Utc>,
    ) -> Result<DeviceView, CoreError> {
        self.device_view(id, now).await
    }

    pub async fn set_policy(
        &self,
        caller: &AuthenticatedAdmin,
        name: &str,
        document: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredPolicy, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManagePolicies,
                AdminRequest::ChangePolicies,
                name,
                now,
            )
            .await?;
        let name = validate_name("policy", name)?;
        policy::parse_policy(document).map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
        let tx = self.store.begin().await?;
        let version = tx.upsert_policy(&name, document, now).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::PolicySet,
            target: name.clone(),
            outcome: AuditOutcome::Ok,
            detail: format!("version {version}"),
        })
        .await?;
        tx.commit().await?;
        self.push_policy_to_affected(&name, now).await?;
        self.store
            .policy(&name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("policy {name}")))
    }

    pub async fn assign_policy(
        &self,
        caller: &AuthenticatedAdmin,
        name: &str,
        group: Option<&str>,
        device: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<StoredPolicy, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManagePolicies,
                AdminRequest::AssignPolicies,
                name,
                now,
            )
            .await?;
        if self.store.policy(name).await?.is_none() {
            return Err(CoreError::NotFound(format!("policy {name}")));
        }
        let (kind, target) = match (group, device) {
            (Some(g), None) => ("group", validate_label("group", g)?),
            (None, Some(d)) => {
                let id = parse_device_id(d)?;
                if self.store.device(&id).await?.is_none() {
                    return Err(CoreError::NotFound(format!("device {d}")));
                }
                ("device", id.to_string())
            }
            _ => {
                return Err(CoreError::InvalidArgument(
                    "assign a policy to exactly one group or one device".into(),
                ));
            }
        };
        let tx = self.store.begin().await?;
        tx.assign_policy(name, kind, &target).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::PolicyAssign,
            target: name.to_owned(),
            outcome: AuditOutcome::Ok,
            detail: format!("{kind} {target}"),
        })
        .await?;
        tx.commit().await?;
        self.push_policy_to_affected(name, now).await?;
        self.store
            .policy(name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("policy {name}")))
    }

    pub async fn get_policy(
        &self,
        caller: &AuthenticatedAdmin,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredPolicy, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ReadPolicies,
                AdminRequest::ReadPolicies,
                name,
                now,
            )
            .await?;
        self.store
            .policy(name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("policy {name}")))
    }

    pub(super) async fn push_policy_to_affected(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let policies = self.store.all_policies().await?;
        for device in self.store.list_devices().await? {
            if device.state.is_final() {
                continue;
            }
            let effective = policy::effective_policy(&device, &policies);
            let Some(effective) = effective.filter(|p| p.name == name) else {
                continue;
            };
            if device.channel == Channel::apple() {
                self.bring_apple_profile_to(&device, Some(effective), now)
                    .await?;
            } else {
                self.send_policy(&device.id, Some(effective), now);
            }
        }
        Ok(())
    }

    /// Brings an Apple device's policy profile to the policy in force
    /// (`effective`), which it gets as a command it fetches: an install,
    /// a removal, or nothing when it already has what the policy asks.
    pub(crate) async fn bring_apple_profile_to(
        &self,
        device: &Device,
        effective: Option<&StoredPolicy>,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        if device.state.is_final() || device.state == DeviceState::AwaitingEnrollment {
            return Ok(());
        }
        let history = self.store.profile_commands(&device.id).await?;
        let Some(command) = super::apple::policy::policy_profile_command(
            &self.apple,
            device,
            effective.map(|p| (p.name.as_str(), p.document.as_str())),
            &history,
            now,
        ) else {
            return Ok(());
        };
        self.store.insert_command(&command).await?;
        super::commands::offer_work_through(
            &self.store,
            &self.ports,
            &device.channel,
            &device.id,
            std::slice::from_ref(&command),
            now,
        )
        .await;
        Ok(())
    }

    pub(crate) fn send_policy(
        &self,
        device_id: &DeviceId,
        stored: Option<&StoredPolicy>,
        _now: DateTime<Utc>,
    ) {
        let document = stored
            .and_then(|p| policy::parse_policy(&p.document).ok())
            .unwrap_or_default();
        let name = stored.map(|p| p.name.as_str()).unwrap_or("");
        let version = stored.map_or(0, |p| p.version);
        if let Err(e) = self
            .push
            .send_policy(device_id, name, version, document.posture_interval)
        {
            warn!(device = %device_id, error = %e, "policy not pushed; the agent gets it at its next hello");
        }
    }
}
