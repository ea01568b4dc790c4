//! An enrolled Apple device talking to the server: who it is (its identity
//! certificate, proved by TLS or by the `Mdm-Signature` over the body),
//! and its check-in messages (Apple, "Check-in"; `mdm/checkin/*.yaml`).
//! The command channel, where it reports on the last command and fetches
//! the next, is `command_channel.rs`.
//!
//! Rules that bite (`../shared/notes/apple.md` §11):
//! - Authenticate binds the UDID and the identity certificate and turns
//!   pushes off; the TokenUpdate after it turns them on and brings the
//!   push triple. A certificate speaks only for the device it was issued
//!   to, and only the one bound at Authenticate.
//! - NotNow keeps a command; it is offered again only after a later
//!   Idle, never on the same connection.
//! - The server never answers 401 (a device unenrolls on it); a device
//!   Latchkey no longer manages hears `com.apple.unrecognized.device`.

use chrono::{DateTime, Utc};
use tracing::warn;

use super::Apple;
use crate::core::auth::{self, AuthenticatedDevice, DeviceAuthError, DeviceChannel, DeviceRefusal};
use crate::core::{CoreError, printable};
use crate::domain::apple::checkin::{
    Authenticate, CheckInMessage, EnrollmentId, SecretBytes, TokenUpdate,
};
use crate::domain::apple::enrollment::{AppleEnrollment, platform_of};
use crate::domain::audit::{Actor, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::command::{Command, CommandArgs, CommandKind};
use crate::domain::device::DeviceState;
use crate::domain::ids::DeviceId;
use crate::store::StoredTokenUpdate;

/// How a device proves who it is.
#[derive(Debug, Clone, Copy)]
pub enum AppleProof<'a> {
    /// `Mdm-Signature`: a detached CMS signature (DER) over the body.
    Signature(&'a [u8]),
    /// The client certificate (DER) of a TLS connection that verified its
    /// chain.
    TlsCertificate(&'a [u8]),
}

/// An Apple device whose identity certificate checked out.
#[derive(Debug, Clone)]
pub struct AppleDevice {
    pub(super) device: AuthenticatedDevice,
    /// SHA-256 (hex) of the identity certificate.
    identity_sha256: String,
    /// Its Apple enrollment, read with the certificate.
    enrollment: Option<AppleEnrollment>,
    /// When the device was last seen, as read with the certificate.
    pub(super) last_seen: Option<DateTime<Utc>>,
}

impl AppleDevice {
    pub fn id(&self) -> &DeviceId {
        self.device.id()
    }

    /// SHA-256 (hex) of the identity certificate it spoke with.
    pub(super) fn identity_sha256(&self) -> &str {
        &self.identity_sha256
    }
}

/// Why a device's request is refused, as the device must hear it.
#[derive(Debug, thiserror::Error)]
pub enum AppleRefusal {
    /// No identity, or one that does not verify: the request is bad.
    #[error("{0}")]
    Unidentified(String),
    /// A certificate Latchkey does not know, or of a device it no longer
    /// manages: the device should unenroll.
    #[error("{0}")]
    Unrecognized(String),
    /// The message does not fit the device it came from (another UDID, a
    /// certificate that was not bound): refused, the device stays.
    #[error("{0}")]
    Mismatch(String),
    #[error(transparent)]
    Operation(#[from] CoreError),
}

impl From<latchkey_certs::CertError> for AppleRefusal {
    fn from(e: latchkey_certs::CertError) -> Self {
        AppleRefusal::Operation(e.into())
    }
}

impl From<crate::store::StoreError> for AppleRefusal {
    fn from(e: crate::store::StoreError) -> Self {
        AppleRefusal::Operation(e.into())
    }
}

/// What a check-in is answered with.
#[derive(Debug)]
pub enum CheckInAnswer {
    /// 200 with an empty body.
    Done,
    /// GetBootstrapToken's answer (`None`: no token escrowed).
    BootstrapToken(Option<SecretBytes>),
    /// UserAuthenticate: declined, 410 (no user channel).
    Gone,
    /// A message type Latchkey does not take part in.
    Unsupported(&'static str),
}

pub(super) fn sealing_kid(what: &str, device: &DeviceId) -> String {
    format!("apple-{what}:{device}")
}

impl Apple {
    /// Works out which device a request comes from.
    pub async fn identify(
        &self,
        proof: AppleProof<'_>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<AppleDevice, AppleRefusal> {
        let certificate = match proof {
            AppleProof::Signature(signature) => self
                .ca
                .verify_mdm_signature(signature, body, now)
                .map_err(|e| AppleRefusal::Unidentified(format!("Mdm-Signature: {e}")))?,
            AppleProof::TlsCertificate(der) => der.to_vec(),
        };
        let refusal = |e| match e {
            DeviceAuthError::Refused(
                r @ (DeviceRefusal::NoCertificate | DeviceRefusal::MalformedCertificate),
            ) => AppleRefusal::Unidentified(r.to_string()),
            DeviceAuthError::Refused(r) => AppleRefusal::Unrecognized(r.to_string()),
            DeviceAuthError::Store(e) => e.into(),
        };
        // The certificate as issued, its device's state and the device's
        // enrollment, in one statement; admitted by the rules every device
        // channel shares.
        let leaf = auth::read_leaf(Some(&certificate), now).map_err(refusal)?;
        let (record, state, enrollment, last_seen) = match self
            .store
            .certificate_with_apple_enrollment(&leaf.serial_hex)
            .await?
        {
            Some((record, state, enrollment, last_seen)) => {
                (Some(record), state, enrollment, last_seen)
            }
            None => (None, None, None, None),
        };
        let device = auth::admit(
            leaf,
            record.as_ref(),
            state.as_ref().map(|(state, channel)| (*state, channel)),
            DeviceChannel::AppleMdm,
        )
        .map_err(refusal)?;
        Ok(AppleDevice {
            device,
            identity_sha256: hex::encode(latchkey_certs::sha256(&certificate)),
            enrollment,
            last_seen,
        })
    }

    /// The enrollment of the device, as read when the request was
    /// admitted.
    pub(super) fn enrollment_of(
        &self,
        device: &AppleDevice,
    ) -> Result<AppleEnrollment, AppleRefusal> {
        device.enrollment.clone().ok_or_else(|| {
            AppleRefusal::Unrecognized(format!(
                "device {} is not managed as an Apple device",
                device.id()
            ))
        })
    }

    /// The enrollment of a device past Authenticate, checked against the
    /// message's UDID and the certificate bound at Authenticate.
    /// The certificate its identity renewal got issued (`renew.rs`) takes
    /// over the binding here, at its first message.
    pub(super) async fn bound_enrollment(
        &self,
        device: &AppleDevice,
        enrollment_id: &EnrollmentId,
        now: DateTime<Utc>,
    ) -> Result<AppleEnrollment, AppleRefusal> {
        let enrollment = self.enrollment_of(device)?;
        if enrollment.udid.as_deref() != Some(enrollment_id.device.as_str()) {
            return Err(AppleRefusal::Mismatch(format!(
                "UDID {} is not the device this certificate authenticated as",
                printable(enrollment_id.device.as_str(), 64)
            )));
        }
        if let Some(renewed) = self
            .complete_renewal(device, &enrollment, enrollment_id.device.as_str(), now)
            .await?
        {
            return Ok(renewed);
        }
        if enrollment.identity_sha256.as_deref() != Some(device.identity_sha256.as_str()) {
            return Err(AppleRefusal::Mismatch(
                "this identity certificate was not the one bound at Authenticate".into(),
            ));
        }
        Ok(enrollment)
    }

    /// A check-in message (`PUT` to the check-in URL).
    pub async fn check_in(
        &self,
        device: &AppleDevice,
        message: CheckInMessage,
        now: DateTime<Utc>,
    ) -> Result<CheckInAnswer, AppleRefusal> {
        if let Some(enrollment) = message.enrollment()
            && enrollment.is_user_channel()
        {
            // Latchkey manages devices, not user channels: a user channel
            // message is declined without touching the device's state.
            return Ok(match message {
                CheckInMessage::UserAuthenticate(_) => CheckInAnswer::Gone,
                _ => CheckInAnswer::Unsupported("user channel"),
            });
        }
        match message {
            CheckInMessage::Authenticate(m) => self.authenticate(device, m, now).await,
            CheckInMessage::TokenUpdate(m) => self.token_update(device, m, now).await,
            CheckInMessage::CheckOut(m) => {
                // The MDM profile was removed: the device is no longer
                // managed, so nothing it holds (its identity may have been
                // copied off it first) answers for a managed device any
                // more. It ends as a retired device does.
                self.bound_enrollment(device, &m.enrollment, now).await?;
                let tx = self.store.begin().await?;
                tx.apple_check_out(device.id(), now).await?;
                tx.audit(&check_in_entry(
                    device,
                    "CheckOut: the MDM profile was removed; the device is retired".into(),
                    now,
                ))
                .await?;
                crate::core::Devices::end_device_in(
                    &tx,
                    device.id(),
                    DeviceState::Retired,
                    device.device.actor(),
                    AuditAction::DeviceRetire,
                    now,
                )
                .await?;
                tx.commit().await?;
                self.devices.after_device_ended(device.id(), now).await;
                Ok(CheckInAnswer::Done)
            }
            CheckInMessage::UserAuthenticate(_) => Ok(CheckInAnswer::Gone),
            CheckInMessage::SetBootstrapToken(m) => {
                self.bound_enrollment(device, &m.enrollment, now).await?;
                let sealed = match &m.token {
                    Some(token) => Some(self.ca.token_keys().seal(
                        &sealing_kid("bootstrap", device.id()),
                        &hex::encode(token.expose()),
                    )?),
                    None => None,
                };
                let tx = self.store.begin().await?;
                tx.set_apple_bootstrap_token(device.id(), sealed.as_deref())
                    .await?;
                tx.audit(&check_in_entry(
                    device,
                    if sealed.is_some() {
                        "SetBootstrapToken: the bootstrap token is escrowed".into()
                    } else {
                        "SetBootstrapToken: the escrowed bootstrap token is removed".into()
                    },
                    now,
                ))
                .await?;
                tx.commit().await?;
                Ok(CheckInAnswer::Done)
            }
            CheckInMessage::GetBootstrapToken(m) => {
                self.bound_enrollment(device, &m.enrollment, now).await?;
                let token = match self.store.apple_bootstrap_token(device.id()).await? {
                    Some(sealed) => {
                        let text = self
                            .ca
                            .token_keys()
                            .open(&sealing_kid("bootstrap", device.id()), &sealed)?;
                        hex::decode(text).ok().map(SecretBytes::new)
                    }
                    None => None,
                };
                self.audit
                    .record(check_in_entry(
                        device,
                        if token.is_some() {
                            "GetBootstrapToken: the escrowed bootstrap token is given back".into()
                        } else {
                            "GetBootstrapToken: none is escrowed".into()
                        },
                        now,
                    ))
                    .await?;
                Ok(CheckInAnswer::BootstrapToken(token))
            }
            CheckInMessage::Declined(kind) => Ok(CheckInAnswer::Unsupported(kind.as_str())),
        }
    }

    async fn authenticate(
        &self,
        device: &AppleDevice,
        m: Authenticate,
        now: DateTime<Utc>,
    ) -> Result<CheckInAnswer, AppleRefusal> {
        let enrollment = self.enrollment_of(device)?;
        let udid = m.enrollment.device.as_str().to_owned();
        if let Some(bound) = &enrollment.udid
            && *bound != udid
        {
            return Err(AppleRefusal::Mismatch(format!(
                "this identity certificate belongs to another device than UDID {}",
                printable(&udid, 64)
            )));
        }
        // The topic is the profile's and never changes for an enrollment;
        // one this server has no push certificate for could never wake the
        // device, and taking it would lose the push triple it has.
        let known = self
            .store
            .push_certificates()
            .await?
            .iter()
            .any(|c| c.info.topic == m.topic);
        let changed = enrollment.topic.as_ref().is_some_and(|t| *t != m.topic);
        if !known || changed {
            return Err(AppleRefusal::Mismatch(format!(
                "topic {} is not the push topic this device enrolled under",
                printable(&m.topic, 128)
            )));
        }
        // The renewed identity's first message may be an Authenticate: the
        // device is bound to it, and stays enrolled as it was (its queue,
        // with the InstallProfile that renewed it, is kept).
        if enrollment.udid.is_some()
            && self
                .complete_renewal(device, &enrollment, &udid, now)
                .await?
                .is_some()
        {
            return Ok(CheckInAnswer::Done);
        }
        // The identity is bound once: only the device's own renewal (above)
        // moves it. Another certificate of the same record (a listed
        // device's identity minted before the one it enrolled with) does
        // not take the device over.
        if enrollment
            .identity_sha256
            .as_deref()
            .is_some_and(|bound| bound != device.identity_sha256())
        {
            return Err(AppleRefusal::Mismatch(
                "this device is bound to another identity certificate".into(),
            ));
        }
        let earlier = self
            .store
            .apple_enrollment_by_udid(&udid)
            .await?
            .filter(|e| e.device != *device.id());
        if let Some(earlier) = &earlier {
            self.may_replace(device, earlier).await?;
        }
        let tx = self.store.begin().await?;
        if let Some(earlier) = &earlier {
            // The same hardware enrolled again as a new device record: the
            // old record ends, so one device never holds two identities.
            tx.release_apple_udid(&earlier.device).await?;
            if let Err(e) = crate::core::Devices::end_device_in(
                &tx,
                &earlier.device,
                DeviceState::Retired,
                Actor::Device(device.id().clone()),
                AuditAction::DeviceRetire,
                now,
            )
            .await
            {
                warn!(device = %earlier.device, error = %e, "the earlier record stays as it was");
            }
        }
        tx.authenticate_apple(device.id(), &udid, &device.identity_sha256, &m.topic, now)
            .await?;
        tx.fail_open_commands(device.id(), "cleared: the device enrolled again", now)
            .await?;
        crate::core::Devices::wipe_failed_in(
            &tx,
            device.id(),
            device.device.actor(),
            "cleared: the device enrolled again",
            now,
        )
        .await?;
        let os_version = m.os_version.clone().unwrap_or_default();
        tx.set_apple_device_facts(
            device.id(),
            m.device_name
                .as_deref()
                .map(|n| printable(n, 128))
                .as_deref(),
            platform_of(m.product_name.as_deref(), m.model.as_deref()),
            &printable(&os_version, 64),
            &printable(m.serial_number.as_deref().unwrap_or_default(), 64),
            &printable(
                m.model_name
                    .as_deref()
                    .or(m.product_name.as_deref())
                    .unwrap_or_default(),
                64,
            ),
            now,
        )
        .await?;
        tx.audit(&check_in_entry(
            device,
            format!(
                "Authenticate: UDID {}, topic {}{}",
                printable(&udid, 64),
                printable(&m.topic, 128),
                match &earlier {
                    Some(e) => format!("; replaces device {}", e.device),
                    None => String::new(),
                }
            ),
            now,
        ))
        .await?;
        tx.commit().await?;
        if earlier.is_some() {
            self.devices.crl.publish(now).await;
        }
        Ok(CheckInAnswer::Done)
    }

    /// Whether `device`, at its first Authenticate, may take the UDID of
    /// the `earlier` record. A UDID is no secret, and Authenticate proves
    /// only the certificate, so a UDID that a live device holds passes
    /// only to a device of the same user (the owner enrolling the same
    /// hardware again); anyone else would end someone else's device. Two
    /// devices with no user are not the same owner: a kiosk or a fleet
    /// device listed by Automated Device Enrollment would otherwise be
    /// ended by any identity without a user. An admin retires the old
    /// record first when the hardware changed hands.
    async fn may_replace(
        &self,
        device: &AppleDevice,
        earlier: &AppleEnrollment,
    ) -> Result<(), AppleRefusal> {
        let Some(holder) = self.store.device(&earlier.device).await? else {
            return Ok(());
        };
        if matches!(holder.state, DeviceState::Retired | DeviceState::Wiped) {
            return Ok(());
        }
        let user = self.store.device(device.id()).await?.and_then(|d| d.user);
        if holder.user.is_some() && holder.user == user {
            return Ok(());
        }
        Err(AppleRefusal::Mismatch(format!(
            "UDID {} is enrolled as another device, not of this device's user; an admin \
             retires that device before this one can enroll as it",
            printable(&earlier.udid.clone().unwrap_or_default(), 64)
        )))
    }

    async fn token_update(
        &self,
        device: &AppleDevice,
        m: TokenUpdate,
        now: DateTime<Utc>,
    ) -> Result<CheckInAnswer, AppleRefusal> {
        self.bound_enrollment(device, &m.enrollment, now).await?;
        if m.token.is_empty() || m.push_magic.is_empty() {
            return Err(AppleRefusal::Mismatch(
                "TokenUpdate without a push token or PushMagic".into(),
            ));
        }
        let unlock_token_sealed = match &m.unlock_token {
            Some(token) => Some(self.ca.token_keys().seal(
                &sealing_kid("unlock", device.id()),
                &hex::encode(token.expose()),
            )?),
            None => None,
        };
        let state = self.store.device_state(device.id()).await?;
        let tx = self.store.begin().await?;
        tx.apple_token_update(
            device.id(),
            &StoredTokenUpdate {
                push_token_hex: hex::encode(&m.token),
                push_magic: printable(&m.push_magic, 256),
                unlock_token_sealed,
                awaiting_configuration: m.awaiting_configuration,
            },
            now,
        )
        .await?;
        // The first TokenUpdate completes the enrollment: the device is
        // reachable, and is asked what it is and how it is protected. The
        // state changes once, so two TokenUpdates racing queue the first
        // queries once.
        if state == Some(DeviceState::AwaitingEnrollment)
            && tx
                .change_device_state(
                    device.id(),
                    &[DeviceState::AwaitingEnrollment],
                    DeviceState::Active,
                )
                .await?
        {
            let mut kinds = vec![CommandKind::Inventory, CommandKind::SecurityInfo];
            if m.awaiting_configuration {
                kinds.push(CommandKind::ReleaseSetup);
            }
            for (i, kind) in kinds.into_iter().enumerate() {
                tx.insert_command(&Command::pending(
                    device.id().clone(),
                    kind,
                    String::new(),
                    CommandArgs::default(),
                    Actor::System.to_string(),
                    // Distinct times keep the order the device fetches in.
                    now + chrono::Duration::milliseconds(i64::try_from(i).unwrap_or(0)),
                ))
                .await?;
            }
            // Then the policy in force, as a configuration profile.
            if let Some((listed, Some(policy))) = tx.device_with_policy(device.id()).await?
                && let Some(install) = super::policy::policy_install_command(
                    &self.settings,
                    &listed,
                    &policy.name,
                    &policy.document,
                    now + chrono::Duration::milliseconds(10),
                )
            {
                tx.insert_command(&install).await?;
            }
            tx.audit(&AuditEntry {
                at: now,
                actor: device.device.actor(),
                action: AuditAction::DeviceEnroll,
                target: device.id().to_string(),
                outcome: AuditOutcome::Ok,
                detail: "first TokenUpdate: enrolled; inventory, security queries and the \
                         policy profile queued"
                    .into(),
            })
            .await?;
        }
        tx.commit().await?;
        self.wake(device.id(), now).await?;
        Ok(CheckInAnswer::Done)
    }

    /// Pushes the device when it has open commands.
    pub(super) async fn wake(
        &self,
        device: &DeviceId,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let open = self.store.open_commands(device).await?;
        if !open.is_empty() {
            self.devices
                .offer_work(&crate::domain::device::Channel::apple(), device, &open, now)
                .await;
        }
        Ok(())
    }
}

/// The audit entry of a check-in message `device` sent: who, and `detail`.
fn check_in_entry(device: &AppleDevice, detail: String, now: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        at: now,
        actor: device.device.actor(),
        action: AuditAction::DeviceCheckIn,
        target: device.id().to_string(),
        outcome: AuditOutcome::Ok,
        detail,
    }
}
