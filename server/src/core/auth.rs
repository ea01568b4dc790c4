//! Who is calling: admins by API token, devices by certificate.
//!
//! [`AuthenticatedAdmin`] and [`AuthenticatedDevice`] have private fields and
//! are constructed only here, after the checks; every operation that needs a
//! caller demands one of them.

use chrono::{DateTime, Utc};

use crate::domain::admin::{Admin, Role};
use crate::domain::audit::Actor;
use crate::domain::device::{Channel, DeviceState};
use crate::domain::ids::DeviceId;
use crate::store::{CertificateRecord, Store, StoreError};

/// Prefix of admin API tokens, so a leaked one is recognisable.
pub const ADMIN_TOKEN_PREFIX: &str = "lka_";
/// Prefix of enrollment token secrets.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "lke_";
/// Prefix of app client secrets.
pub const CLIENT_SECRET_PREFIX: &str = "lkc_";

/// A new random secret with `prefix`, and the hash the store keeps.
pub fn new_secret(prefix: &str) -> Result<(String, String), latchkey_certs::CertError> {
    let bytes = latchkey_certs::random_bytes::<32>()?;
    let secret = format!("{prefix}{}", hex::encode(bytes));
    let hash = secret_hash(&secret);
    Ok((secret, hash))
}

/// Secrets are stored as SHA-256: they are 256-bit random, so a fast hash suffices.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(latchkey_certs::sha256(secret.as_bytes()))
}

/// What an admin may do; roles map to sets of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    ReadDevices,
    LockDevices,
    ManageDevices,
    ReadTokens,
    ManageTokens,
    ReadPolicies,
    ManagePolicies,
    ReadAdmins,
    ManageAdmins,
    ReadAudit,
    ReadUsers,
    ManageUsers,
    ReadApps,
    ManageApps,
    /// The device platforms' settings: Apple's push certificate and
    /// enrollment, Android's binding.
    ReadPlatforms,
    ManagePlatforms,
}

impl Permission {
    fn allowed_for(self, role: Role) -> bool {
        use Permission::*;
        match role {
            Role::Owner | Role::Admin => true,
            // The helpdesk finds a user's devices to lock them.
            Role::Helpdesk => matches!(self, ReadDevices | LockDevices | ReadUsers),
            Role::Auditor => matches!(
                self,
                ReadDevices
                    | ReadTokens
                    | ReadPolicies
                    | ReadAdmins
                    | ReadAudit
                    | ReadUsers
                    | ReadApps
                    | ReadPlatforms
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthenticatedAdmin {
    admin: Admin,
}

impl AuthenticatedAdmin {
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    pub fn role(&self) -> Role {
        self.admin.role
    }

    /// How the admin appears in the audit log.
    pub fn actor(&self) -> Actor {
        Actor::Admin(self.admin.email.clone())
    }

    pub fn may(&self, permission: Permission) -> bool {
        permission.allowed_for(self.admin.role)
    }
}

pub async fn authenticate_admin(
    store: &Store,
    token: &str,
) -> Result<Option<AuthenticatedAdmin>, StoreError> {
    if !token.starts_with(ADMIN_TOKEN_PREFIX) {
        return Ok(None);
    }
    Ok(store
        .admin_by_token_hash(&secret_hash(token))
        .await?
        .map(|admin| AuthenticatedAdmin { admin }))
}

/// Which door a device is knocking on; a device being wiped may still reach
/// MQTT (to receive its wipe) but nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChannel {
    /// The agent's gRPC API.
    DeviceApi,
    /// The agent's MQTT session.
    Mqtt,
    /// Apple's MDM check-in and command channel.
    AppleMdm,
    /// The device listener's certificate step of a sign-in: a browser on
    /// the device presents the certificate its enrollment installed.
    SignInCertificate,
}

impl DeviceChannel {
    /// Whether a device managed over `managed_by` may use this channel:
    /// an agent's certificate never checks in as an Apple device, and an
    /// Apple identity never speaks for an agent (posture, renewal,
    /// device-auth answers); either may answer the sign-in's certificate
    /// step.
    fn serves(self, managed_by: &Channel) -> bool {
        let apple = managed_by.as_str() == Channel::APPLE;
        match self {
            DeviceChannel::AppleMdm => apple,
            DeviceChannel::DeviceApi | DeviceChannel::Mqtt => !apple,
            DeviceChannel::SignInCertificate => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceRefusal {
    #[error("no client certificate was presented")]
    NoCertificate,
    #[error("the client certificate is malformed")]
    MalformedCertificate,
    #[error("the certificate is not known to this server")]
    UnknownCertificate,
    #[error("the certificate has been revoked or superseded by a renewal")]
    Revoked,
    #[error("the certificate has expired")]
    Expired,
    #[error("the device is {0}")]
    DeviceState(&'static str),
    #[error("the device does not exist")]
    UnknownDevice,
    #[error("the certificate belongs to a device managed over another channel")]
    WrongChannel,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceAuthError {
    #[error("device refused: {0}")]
    Refused(DeviceRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A device allowed to use the channel it came in on. Built in one of two
/// ways: from a certificate that chains to the Latchkey CA (TLS layer) and is
/// an unrevoked certificate of the device in the store (same serial, same
/// key); or, for MQTT messages, from the topic a broker that verified the
/// certificate confines the device to. Either way the device's state is read
/// from the store.
#[derive(Debug, Clone)]
pub struct AuthenticatedDevice {
    id: DeviceId,
    certificate_serial: Option<String>,
}

impl AuthenticatedDevice {
    pub fn id(&self) -> &DeviceId {
        &self.id
    }

    /// Serial of the certificate the device authenticated with, when it came
    /// with one (gRPC and the embedded MQTT gateway).
    pub fn certificate_serial(&self) -> Option<&str> {
        self.certificate_serial.as_deref()
    }

    /// How the device appears in the audit log.
    pub fn actor(&self) -> Actor {
        Actor::Device(self.id.clone())
    }
}

fn state_allowed(state: DeviceState, channel: DeviceChannel) -> bool {
    match state {
        DeviceState::Active | DeviceState::Locked => true,
        // An Apple device keeps checking in to fetch its erase, and in
        // lost mode to be located and released.
        DeviceState::WipePending => {
            matches!(channel, DeviceChannel::Mqtt | DeviceChannel::AppleMdm)
        }
        DeviceState::Lost | DeviceState::AwaitingEnrollment => channel == DeviceChannel::AppleMdm,
        DeviceState::Retired | DeviceState::Wiped => false,
    }
}

/// Authenticates the leaf of a chain the TLS layer verified against the CA.
pub async fn authenticate_device_certificate(
    store: &Store,
    leaf_der: Option<&[u8]>,
    channel: DeviceChannel,
    now: DateTime<Utc>,
) -> Result<AuthenticatedDevice, DeviceAuthError> {
    let leaf = read_leaf(leaf_der, now)?;
    let found = store.certificate_and_state(&leaf.serial_hex).await?;
    let (record, device) = found.unzip();
    let device = device.flatten();
    admit(
        leaf,
        record.as_ref(),
        device
            .as_ref()
            .map(|(state, managed_by)| (*state, managed_by)),
        channel,
    )
}

/// The presented leaf, parsed and current; the first half of
/// authentication, before anything is looked up.
pub fn read_leaf(
    leaf_der: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<latchkey_certs::CertificateInfo, DeviceAuthError> {
    let Some(leaf) = leaf_der else {
        return Err(DeviceAuthError::Refused(DeviceRefusal::NoCertificate));
    };
    let Ok(info) = latchkey_certs::inspect_certificate(leaf) else {
        return Err(DeviceAuthError::Refused(
            DeviceRefusal::MalformedCertificate,
        ));
    };
    if info.not_after <= now {
        return Err(DeviceAuthError::Refused(DeviceRefusal::Expired));
    }
    Ok(info)
}

/// The second half: the leaf against what the store holds for its serial
/// (the certificate as issued, and its device's state and the channel it
/// is managed over).
pub fn admit(
    leaf: latchkey_certs::CertificateInfo,
    record: Option<&CertificateRecord>,
    device: Option<(DeviceState, &Channel)>,
    channel: DeviceChannel,
) -> Result<AuthenticatedDevice, DeviceAuthError> {
    let refuse = |r| Err(DeviceAuthError::Refused(r));
    let Some(record) = record else {
        return refuse(DeviceRefusal::UnknownCertificate);
    };
    if record.spki_sha256_hex != hex::encode(leaf.spki_sha256) {
        return refuse(DeviceRefusal::UnknownCertificate);
    }
    if record.revoked_at.is_some() {
        return refuse(DeviceRefusal::Revoked);
    }
    if leaf.device_id.as_deref() != Some(record.device_id.as_str()) {
        return refuse(DeviceRefusal::UnknownCertificate);
    }
    let Some((state, managed_by)) = device else {
        return refuse(DeviceRefusal::UnknownDevice);
    };
    if !channel.serves(managed_by) {
        return refuse(DeviceRefusal::WrongChannel);
    }
    if !state_allowed(state, channel) {
        return refuse(DeviceRefusal::DeviceState(state.as_str()));
    }
    Ok(AuthenticatedDevice {
        id: record.device_id.clone(),
        certificate_serial: Some(leaf.serial_hex),
    })
}

/// Authenticates a device by the topic its message arrived on. Valid only for
/// messages from a broker that verified the device's certificate and confines
/// each device to its own topics (the embedded gateway, or an external broker
/// configured with the Latchkey CA, CRL and ACL).
pub async fn authenticate_broker_device(
    store: &Store,
    device_id: &str,
) -> Result<AuthenticatedDevice, DeviceAuthError> {
    let Some(id) = DeviceId::parse(device_id) else {
        return Err(DeviceAuthError::Refused(DeviceRefusal::UnknownDevice));
    };
    let Some((state, managed_by)) = store.device_state_and_channel(&id).await? else {
        return Err(DeviceAuthError::Refused(DeviceRefusal::UnknownDevice));
    };
    if !DeviceChannel::Mqtt.serves(&managed_by) {
        return Err(DeviceAuthError::Refused(DeviceRefusal::WrongChannel));
    }
    if !state_allowed(state, DeviceChannel::Mqtt) {
        return Err(DeviceAuthError::Refused(DeviceRefusal::DeviceState(
            state.as_str(),
        )));
    }
    Ok(AuthenticatedDevice {
        id,
        certificate_serial: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_least_privilege() {
        use Permission::*;
        let all = [
            ReadDevices,
            LockDevices,
            ManageDevices,
            ReadTokens,
            ManageTokens,
            ReadPolicies,
            ManagePolicies,
            ReadAdmins,
            ManageAdmins,
            ReadAudit,
            ReadUsers,
            ManageUsers,
            ReadApps,
            ManageApps,
        ];
        let granted = |role| {
            all.iter()
                .copied()
                .filter(|p| p.allowed_for(role))
                .collect::<Vec<_>>()
        };
        assert_eq!(granted(Role::Owner), all);
        assert_eq!(granted(Role::Admin), all);
        assert_eq!(
            granted(Role::Helpdesk),
            [ReadDevices, LockDevices, ReadUsers]
        );
        assert_eq!(
            granted(Role::Auditor),
            [
                ReadDevices,
                ReadTokens,
                ReadPolicies,
                ReadAdmins,
                ReadAudit,
                ReadUsers,
                ReadApps
            ]
        );
    }

    #[test]
    fn secrets_are_prefixed_and_hashed() {
        let (secret, hash) = new_secret(ADMIN_TOKEN_PREFIX).unwrap();
        assert!(secret.starts_with("lka_"));
        assert_eq!(hash, secret_hash(&secret));
        assert_ne!(hash, secret);
    }
}
