//! How a device's confirmation reaches the browser that signed in.
//!
//! In `bound` mode the server never completes a sign-in on its own word.
//! When it accepts a device's signed answer it hands the agent two
//! one-time proofs, storing only their hashes: a redemption link the
//! agent opens in the user's default browser, and a short code the agent
//! shows in a dialog on the device. The transaction completes only when
//! one of them comes back from the browser session that started it. An
//! attacker who signed in with a phished password and got the victim's
//! agent to answer their transaction gains nothing: the link lands in the
//! victim's browser, which holds another session (or none), and the code
//! is on the victim's screen.
//!
//! In `confirm` mode the device is a second factor anywhere: the browser
//! shows a two-digit number that is never sent to the device, and the
//! user types it there (number matching). New transactions are limited
//! per session and per user, so repeated pushes stop.

use chrono::{DateTime, Duration, Utc};

use crate::core::CoreError;
use crate::core::auth::{self, DeviceChannel};
use crate::core::sso::SignIn;
use crate::domain::app::DevicePolicy;
use crate::domain::audit::{Actor, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::ids::{AuthRequestId, DeviceAuthTxnId};
use crate::domain::sign_in::TxnOutcome;
use crate::domain::sign_in::{Delivery, DeviceAuthFailure, DeviceAuthTxn, LoginEvent, SsoSession};
use crate::store::ProofHashes;

/// How long after the device answered its proof may reach the browser.
pub const DELIVERY_TTL: Duration = Duration::seconds(120);
/// Wrong codes the waiting page accepts per transaction.
pub const CODE_ATTEMPTS: i32 = 5;
/// `confirm` requests (pushes to the user's devices) a session, and a
/// user's sign-ins together, may start within [`TXN_WINDOW`]: a few
/// retries, never a stream of pushes.
pub const CONFIRM_TXNS_PER_SESSION: u64 = 5;
pub const CONFIRM_TXNS_PER_USER: u64 = 10;
/// `bound` requests push nothing (the user starts each one from the page),
/// so they are bounded per session only: a user's many browsers and
/// devices may each sign in.
pub const BOUND_TXNS_PER_SESSION: u64 = 20;
pub const TXN_WINDOW: Duration = Duration::minutes(10);
/// Digits of the code the device shows.
pub const CODE_DIGITS: usize = 8;

/// What the agent receives for a `bound` answer the server accepted.
#[derive(Debug, Clone)]
pub struct ProofHandoff {
    /// `https://<issuer>/login/device/redeem?txn=…&proof=…`, to open in
    /// the user's default browser.
    pub redeem_url: String,
    /// The code to show on the device, for sign-ins the link cannot reach.
    pub code: String,
}

/// A new pair of one-time proofs and the hashes the store keeps.
pub(super) struct NewProof {
    pub handoff: ProofHandoff,
    link_hash: String,
    code_hash: String,
}

impl NewProof {
    pub fn hashes(&self) -> ProofHashes<'_> {
        ProofHashes {
            link: &self.link_hash,
            code: &self.code_hash,
        }
    }
}

fn link_hash(txn_id: &DeviceAuthTxnId, secret: &str) -> String {
    hex::encode(latchkey_certs::sha256(
        format!("latchkey-device-proof:{txn_id}:{secret}").as_bytes(),
    ))
}

fn code_hash(txn_id: &DeviceAuthTxnId, code: &str) -> String {
    hex::encode(latchkey_certs::sha256(
        format!("latchkey-device-code:{txn_id}:{code}").as_bytes(),
    ))
}

pub(super) fn new_proof(issuer: &str, txn_id: &DeviceAuthTxnId) -> Result<NewProof, CoreError> {
    let secret = hex::encode(latchkey_certs::random_bytes::<32>()?);
    let bytes = latchkey_certs::random_bytes::<8>()?;
    let code = format!("{:08}", u64::from_be_bytes(bytes) % 100_000_000);
    Ok(NewProof {
        link_hash: link_hash(txn_id, &secret),
        code_hash: code_hash(txn_id, &code),
        handoff: ProofHandoff {
            redeem_url: format!(
                "{}/login/device/redeem?txn={txn_id}&proof={secret}",
                issuer.trim_end_matches('/')
            ),
            code,
        },
    })
}

/// The two-digit number a `confirm` sign-in shows in the browser.
pub(super) fn match_number() -> Result<String, CoreError> {
    let bytes = latchkey_certs::random_bytes::<4>()?;
    Ok(format!("{}", 10 + u32::from_be_bytes(bytes) % 90))
}

/// A typed code in its canonical form: eight ASCII digits, whatever
/// spaces, hyphens or full-width digits (a Japanese input method's) were
/// typed around them; `None` when it cannot be a code.
pub fn normalize_code(typed: &str) -> Option<String> {
    let mut digits = String::new();
    for c in typed.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '０'..='９' => {
                let value = u32::from(c) - u32::from('０');
                digits.push(char::from_digit(value, 10)?);
            }
            ' ' | '\u{3000}' | '-' | '－' | 'ー' | '\t' => {}
            _ => return None,
        }
        if digits.len() > CODE_DIGITS {
            return None;
        }
    }
    (digits.len() == CODE_DIGITS).then_some(digits)
}

/// The sign-in a redemption link belongs to, as the page in another
/// browser describes it.
#[derive(Debug, Clone)]
pub struct SignInContext {
    pub app_name: String,
    pub browser: String,
    pub ip: String,
    pub started_at: DateTime<Utc>,
}

/// What a redemption link did.
#[derive(Debug, Clone)]
pub enum RedeemOutcome {
    /// It came from the session that started the sign-in, which goes on.
    Delivered { request_id: AuthRequestId },
    /// It came from another browser: nothing completes.
    OtherBrowser(SignInContext),
    /// Unknown, spent or expired.
    Invalid,
}

/// What a code typed on the waiting page did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCodeOutcome {
    Delivered,
    /// Wrong; this many guesses are left.
    Rejected {
        left: i32,
    },
    /// The device has not answered yet: no code exists.
    NotAnswered,
    /// No guesses left: the sign-in failed.
    TooMany,
    /// Nothing is waiting for a code.
    Expired,
}

/// Where a `bound` transaction's proof is, as its agent asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Nothing has arrived yet.
    Waiting,
    /// The proof reached the session that started the sign-in.
    Delivered,
    /// The link arrived in a browser without that session: the code is
    /// the way left.
    OtherBrowser,
    /// The transaction is over (failed, expired or not the device's).
    Over,
}

impl SignIn {
    /// Device requests the session may still start, or the failure to
    /// show when it has started too many (repeated pushes stop).
    pub(super) async fn txn_allowance(
        &self,
        session: &SsoSession,
        user: &crate::domain::ids::UserId,
        mode: DevicePolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceAuthFailure>, CoreError> {
        let (per_session, per_user) = match mode {
            DevicePolicy::Confirm => (CONFIRM_TXNS_PER_SESSION, CONFIRM_TXNS_PER_USER),
            _ => (BOUND_TXNS_PER_SESSION, u64::MAX),
        };
        let (by_session, by_user) = self
            .store
            .recent_txns(&session.id, user, mode, now - TXN_WINDOW)
            .await?;
        Ok((by_session >= per_session || by_user >= per_user)
            .then_some(DeviceAuthFailure::TooManyRequests))
    }

    /// `GET /login/device/redeem`: the agent opened the one-time link in a
    /// browser. It is spent whichever browser brought it; only the session
    /// that started the sign-in receives the proof. A link in any other
    /// browser is recorded in the sign-in history and the audit log: the
    /// device answered a sign-in its user's browser did not start.
    pub async fn redeem_link(
        &self,
        session: Option<&SsoSession>,
        txn_id: &DeviceAuthTxnId,
        secret: &str,
        browser: &super::BrowserContext,
        now: DateTime<Utc>,
    ) -> Result<RedeemOutcome, CoreError> {
        if secret.len() != 64 {
            return Ok(RedeemOutcome::Invalid);
        }
        let tx = self.store.begin().await?;
        if !tx
            .spend_redemption_link(txn_id, &link_hash(txn_id, secret), now - DELIVERY_TTL, now)
            .await?
        {
            return Ok(RedeemOutcome::Invalid);
        }
        let Some(txn) = tx.txn(txn_id).await? else {
            return Ok(RedeemOutcome::Invalid);
        };
        let ours = session.is_some_and(|s| s.id == txn.session_id);
        if ours
            && tx
                .deliver_proof(txn_id, &txn.session_id, Delivery::Link, now)
                .await?
        {
            tx.commit().await?;
            self.device_auth_waiters.wake(txn_id);
            return Ok(RedeemOutcome::Delivered {
                request_id: txn.request_id,
            });
        }
        let app_name = tx
            .app_by_client_id(&txn.client_id)
            .await?
            .map_or_else(|| txn.client_id.to_string(), |(app, _)| app.name);
        // A redemption link exists only once a device has answered, so the
        // transaction names that device.
        let device = txn
            .device_id
            .clone()
            .map_or(Actor::UnknownDevice, Actor::Device);
        tx.insert_login_event(&LoginEvent {
            at: now,
            user_id: Some(txn.user_id.clone()),
            login: String::new(),
            ip: browser.ip.clone(),
            user_agent: browser.user_agent.clone(),
            client_id: Some(txn.client_id.clone()),
            device_id: txn.device_id.clone(),
            method: "device".into(),
            result: "failed".into(),
            reason: Some("other_browser".into()),
        })
        .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: device,
            action: AuditAction::SsoDeviceAnswerUnfinished,
            target: txn.user_id.to_string(),
            outcome: AuditOutcome::Denied,
            detail: format!(
                "the device answered a sign-in to {app_name} started by {} at {}; its redemption link arrived in another browser ({} at {})",
                latchkey_proto::text::browser_summary(&txn.browser_ua),
                txn.browser_ip,
                latchkey_proto::text::browser_summary(&browser.user_agent),
                browser.ip,
            ),
        })
        .await?;
        tx.commit().await?;
        self.device_auth_waiters.wake(txn_id);
        Ok(RedeemOutcome::OtherBrowser(SignInContext {
            app_name,
            browser: latchkey_proto::text::browser_summary(&txn.browser_ua),
            ip: txn.browser_ip,
            started_at: txn.created_at,
        }))
    }

    /// A code typed on the waiting page of `request_id`: accepted only from
    /// the session that started the transaction, at most
    /// [`CODE_ATTEMPTS`] guesses per transaction.
    pub async fn submit_device_code(
        &self,
        session: &SsoSession,
        request_id: &str,
        typed: &str,
        now: DateTime<Utc>,
    ) -> Result<DeviceCodeOutcome, CoreError> {
        if request_id.len() > 16 * 1024 {
            return Ok(DeviceCodeOutcome::Expired);
        }
        let Some(key) = super::request_key(request_id) else {
            return Ok(DeviceCodeOutcome::Expired);
        };
        let Some(txn) = self
            .store
            .latest_txn(&key)
            .await?
            .filter(|t| t.session_id == session.id && t.mode == DevicePolicy::Bound)
        else {
            return Ok(DeviceCodeOutcome::Expired);
        };
        match &txn.outcome {
            TxnOutcome::Pending if txn.expires_at > now => {
                return Ok(DeviceCodeOutcome::NotAnswered);
            }
            TxnOutcome::Confirmed if txn.delivered.is_none() => {}
            _ => return Ok(DeviceCodeOutcome::Expired),
        }
        let answered_after = now - DELIVERY_TTL;
        if txn.answered_at.is_none_or(|at| at <= answered_after) {
            return Ok(DeviceCodeOutcome::Expired);
        }
        if !self
            .store
            .spend_code_attempt(&txn.id, &session.id, CODE_ATTEMPTS)
            .await?
        {
            return Ok(DeviceCodeOutcome::TooMany);
        }
        let delivered = match normalize_code(typed) {
            Some(code) => {
                self.store
                    .deliver_by_code(
                        &txn.id,
                        &session.id,
                        &code_hash(&txn.id, &code),
                        answered_after,
                        now,
                    )
                    .await?
            }
            None => false,
        };
        if delivered {
            self.device_auth_waiters.wake(&txn.id);
            return Ok(DeviceCodeOutcome::Delivered);
        }
        let left = CODE_ATTEMPTS - (txn.code_attempts + 1);
        self.store
            .insert_login_event(&LoginEvent {
                at: now,
                user_id: Some(txn.user_id.clone()),
                login: String::new(),
                ip: session.ip.clone(),
                user_agent: session.user_agent.clone(),
                client_id: Some(txn.client_id.clone()),
                device_id: txn.device_id.clone(),
                method: "device-code".into(),
                result: "failed".into(),
                reason: Some("bad_code".into()),
            })
            .await?;
        if left <= 0 {
            return Ok(DeviceCodeOutcome::TooMany);
        }
        Ok(DeviceCodeOutcome::Rejected { left })
    }

    /// Where the proof of `txn_id`, which the calling device answered, is
    /// now; the agent asks so it shows its code only when the link did not
    /// reach the sign-in.
    pub async fn device_auth_delivery(
        &self,
        leaf_der: Option<&[u8]>,
        txn_id: Option<&DeviceAuthTxnId>,
        now: DateTime<Utc>,
    ) -> Result<DeliveryState, CoreError> {
        let leaf = auth::read_leaf(leaf_der, now)?;
        let (device, facts) = self
            .device_auth_facts(leaf, txn_id, DeviceChannel::DeviceApi)
            .await?;
        let Some(txn) = facts
            .txn
            .filter(|t| t.device_id.as_ref() == Some(device.id()))
        else {
            return Ok(DeliveryState::Over);
        };
        Ok(delivery_state(&txn, now))
    }
}

/// A transaction's delivery as its agent sees it.
pub(super) fn delivery_state(txn: &DeviceAuthTxn, now: DateTime<Utc>) -> DeliveryState {
    if txn.delivered.is_some() {
        return DeliveryState::Delivered;
    }
    let open = txn.outcome == TxnOutcome::Confirmed
        && txn.answered_at.is_some_and(|at| at + DELIVERY_TTL > now);
    match (open, txn.link_opened_at) {
        (false, _) => DeliveryState::Over,
        (true, Some(_)) => DeliveryState::OtherBrowser,
        (true, None) => DeliveryState::Waiting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_codes_accept_spaces_hyphens_and_full_width_digits() {
        assert_eq!(normalize_code("1234 5678").as_deref(), Some("12345678"));
        assert_eq!(normalize_code(" 1234-5678 ").as_deref(), Some("12345678"));
        assert_eq!(
            normalize_code("１２３４　５６７８").as_deref(),
            Some("12345678")
        );
        assert_eq!(normalize_code("1234567"), None);
        assert_eq!(normalize_code("123456789"), None);
        assert_eq!(normalize_code("1234567a"), None);
        assert_eq!(normalize_code(""), None);
        assert_eq!(normalize_code(&"1".repeat(10_000)), None);
    }

    #[test]
    fn proofs_are_fresh_and_stored_only_as_hashes() {
        let (t1, t2) = (
            DeviceAuthTxnId::from_bytes([1; 16]),
            DeviceAuthTxnId::from_bytes([2; 16]),
        );
        let a = new_proof("https://id.example.com/", &t1).unwrap();
        let b = new_proof("https://id.example.com", &t1).unwrap();
        assert_ne!(a.handoff.redeem_url, b.handoff.redeem_url);
        assert!(a.handoff.redeem_url.starts_with(&format!(
            "https://id.example.com/login/device/redeem?txn={t1}&proof="
        )));
        assert_eq!(a.handoff.code.len(), CODE_DIGITS);
        assert!(!a.link_hash.contains(&a.handoff.code));
        assert_eq!(a.code_hash, code_hash(&t1, &a.handoff.code));
        assert_ne!(code_hash(&t1, "12345678"), code_hash(&t2, "12345678"));
    }

    #[test]
    fn match_numbers_have_two_digits() {
        for _ in 0..200 {
            let n = match_number().unwrap();
            assert_eq!(n.len(), 2);
            assert!(n.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
