//! Apple devices under MDM. This file holds the service and the push
//! certificates: importing one (its topic from the certificate's UID, a
//! change of topic refused unless forced, because every device enrolled
//! under the old topic can be woken only through the old certificate) and
//! the status an admin checks (expiry warned about 30 days ahead).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use latchkey_certs::apns::{PushCertificateError, read_push_certificate};

use super::auth::{AuthenticatedAdmin, Permission};
use super::{Audit, CoreError};
use crate::ca::CertificateAuthority;
use crate::ca::apple::EnrollmentAuthority;
use crate::domain::apple::push::{self, PushCertificateInfo, PushWarning};
use crate::domain::audit::{AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::push::apns::Apns;
use crate::store::{Store, StoredPushCertificate};
use tracing::warn;

mod checkin;
mod command_channel;
mod dep;
mod dep_sign_in;
mod enroll;
mod inventory;
pub(crate) mod policy;
mod renew;

pub use checkin::{AppleDevice, AppleProof, AppleRefusal, CheckInAnswer};
pub use command_channel::posture_of;
pub use dep::{DepKeypair, MAX_TOKEN_FILE_BYTES};
pub use dep_sign_in::{DEP_SIGN_IN_LIFETIME, DepSignInRefusal, DepSignInStart};
pub use enroll::{NewEnrollment, ScepAnswer};
pub use renew::RenewalPass;

/// The Apple service: push certificates, and (in the files beside this
/// one) enrollment, check-in and the command queue.
#[derive(Clone)]
pub struct Apple {
    pub(super) store: Store,
    pub(super) audit: Audit,
    /// Seals the push certificate's key at rest; issues identities.
    pub(super) ca: Arc<CertificateAuthority>,
    /// Given every push certificate, at start and when one is imported.
    pub(super) apns: Arc<dyn Apns>,
    /// The SCEP RA and profile signer.
    pub(super) enrollment_authority: Arc<EnrollmentAuthority>,
    pub(super) settings: AppleSettings,
    /// Acknowledges commands, ends devices, offers work to the channel.
    pub(super) devices: super::Devices,
    /// Reaches Apple's ADE service.
    pub(super) dep_http: crate::http_client::HttpClient,
    /// ADE tokens Apple asked to wait (`Retry-After`), and until when.
    pub(super) dep_throttled: dep::Throttled,
}

/// What the Apple service is built with besides the store and the CA.
pub struct ApplePlatform {
    /// Where pushes go.
    pub apns: Arc<dyn Apns>,
    /// The SCEP RA and profile signer.
    pub enrollment_authority: Arc<EnrollmentAuthority>,
    /// Reaches Apple's ADE service.
    pub dep_http: crate::http_client::HttpClient,
}

/// Apple settings, from the validated configuration.
#[derive(Debug, Clone)]
pub struct AppleSettings {
    /// How long a SCEP-issued identity certificate is valid.
    pub identity_validity: chrono::Duration,
    /// An identity certificate expiring within this is renewed.
    pub identity_renewal_window: chrono::Duration,
    /// Where devices reach the server: `https://host[:port]`, no path.
    pub base_url: String,
    /// The organization profiles name.
    pub organization: String,
    /// Signed-in users may download an enrollment profile for their own
    /// device from `/apple/enroll`.
    pub enrollment_page: bool,
    /// Apple's ADE service (`https://mdmenrollment.apple.com`), or a fake.
    pub dep_base_url: String,
    /// How old a device's reported facts may grow before it is asked
    /// again (DeviceInformation, SecurityInfo).
    pub inventory_interval: chrono::Duration,
    /// A device enrolling through ADE first has its user sign in (in
    /// Setup Assistant's web view) and enrolls as that user's.
    pub dep_sign_in: bool,
}

impl AppleSettings {
    /// The command channel (the MDM payload's `ServerURL`).
    pub fn server_url(&self) -> String {
        format!("{}/apple/mdm/connect", self.base_url)
    }

    pub fn check_in_url(&self) -> String {
        format!("{}/apple/mdm/checkin", self.base_url)
    }

    /// Where Setup Assistant fetches the enrollment profile of a device
    /// listed by Automated Device Enrollment (the ADE profile's `url` and
    /// `configuration_web_url`).
    pub fn dep_enrollment_url(&self) -> String {
        format!("{}/apple/dep/enroll", self.base_url)
    }

    /// Where the ADE sign-in comes back to with its code, in the web view
    /// that started it.
    pub fn dep_callback_url(&self) -> String {
        format!("{}/apple/dep/callback", self.base_url)
    }

    /// Without a query string: devices append their own.
    pub fn scep_url(&self) -> String {
        format!("{}/apple/scep", self.base_url)
    }

    /// The reverse-DNS base of the profiles' identifiers: the server's
    /// host reversed, so a deployment keeps it and a refreshed profile
    /// replaces the installed one.
    pub fn identifier_base(&self) -> String {
        let host = url::Url::parse(&self.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".into());
        let mut labels: Vec<String> = host
            .split('.')
            .map(|label| {
                label
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect::<String>()
            })
            .filter(|label| !label.is_empty())
            .collect();
        labels.reverse();
        labels.push("latchkey".into());
        labels.join(".")
    }
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct PushCertificateImport {
    pub certificate: PushCertificateInfo,
    /// The certificate's subject CN, as Apple wrote it.
    pub common_name: String,
    /// The topic new enrollments used before, when this import changed it.
    pub replaced_topic: Option<String>,
    /// Devices enrolled under the replaced topic.
    pub orphaned_devices: u64,
}

/// What `latchctl apple status` shows.
#[derive(Debug, Clone)]
pub struct AppleStatus {
    /// Latest import first; the first is the one new enrollments use.
    pub push_certificates: Vec<PushCertificateInfo>,
    pub warnings: Vec<PushWarning>,
}

impl Apple {
    /// Imports the MDM push certificate and its key. A certificate for the
    /// topic already in use renews it; one for another topic is refused
    /// unless `force`, since the devices enrolled under the old topic
    /// would no longer be reachable once it expires.
    pub async fn import_push_certificate(
        &self,
        caller: &AuthenticatedAdmin,
        certificate_pem: &str,
        key_pem: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<PushCertificateImport, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManagePlatforms,
                AdminRequest::ImportApplePushCertificates,
                "",
                now,
            )
            .await?;
        let read = read_push_certificate(certificate_pem, key_pem, now).map_err(|e| match e {
            PushCertificateError::KeyMismatch => CoreError::InvalidArgument(
                "the private key does not belong to this push certificate; give the key \
                 whose certificate signing request Apple signed"
                    .into(),
            ),
            other => CoreError::InvalidArgument(other.to_string()),
        })?;
        let stored = self.store.push_certificates().await?;
        let infos: Vec<PushCertificateInfo> = stored.iter().map(|s| s.info.clone()).collect();
        let previous = push::current(&infos).map(|c| c.topic.clone());
        let replaced_topic = previous.filter(|topic| *topic != read.topic);
        let orphaned_devices = match &replaced_topic {
            Some(topic) => self.store.apple_devices_with_topic(topic).await?,
            None => 0,
        };
        if let Some(old) = &replaced_topic
            && !force
        {
            return Err(CoreError::FailedPrecondition(format!(
                "this push certificate is for topic {new}, but Apple devices enroll under \
                 {old}: {orphaned_devices} enrolled device(s) would be orphaned, because a \
                 device can be woken only through the topic it enrolled with. Renew the \
                 certificate with the same Apple Account to keep the topic, or import with \
                 --force to start over (every enrolled device must enroll again)",
                new = read.topic,
            )));
        }
        let info = PushCertificateInfo {
            topic: read.topic.clone(),
            not_after: read.not_after,
            imported_at: now,
            imported_by: caller.admin().email.clone(),
        };
        // Refused here rather than at the first push, days later.
        self.apns
            .install(&read.topic, &read.certificate_pem, &read.key_pem)
            .map_err(|e| CoreError::InvalidArgument(e.to_string()))?;
        let key_sealed = self
            .ca
            .token_keys()
            .seal_push_key(&read.topic, &read.key_pem)?;
        let tx = self.store.begin().await?;
        tx.put_push_certificate(&StoredPushCertificate {
            info: info.clone(),
            certificate_pem: read.certificate_pem,
            key_sealed,
        })
        .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::ApplePushCertificateImport,
            target: read.topic.clone(),
            outcome: AuditOutcome::Ok,
            detail: match &replaced_topic {
                Some(old) => format!(
                    "expires {}; replaces topic {old} (forced; {orphaned_devices} device(s) \
                     enrolled under it)",
                    read.not_after.to_rfc3339()
                ),
                None => format!("expires {}", read.not_after.to_rfc3339()),
            },
        })
        .await?;
        tx.commit().await?;
        Ok(PushCertificateImport {
            certificate: info,
            common_name: read.common_name,
            replaced_topic,
            orphaned_devices,
        })
    }

    /// Gives APNs every stored push certificate (at start). A certificate
    /// that cannot be opened is logged and skipped: its devices cannot be
    /// woken, and `latchctl apple status` still shows it.
    pub async fn load_push_certificates(&self) {
        let stored = match self.store.push_certificates().await {
            Ok(stored) => stored,
            Err(e) => {
                warn!(error = %e, "cannot read the Apple push certificates");
                return;
            }
        };
        for cert in stored {
            let topic = &cert.info.topic;
            let installed = self
                .ca
                .token_keys()
                .open_push_key(topic, &cert.key_sealed)
                .map_err(|e| e.to_string())
                .and_then(|key| {
                    self.apns
                        .install(topic, &cert.certificate_pem, &key)
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = installed {
                warn!(%topic, %error, "the Apple push certificate cannot be used");
            }
        }
    }

    pub fn settings(&self) -> &AppleSettings {
        &self.settings
    }

    pub async fn status(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<AppleStatus, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ReadPlatforms,
                AdminRequest::ShowAppleStatus,
                "",
                now,
            )
            .await?;
        let push_certificates: Vec<PushCertificateInfo> = self
            .store
            .push_certificates()
            .await?
            .into_iter()
            .map(|s| s.info)
            .collect();
        let warnings = push::warnings(&push_certificates, now);
        Ok(AppleStatus {
            push_certificates,
            warnings,
        })
    }
}
