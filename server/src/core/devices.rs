//! The devices service: devices as admins see them (with their policy and
//! compliance now), the end of a device (retire, wipe), what agents report,
//! and, in `commands.rs`, the command outbox and its delivery.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::auth::{self, AuthenticatedAdmin, AuthenticatedDevice, Permission};
use super::enrollment::Crl;
use super::policies::{self, Policies};
use super::{
    AgentEvent, Audit, CoreError, DeviceDetails, DeviceView, UnlockPin, existing_device,
    parse_device_id,
};
use crate::ca::CertificateAuthority;
use crate::domain::apple::enrollment::IdentityStatus;
use crate::domain::audit::{Actor, AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::device::{Channel, DeviceState};
use crate::domain::ids::DeviceId;
use crate::domain::policy;
use crate::push::Push;
use crate::push::port::Ports;
use crate::store::{Store, Tx};

/// Devices and their commands. Cheap to clone: the Apple service holds
/// one to acknowledge its devices' commands.
#[derive(Clone)]
pub struct Devices {
    pub(super) store: Store,
    pub(super) audit: Audit,
    /// The agents' MQTT sessions: closed when a device ends.
    pub(super) push: Push,
    /// Every channel that carries commands to devices, by name.
    pub(super) ports: Ports,
    pub(super) policies: Policies,
    pub(super) crl: Crl,
    /// Seals the PIN of a Mac's lock.
    pub(super) ca: Arc<CertificateAuthority>,
}

impl Devices {
    pub async fn list_devices(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeviceView>, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ReadDevices,
                AdminRequest::ListDevices,
                "",
                now,
            )
            .await?;
        let policies = self.store.all_policies().await?;
        Ok(self
            .store
            .list_devices()
            .await?
            .into_iter()
            .map(|d| policies::view(d, &policies, now))
            .collect())
    }

    pub async fn get_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeviceDetails, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ReadDevices,
                AdminRequest::ShowDevices,
                id,
                now,
            )
            .await?;
        let id = parse_device_id(id)?;
        let view = self.policies.device_view(&id, now).await?;
        if view.device.channel != Channel::apple() {
            return Ok(DeviceDetails {
                view,
                apple: None,
                unlock_pin: None,
                policy_gaps: Vec::new(),
                apple_identity: None,
            });
        }
        let apple = self.store.apple_enrollment(&id).await?;
        // The latest PIN set: a Mac's user types it to unlock or to set the
        // erased Mac up again, and the helpdesk reads it to them.
        let unlock_pin = self
            .store
            .list_commands(&id)
            .await?
            .into_iter()
            .rev()
            .find(|c| c.args.pin_sealed.is_some())
            .and_then(|c| {
                Some(UnlockPin {
                    pin: self.command_pin(caller, &c)?,
                    command: c.id,
                    set_at: c.created_at,
                })
            });
        if let Some(pin) = &unlock_pin {
            // The PIN unlocks a lost Mac: who read it is on record.
            self.audit
                .record(AuditEntry {
                    at: now,
                    actor: caller.actor(),
                    action: AuditAction::DevicePinRead,
                    target: id.to_string(),
                    outcome: AuditOutcome::Ok,
                    detail: format!("the PIN of command {}", pin.command),
                })
                .await?;
        }
        let policies = self.store.all_policies().await?;
        let policy_gaps = policy::effective_policy(&view.device, &policies)
            .and_then(|p| {
                super::apple::policy::rendered_policy(
                    &self.policies.apple,
                    &view.device,
                    &p.name,
                    &p.document,
                )
            })
            .map(|rendered| rendered.gaps)
            .unwrap_or_default();
        // The identity bound is the device's valid certificate other than
        // the one its open renewal got issued and has not used yet.
        let renewal = self.store.open_identity_renewal(&id).await?;
        let unused = renewal
            .as_ref()
            .and_then(|r| r.issued.as_ref())
            .map(|i| i.serial_hex.as_str());
        let apple_identity = IdentityStatus {
            expires_at: self.store.identity_expiry(&id, unused).await?,
            last_renewal: self.store.last_closed_identity_renewal(&id).await?,
            renewal,
        };
        Ok(DeviceDetails {
            view,
            apple,
            unlock_pin,
            policy_gaps,
            apple_identity: Some(apple_identity),
        })
    }

    /// Ends a device's membership: certificates revoked, sessions closed,
    /// open commands failed.
    pub async fn retire_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeviceView, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageDevices,
                AdminRequest::RetireDevices,
                id,
                now,
            )
            .await?;
        let (device_id, device) = existing_device(&self.store, id).await?;
        if device.state.is_final() {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} is already {}",
                device.state.as_str()
            )));
        }
        let tx = self.store.begin().await?;
        Self::end_device_in(
            &tx,
            &device_id,
            DeviceState::Retired,
            caller.actor(),
            AuditAction::DeviceRetire,
            now,
        )
        .await?;
        tx.commit().await?;
        self.after_device_ended(&device_id, now).await;
        self.policies.device_view(&device_id, now).await
    }

    /// Ends a device inside `tx`: final state, certificates revoked, open
    /// commands failed, audited. The caller commits, then calls
    /// [`Devices::after_device_ended`].
    pub(super) async fn end_device_in(
        tx: &Tx,
        device_id: &DeviceId,
        state: DeviceState,
        actor: Actor,
        action: AuditAction,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let live = [
            DeviceState::Active,
            DeviceState::Locked,
            DeviceState::Lost,
            DeviceState::WipePending,
            DeviceState::AwaitingEnrollment,
        ];
        if !tx.change_device_state(device_id, &live, state).await? {
            return Err(CoreError::FailedPrecondition(format!(
                "device {device_id} is already retired or wiped"
            )));
        }
        let revoked = tx.revoke_device_certificates(device_id, now).await?;
        tx.fail_open_commands(device_id, &format!("device {}", state.as_str()), now)
            .await?;
        tx.end_device_sso(device_id, &format!("device {}", state.as_str()), now)
            .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor,
            action,
            target: device_id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!("state {}; {revoked} certificate(s) revoked", state.as_str()),
        })
        .await?;
        Ok(())
    }

    /// Closes the device's sessions and republishes the CRL.
    pub(super) async fn after_device_ended(&self, device_id: &DeviceId, now: DateTime<Utc>) {
        self.push.disconnect_device(device_id);
        self.crl.publish(now).await;
    }

    pub async fn authenticate_broker_device(
        &self,
        device_id: &str,
    ) -> Result<AuthenticatedDevice, CoreError> {
        Ok(auth::authenticate_broker_device(&self.store, device_id).await?)
    }

    pub async fn handle_agent_event(
        &self,
        device: &AuthenticatedDevice,
        event: AgentEvent,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        match event {
            AgentEvent::Hello { policy_version } => {
                self.store.touch_device(device.id(), now).await?;
                let open = self.store.open_commands(device.id()).await?;
                let policies = self.store.all_policies().await?;
                if let Some(current) = self.store.device(device.id()).await? {
                    self.offer_work(&current.channel, device.id(), &open, now)
                        .await;
                    let effective = policy::effective_policy(&current, &policies);
                    if effective.map_or(0, |p| p.version) != policy_version || effective.is_none() {
                        self.policies.send_policy(device.id(), effective, now);
                    }
                }
                Ok(())
            }
            AgentEvent::Posture(posture) => {
                // The verdict is written with the posture it was reached on.
                let Some((mut reported, policy)) =
                    self.store.device_with_policy(device.id()).await?
                else {
                    return Err(CoreError::NotFound(format!("device {}", device.id())));
                };
                reported.posture = Some(posture.clone());
                reported.posture_at = Some(now);
                let document = policy.as_ref().map_or("", |p| p.document.as_str());
                let verdict = policy::verdict(&reported, document);
                self.store
                    .set_posture(device.id(), &posture, &verdict, now)
                    .await?;
                Ok(())
            }
            AgentEvent::Ack {
                command_id,
                success,
                result,
            } => {
                self.acknowledge_command(device, &command_id, success, &result, now)
                    .await
            }
        }
    }
}
