//! The device's side of a device-auth transaction: the challenge an agent
//! is shown and signs, its signed answer (ES256, `typ`
//! [`DEVICE_AUTH_TYP`](super::DEVICE_AUTH_TYP)), the mobile path where a
//! browser presents the device certificate itself, and the checks that
//! decide the answer, recorded once.
//!
//! A device is admitted by the certificate it presented, read in the same
//! statement as what its call is decided on (`Db::device_auth_facts`). An
//! answer from a device fit since its last posture report is confirmed in
//! one conditional write (`store::sso::CONFIRM_FIT_ANSWER`); any other
//! answer runs the full check on freshly read facts, which also finds the
//! reason the page shows.
//!
//! This file does not start transactions or show them to the browser
//! (`device_auth.rs`), and does not redeem a `bound` proof (`proof.rs`).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::proof::{self, NewProof};
use super::{
    DEVICE_AUTH_TYP, DEVICE_CLOCK_SKEW, JwsHeader, ProofHandoff, constant_eq, device_fitness,
};
use crate::core::CoreError;
use crate::core::auth::{self, AuthenticatedDevice, DeviceAuthError, DeviceChannel, DeviceRefusal};
use crate::core::sso::SignIn;
use crate::domain::app::DevicePolicy;
use crate::domain::device::Device;
use crate::domain::ids::{AuthRequestId, DeviceAuthTxnId, DeviceId};
use crate::domain::policy::EffectivePolicy;
use crate::domain::sign_in::Delivery;
use crate::domain::sign_in::DeviceAuthFailure;
use crate::domain::sign_in::DeviceAuthTxn;
use crate::domain::sign_in::SsoSession;
use crate::domain::sign_in::TxnOutcome;
use crate::domain::user::UserStatus;
use crate::store::{DeviceAuthFacts, FitAnswer, TxnUpdate, TxnUser};

/// What an agent is shown and signs for a transaction.
#[derive(Debug, Clone)]
pub struct DeviceChallenge {
    pub txn_id: DeviceAuthTxnId,
    pub nonce: String,
    pub audience: String,
    pub app_name: String,
    pub user_email: String,
    pub mode: DevicePolicy,
    pub expires_at: DateTime<Utc>,
    /// The browser that started the sign-in, for the device's dialog.
    pub browser_ip: String,
    pub browser_user_agent: String,
    pub started_at: DateTime<Utc>,
}

/// The outcome of a device's answer, and in `bound` mode what the agent
/// must bring to the browser.
#[derive(Debug, Clone)]
pub struct AnswerOutcome {
    pub outcome: TxnOutcome,
    pub handoff: Option<ProofHandoff>,
}

/// A device's answer to a transaction, as [`SignIn::settle_answer`] decides
/// it: the authenticated device, its current record with the policy in
/// force, the transaction's user, and whether the device proved its key.
struct Answer<'a> {
    device: &'a AuthenticatedDevice,
    subject: Option<(Device, Option<EffectivePolicy>)>,
    user: Option<TxnUser>,
    verified: bool,
    /// `confirm` mode: the number typed on the device is the browser's.
    number_matches: bool,
    peer_ip: Option<&'a str>,
    /// The proof reached the session with the answer (mobile path).
    delivered: Option<Delivery>,
}

/// The longest signed statement an answer may carry.
const MAX_STATEMENT: usize = 4096;

/// The statement an agent signs (JWS payload).
#[derive(Debug, Clone, Deserialize)]
struct DeviceStatement {
    txn: String,
    nonce: String,
    device_id: String,
    aud: String,
    iat: i64,
    /// `confirm` mode: the number the user typed on the device.
    #[serde(default)]
    number: String,
}

impl SignIn {
    /// What a device must sign for `txn_id`. Only a device the transaction
    /// expects is told; any other device fails the transaction with the
    /// reason, so the browser shows it at once. `None`: the call named no
    /// id this server could have made; the device is still authenticated,
    /// and then finds no sign-in.
    pub async fn device_auth_challenge(
        &self,
        leaf_der: Option<&[u8]>,
        txn_id: Option<&DeviceAuthTxnId>,
        now: DateTime<Utc>,
    ) -> Result<DeviceChallenge, CoreError> {
        let leaf = auth::read_leaf(leaf_der, now)?;
        let (device, facts) = self
            .device_auth_facts(leaf, txn_id, DeviceChannel::DeviceApi)
            .await?;
        let txn = self.pending(facts.txn, now).await?;
        if !txn.expected_devices.contains(device.id()) {
            let hostname = facts.device.map(|(d, _)| d.hostname).unwrap_or_default();
            self.fail_txn(
                &txn,
                Some(device.id()),
                DeviceAuthFailure::OtherUser { device: hostname },
                now,
            )
            .await?;
            return Err(CoreError::FailedPrecondition(
                "this device is not one the sign-in expects (it belongs to another user)".into(),
            ));
        }
        let user = facts
            .user
            .ok_or_else(|| CoreError::NotFound("user".into()))?;
        let app_name = facts
            .app_name
            .ok_or_else(|| CoreError::NotFound("app".into()))?;
        Ok(DeviceChallenge {
            txn_id: txn.id,
            nonce: txn.nonce,
            audience: self.issuer().to_owned(),
            app_name,
            user_email: user.email,
            mode: txn.mode,
            expires_at: txn.expires_at,
            browser_ip: txn.browser_ip,
            browser_user_agent: txn.browser_ua,
            started_at: txn.created_at,
        })
    }

    /// Authenticates a device by the certificate it presented and reads,
    /// in the same statement, what its call about `txn_id` (if it named
    /// one) is decided on.
    pub(super) async fn device_auth_facts(
        &self,
        leaf: latchkey_certs::CertificateInfo,
        txn_id: Option<&DeviceAuthTxnId>,
        channel: DeviceChannel,
    ) -> Result<(AuthenticatedDevice, DeviceAuthFacts), CoreError> {
        let facts = self
            .store
            .device_auth_facts(&leaf.serial_hex, txn_id)
            .await?;
        let device = auth::admit(
            leaf,
            facts.as_ref().map(|f| &f.certificate),
            facts
                .as_ref()
                .and_then(|f| f.device.as_ref())
                .map(|(d, _)| (d.state, &d.channel)),
            channel,
        )?;
        let facts = facts.ok_or(DeviceAuthError::Refused(DeviceRefusal::UnknownCertificate))?;
        Ok((device, facts))
    }

    /// The transaction, if it can still be answered; an expired one is
    /// recorded as not answered.
    async fn pending(
        &self,
        txn: Option<DeviceAuthTxn>,
        now: DateTime<Utc>,
    ) -> Result<DeviceAuthTxn, CoreError> {
        let txn = txn.ok_or_else(|| {
            CoreError::NotFound("no such sign-in (device-auth transaction)".into())
        })?;
        if txn.outcome != TxnOutcome::Pending {
            return Err(CoreError::FailedPrecondition(
                "this sign-in was answered already".into(),
            ));
        }
        if txn.expires_at <= now {
            self.fail_txn(&txn, None, DeviceAuthFailure::NotAnswered, now)
                .await?;
            return Err(CoreError::FailedPrecondition(
                "this sign-in has expired".into(),
            ));
        }
        Ok(txn)
    }

    /// A device's signed answer, verified with the key of the certificate
    /// it presented (its current one); `peer_ip` is where the answer came
    /// from. Returns the outcome the agent reports.
    pub async fn answer_device_auth(
        &self,
        leaf_der: Option<&[u8]>,
        peer_ip: Option<&str>,
        signed: &str,
        now: DateTime<Utc>,
    ) -> Result<AnswerOutcome, CoreError> {
        let leaf = auth::read_leaf(leaf_der, now)?;
        let verified = self.verified_statement(&leaf.public_key, signed, now);
        if let Some(statement) = &verified
            && let Some(handoff) = self.confirm_if_fit(&leaf, statement, peer_ip, now).await?
        {
            return Ok(AnswerOutcome {
                outcome: TxnOutcome::Confirmed,
                handoff,
            });
        }
        // The full check, which finds and records why the answer does not
        // count (or confirms it when only the stored verdict was out of
        // date). The transaction id is read from the payload before the
        // signature is checked, only to find the transaction; nothing else
        // is trusted unless the signature verified.
        let claimed = (signed.len() <= MAX_STATEMENT)
            .then(|| signed.split('.').nth(1))
            .flatten()
            .and_then(base64_url)
            .and_then(|p| serde_json::from_slice::<DeviceStatement>(&p).ok());
        let txn_id = claimed
            .as_ref()
            .and_then(|s| DeviceAuthTxnId::parse(&s.txn));
        let (device, facts) = self
            .device_auth_facts(leaf, txn_id.as_ref(), DeviceChannel::DeviceApi)
            .await?;
        if claimed.is_none() {
            return Err(CoreError::InvalidArgument(format!(
                "the answer is not a signed statement (or is longer than {MAX_STATEMENT} bytes)"
            )));
        }
        let txn = self.pending(facts.txn, now).await?;
        let verified = verified.filter(|s| {
            s.txn == txn.id.as_str()
                && constant_eq(&s.nonce, &txn.nonce)
                && s.device_id == device.id().as_str()
        });
        let number_matches = verified.as_ref().is_some_and(|s| {
            txn.mode != DevicePolicy::Confirm || constant_eq(&s.number, &txn.short_code)
        });
        let answer = Answer {
            device: &device,
            subject: facts.device,
            user: facts.user,
            verified: verified.is_some(),
            number_matches,
            peer_ip,
            delivered: None,
        };
        self.settle_answer(&txn, answer, now).await
    }

    /// The statement in `signed` if it is a device-auth statement signed
    /// with `public_key` (ES256), for this issuer, made within the allowed
    /// clock skew. The transaction, nonce and device it names are the
    /// caller's to check.
    fn verified_statement(
        &self,
        public_key: &[u8],
        signed: &str,
        now: DateTime<Utc>,
    ) -> Option<DeviceStatement> {
        if signed.len() > MAX_STATEMENT {
            return None;
        }
        let (header, payload) = latchkey_certs::jose::verify_compact_p256(public_key, signed)?;
        let header: JwsHeader = serde_json::from_slice(&header).ok()?;
        let typ_ok = header.alg.as_deref() == Some("ES256")
            && header.typ.as_deref() == Some(DEVICE_AUTH_TYP);
        let statement: DeviceStatement = serde_json::from_slice(&payload).ok()?;
        let signed_at = DateTime::from_timestamp(statement.iat, 0)?;
        (typ_ok && statement.aud == self.issuer() && (now - signed_at).abs() <= DEVICE_CLOCK_SKEW)
            .then_some(statement)
    }

    /// Confirms a verified answer in one statement when the device was fit
    /// when its posture last arrived and nothing the decision rests on has
    /// changed since (`store::sso::CONFIRM_FIT_ANSWER`): `Some` with, for a
    /// `bound` transaction, what the agent brings to the browser; `None`
    /// otherwise, with nothing written.
    async fn confirm_if_fit(
        &self,
        leaf: &latchkey_certs::CertificateInfo,
        statement: &DeviceStatement,
        peer_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Option<ProofHandoff>>, CoreError> {
        let Some(txn_id) = DeviceAuthTxnId::parse(&statement.txn) else {
            return Ok(None);
        };
        let Some(device_id) = leaf
            .device_id
            .as_deref()
            .and_then(DeviceId::parse)
            .filter(|id| id.as_str() == statement.device_id)
        else {
            return Ok(None);
        };
        let required_ip = if self.settings.bound_requires_same_ip {
            match peer_ip {
                Some(ip) => Some(ip),
                // Only the full check can tell whether it matters.
                None => return Ok(None),
            }
        } else {
            None
        };
        let proof: NewProof = proof::new_proof(self.issuer(), &txn_id)?;
        let spki = hex::encode(leaf.spki_sha256);
        let basis_prefix = crate::domain::policy::verdict_basis("");
        let answer = FitAnswer {
            txn_id: &txn_id,
            nonce: &statement.nonce,
            device_id: &device_id,
            serial_hex: &leaf.serial_hex,
            spki_sha256_hex: &spki,
            required_ip,
            basis_prefix: &basis_prefix,
            number: &statement.number,
            proof: proof.hashes(),
        };
        let Some(mode) = self.store.confirm_fit_answer(&answer, now).await? else {
            return Ok(None);
        };
        self.device_auth_waiters.wake(&txn_id);
        Ok(Some((mode == DevicePolicy::Bound).then_some(proof.handoff)))
    }

    /// The mobile path: a browser on a managed phone or tablet opened the
    /// device listener, presenting the certificate its MDM profile
    /// installed. The TLS handshake proved the key, so no statement is
    /// signed; the transaction must be this browser session's own (`None`:
    /// the browser named no id this server could have made). Returns the
    /// outcome and the request the sign-in page continues with.
    pub async fn answer_with_certificate(
        &self,
        session: &SsoSession,
        leaf_der: &[u8],
        txn_id: Option<&DeviceAuthTxnId>,
        peer_ip: &str,
        now: DateTime<Utc>,
    ) -> Result<(TxnOutcome, AuthRequestId), CoreError> {
        let leaf = auth::read_leaf(Some(leaf_der), now)?;
        let (device, facts) = self
            .device_auth_facts(leaf, txn_id, DeviceChannel::SignInCertificate)
            .await?;
        let txn = self.pending(facts.txn, now).await?;
        if txn.session_id != session.id {
            return Err(CoreError::NotFound(
                "no such sign-in in this browser".into(),
            ));
        }
        let answer = Answer {
            device: &device,
            subject: facts.device,
            user: facts.user,
            verified: true,
            // The browser on the device answered: it saw the number itself.
            number_matches: true,
            peer_ip: Some(peer_ip),
            // The browser that presented the certificate holds the session.
            delivered: Some(Delivery::Certificate),
        };
        let answered = self.settle_answer(&txn, answer, now).await?;
        Ok((answered.outcome, txn.request_id))
    }

    /// The checks after the device proved its key: expected device, its
    /// user, fitness, network; then the outcome is recorded once.
    async fn settle_answer(
        &self,
        txn: &DeviceAuthTxn,
        answer: Answer<'_>,
        now: DateTime<Utc>,
    ) -> Result<AnswerOutcome, CoreError> {
        let device = answer.device;
        let Some((subject, policy)) = answer.subject else {
            return Err(DeviceAuthError::Refused(DeviceRefusal::UnknownDevice).into());
        };
        let hostname = subject.hostname.clone();
        let failure = if !answer.verified {
            Some(DeviceAuthFailure::BadSignature {
                device: hostname.clone(),
            })
        } else if !txn.expected_devices.contains(device.id()) {
            Some(DeviceAuthFailure::OtherUser {
                device: hostname.clone(),
            })
        } else if !answer.number_matches {
            Some(DeviceAuthFailure::WrongNumber {
                device: hostname.clone(),
            })
        } else {
            match answer.user.filter(|u| u.status == UserStatus::Active) {
                None => Some(DeviceAuthFailure::OtherUser {
                    device: hostname.clone(),
                }),
                Some(user) => {
                    let policy = policy
                        .as_ref()
                        .map(|p| (p.name.as_str(), p.document.as_str()));
                    let view = crate::core::policies::view_under(subject, policy, now);
                    device_fitness(&view.device, &view.compliance, &user.email)
                }
            }
        };
        let failure = failure.or_else(|| {
            let same_ip = answer.peer_ip.is_some_and(|ip| ip == txn.browser_ip);
            (txn.mode == DevicePolicy::Bound && self.settings.bound_requires_same_ip && !same_ip)
                .then(|| DeviceAuthFailure::WrongNetwork {
                    device: hostname.clone(),
                })
        });
        if let Some(failure) = failure {
            self.fail_txn(txn, Some(device.id()), failure.clone(), now)
                .await?;
            return Ok(AnswerOutcome {
                outcome: TxnOutcome::Failed(failure),
                handoff: None,
            });
        }
        // A `bound` answer becomes a sign-in only when its proof comes back
        // from the browser session (unless the answer arrived through that
        // browser itself, as on the mobile path).
        let proof = (txn.mode == DevicePolicy::Bound && answer.delivered.is_none())
            .then(|| proof::new_proof(self.issuer(), &txn.id))
            .transpose()?;
        let confirmed = self
            .store
            .answer_txn(
                &txn.id,
                TxnUpdate {
                    device_id: Some(device.id()),
                    outcome: &TxnOutcome::Confirmed,
                    proof: proof.as_ref().map(NewProof::hashes),
                    delivered: answer.delivered,
                },
                now,
            )
            .await?;
        if !confirmed {
            return Err(CoreError::FailedPrecondition(
                "this sign-in was answered already".into(),
            ));
        }
        self.device_auth_waiters.wake(&txn.id);
        Ok(AnswerOutcome {
            outcome: TxnOutcome::Confirmed,
            handoff: proof.map(|p| p.handoff),
        })
    }
}

fn base64_url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}
