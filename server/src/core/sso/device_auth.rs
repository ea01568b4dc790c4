//! The device step as the browser sees it: which devices may confirm a
//! sign-in (the chooser), starting a device-auth transaction, failing one
//! (with its history row), reading its state for the waiting page, and
//! whether a device is fit to confirm a sign-in for a user now
//! ([`device_fitness`], also run at every refresh).
//!
//! A confirmation the session already holds counts again only if it is of
//! the kind the app needs ([`confirmation_counts`]) and the device still
//! passes every check.
//!
//! This file does not read or check what a device sends
//! (`device_answer.rs`), and does not carry a `bound` proof to the browser
//! (`proof.rs`).

use chrono::{DateTime, Utc};

use super::{DeliveryState, LoginFailure, Step, TXN_TTL, proof, random_hex};
use crate::core::CoreError;
use crate::core::sso::SignIn;
use crate::domain::app::{App, DevicePolicy};
use crate::domain::device::{Device, DeviceState};
use crate::domain::ids::{DeviceAuthTxnId, DeviceId};
use crate::domain::policy::Compliance;
use crate::domain::sign_in::AuthRequest;
use crate::domain::sign_in::Delivery;
use crate::domain::sign_in::DeviceAuthFailure;
use crate::domain::sign_in::DeviceAuthTxn;
use crate::domain::sign_in::DeviceConfirmation;
use crate::domain::sign_in::DeviceProof;
use crate::domain::sign_in::FailedCheckView;
use crate::domain::sign_in::LoginEvent;
use crate::domain::sign_in::SsoSession;
use crate::domain::sign_in::TxnOutcome;
use crate::domain::user::User;
use crate::store::TxnUpdate;

/// A device as the chooser page shows it.
#[derive(Debug, Clone)]
pub struct DeviceChoice {
    pub id: DeviceId,
    pub hostname: String,
    pub platform: String,
    pub model: String,
    pub state: DeviceState,
}

impl SignIn {
    /// The device confirmation the session holds, if it still counts for
    /// `app`: the device is still fit for the user, and for a `bound` app
    /// it was a `bound` (or certificate) confirmation made from the address
    /// the browser has now. A `confirm` approval never opens a `bound` app.
    pub(super) async fn held_confirmation(
        &self,
        session: &SsoSession,
        app: &App,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<Option<Device>, CoreError> {
        let Some(held) = &session.device else {
            return Ok(None);
        };
        if !confirmation_counts(held, app.device_policy, &session.ip) {
            return Ok(None);
        }
        let view = self.policies.compliance_of(&held.device_id, now).await?;
        Ok(device_fitness(&view.device, &view.compliance, &user.email)
            .is_none()
            .then_some(view.device))
    }

    /// Settles the device requirement: `Ok` with the confirming device
    /// (and the session's new cookie secret when this step took the
    /// confirmation), or the step the browser must see instead.
    pub(super) async fn device_step(
        &self,
        session: &mut SsoSession,
        request: &AuthRequest,
        app: &App,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<Result<(Device, Option<String>), Step>, CoreError> {
        // A device confirmation the session holds still counts if it is of
        // the kind this app needs and the device passes every check.
        if let Some(device) = self.held_confirmation(session, app, user, now).await? {
            return Ok(Ok((device, None)));
        }
        let devices: Vec<Device> = self
            .store
            .devices_of_user(&user.email)
            .await?
            .into_iter()
            .filter(|d| !d.state.is_final())
            .collect();
        let choices: Vec<DeviceChoice> = devices.iter().map(choice).collect();
        match self.store.latest_txn(&request.id).await? {
            Some(txn) if txn.session_id == session.id => match &txn.outcome {
                TxnOutcome::Confirmed if txn.awaiting_proof() => {
                    // The device answered; its proof has not come back
                    // from this browser yet (the link or the code).
                    if txn.code_attempts >= proof::CODE_ATTEMPTS {
                        return Ok(Err(Step::Failed(LoginFailure::Device(
                            DeviceAuthFailure::TooManyCodes,
                        ))));
                    }
                    let open = txn
                        .answered_at
                        .is_some_and(|at| at + proof::DELIVERY_TTL > now);
                    if open {
                        let devices = choices
                            .into_iter()
                            .filter(|c| txn.expected_devices.contains(&c.id))
                            .collect();
                        return Ok(Err(Step::DeviceAuth {
                            txn: Box::new(txn),
                            devices,
                        }));
                    }
                    let hostname = devices
                        .iter()
                        .find(|d| Some(&d.id) == txn.device_id.as_ref())
                        .map(|d| d.hostname.clone())
                        .unwrap_or_default();
                    let failure = DeviceAuthFailure::NotDelivered { device: hostname };
                    if self.store.redeem_txn(&txn.id, &session.id, now).await? {
                        self.login_event(
                            session,
                            Some(&app.client_id),
                            ("device", "failed", Some(failure.code().to_owned())),
                            Some(user),
                            txn.device_id.as_ref(),
                            now,
                        )
                        .await?;
                    }
                    return Ok(Err(Step::Failed(LoginFailure::Device(failure))));
                }
                TxnOutcome::Confirmed => {
                    if !self.store.redeem_txn(&txn.id, &session.id, now).await? {
                        return Ok(Err(Step::Failed(LoginFailure::Expired)));
                    }
                    let Some(device_id) = txn.device_id.clone() else {
                        return Ok(Err(Step::Failed(LoginFailure::Expired)));
                    };
                    // The checks ran when the device answered; run them
                    // again, since a lock may have landed in between.
                    let view = self.policies.compliance_of(&device_id, now).await?;
                    if let Some(failure) =
                        device_fitness(&view.device, &view.compliance, &user.email)
                    {
                        return Ok(Err(Step::Failed(LoginFailure::Device(failure))));
                    }
                    let proof = match (txn.mode, txn.delivered.map(|(how, _)| how)) {
                        (DevicePolicy::Confirm, _) => DeviceProof::Confirm,
                        (_, Some(Delivery::Certificate)) => DeviceProof::Certificate,
                        _ => DeviceProof::Bound,
                    };
                    session.device = Some(DeviceConfirmation {
                        device_id,
                        proof,
                        ip: session.ip.clone(),
                    });
                    let Some(secret) = self.save_session_auth(session).await? else {
                        return Ok(Err(Step::Failed(LoginFailure::Expired)));
                    };
                    return Ok(Ok((view.device, Some(secret))));
                }
                TxnOutcome::Failed(failure) => {
                    return Ok(Err(Step::Failed(LoginFailure::Device(failure.clone()))));
                }
                TxnOutcome::Pending if txn.expires_at > now => {
                    let devices = choices
                        .into_iter()
                        .filter(|c| txn.expected_devices.contains(&c.id))
                        .collect();
                    return Ok(Err(Step::DeviceAuth {
                        txn: Box::new(txn),
                        devices,
                    }));
                }
                TxnOutcome::Pending => {
                    let failure = DeviceAuthFailure::NotAnswered;
                    self.fail_txn(&txn, None, failure.clone(), now).await?;
                    return Ok(Err(Step::Failed(LoginFailure::Device(failure))));
                }
            },
            _ => {}
        }
        match devices.as_slice() {
            [] => {
                let failure = DeviceAuthFailure::NoDevice;
                self.login_event(
                    session,
                    Some(&app.client_id),
                    ("device", "failed", Some(failure.code().to_owned())),
                    Some(user),
                    None,
                    now,
                )
                .await?;
                Ok(Err(Step::Failed(LoginFailure::Device(failure))))
            }
            [only] => {
                let txn = match self
                    .start_txn(session, request, app, user, vec![only.id.clone()], now)
                    .await?
                {
                    Ok(txn) => txn,
                    Err(failure) => return Ok(Err(Step::Failed(LoginFailure::Device(failure)))),
                };
                Ok(Err(Step::DeviceAuth {
                    txn: Box::new(txn),
                    devices: choices,
                }))
            }
            _ => Ok(Err(Step::ChooseDevice(choices))),
        }
    }

    /// Starts a device-auth transaction for the device the user chose (or,
    /// with `None`, for all of their devices again after a failure).
    pub async fn choose_device(
        &self,
        session: &SsoSession,
        request_id: &str,
        device: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Step, CoreError> {
        // Nothing is pushed to a device before everything ahead of the
        // device step holds.
        let (request, app, user) = match self.signed_in_for(session, request_id, true, now).await? {
            Ok(ready) => ready,
            Err(step) => return Ok(step),
        };
        if app.device_policy == DevicePolicy::None {
            return self.next_step(session, request_id, now).await;
        }
        let devices: Vec<Device> = self
            .store
            .devices_of_user(&user.email)
            .await?
            .into_iter()
            .filter(|d| !d.state.is_final())
            .collect();
        let expected: Vec<DeviceId> = match device {
            Some(id) => devices
                .iter()
                .filter(|d| d.id.as_str() == id)
                .map(|d| d.id.clone())
                .collect(),
            None if devices.len() == 1 => devices.iter().map(|d| d.id.clone()).collect(),
            None => return Ok(Step::ChooseDevice(devices.iter().map(choice).collect())),
        };
        if expected.is_empty() {
            return Ok(Step::ChooseDevice(devices.iter().map(choice).collect()));
        }
        let txn = match self
            .start_txn(session, &request, &app, &user, expected, now)
            .await?
        {
            Ok(txn) => txn,
            Err(failure) => return Ok(Step::Failed(LoginFailure::Device(failure))),
        };
        let devices = devices
            .iter()
            .filter(|d| txn.expected_devices.contains(&d.id))
            .map(choice)
            .collect();
        Ok(Step::DeviceAuth {
            txn: Box::new(txn),
            devices,
        })
    }

    async fn start_txn(
        &self,
        session: &SsoSession,
        request: &AuthRequest,
        app: &App,
        user: &User,
        expected: Vec<DeviceId>,
        now: DateTime<Utc>,
    ) -> Result<Result<DeviceAuthTxn, DeviceAuthFailure>, CoreError> {
        if let Some(failure) = self
            .txn_allowance(session, &user.id, app.device_policy, now)
            .await?
        {
            self.login_event(
                session,
                Some(&app.client_id),
                ("device", "failed", Some(failure.code().to_owned())),
                Some(user),
                None,
                now,
            )
            .await?;
            return Ok(Err(failure));
        }
        let short_code = match app.device_policy {
            DevicePolicy::Confirm => proof::match_number()?,
            _ => String::new(),
        };
        let txn = DeviceAuthTxn {
            id: DeviceAuthTxnId::from_bytes(latchkey_certs::random_bytes::<16>()?),
            nonce: random_hex::<32>()?,
            short_code,
            mode: app.device_policy,
            request_id: request.id.clone(),
            session_id: session.id.clone(),
            user_id: user.id.clone(),
            client_id: app.client_id.clone(),
            expected_devices: expected,
            browser_ip: session.ip.clone(),
            browser_ua: session.user_agent.clone(),
            created_at: now,
            expires_at: now + TXN_TTL,
            device_id: None,
            answered_at: None,
            outcome: TxnOutcome::Pending,
            code_attempts: 0,
            link_opened_at: None,
            delivered: None,
            redeemed_at: None,
        };
        self.store.insert_txn(&txn).await?;
        if txn.mode == DevicePolicy::Confirm {
            for device in &txn.expected_devices {
                self.push.device_auth_request(device, &txn.id);
            }
        }
        Ok(Ok(txn))
    }

    pub(super) async fn fail_txn(
        &self,
        txn: &DeviceAuthTxn,
        device: Option<&DeviceId>,
        failure: DeviceAuthFailure,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let outcome = TxnOutcome::Failed(failure.clone());
        // The outcome and its history row are written together.
        let tx = self.store.begin().await?;
        let recorded = tx
            .answer_txn(
                &txn.id,
                TxnUpdate {
                    device_id: device,
                    outcome: &outcome,
                    proof: None,
                    delivered: None,
                },
                now,
            )
            .await?;
        if recorded {
            tx.insert_login_event(&LoginEvent {
                at: now,
                user_id: Some(txn.user_id.clone()),
                login: String::new(),
                ip: txn.browser_ip.clone(),
                user_agent: txn.browser_ua.clone(),
                client_id: Some(txn.client_id.clone()),
                device_id: device.cloned(),
                method: "device".into(),
                result: "failed".into(),
                reason: Some(failure.code().to_owned()),
            })
            .await?;
        }
        tx.commit().await?;
        if recorded {
            self.device_auth_waiters.wake(&txn.id);
        }
        Ok(recorded)
    }

    /// The state of a transaction as its own session sees it (`None` for
    /// any other session). A pending transaction past its expiry reads as
    /// failed: nobody answered.
    pub async fn device_auth_state(
        &self,
        session: &SsoSession,
        txn_id: &DeviceAuthTxnId,
        now: DateTime<Utc>,
    ) -> Result<Option<TxnOutcome>, CoreError> {
        let Some(txn) = self
            .store
            .txn(txn_id)
            .await?
            .filter(|t| t.session_id == session.id)
        else {
            return Ok(None);
        };
        if txn.outcome == TxnOutcome::Pending && txn.expires_at <= now {
            return Ok(Some(TxnOutcome::Failed(DeviceAuthFailure::NotAnswered)));
        }
        if txn.awaiting_proof() {
            // The page waits for the link or the code; once the time for
            // them has passed, the sign-in page says so.
            return Ok(Some(match proof::delivery_state(&txn, now) {
                DeliveryState::Over => TxnOutcome::Failed(DeviceAuthFailure::NotDelivered {
                    device: String::new(),
                }),
                _ => TxnOutcome::Pending,
            }));
        }
        Ok(Some(txn.outcome))
    }

    /// Woken when an answer to `txn_id` is taken in this process. Register
    /// (enable the `notified` future) before reading the state, so an
    /// answer in between is not missed.
    pub fn device_auth_waiter(
        &self,
        txn_id: &DeviceAuthTxnId,
    ) -> std::sync::Arc<tokio::sync::Notify> {
        self.device_auth_waiters.waiter(txn_id)
    }

    /// Forgets a transaction's waiter once nobody holds it.
    pub fn release_device_auth_waiter(&self, txn_id: &DeviceAuthTxnId) {
        self.device_auth_waiters.prune(txn_id);
    }
}

fn choice(device: &Device) -> DeviceChoice {
    DeviceChoice {
        id: device.id.clone(),
        hostname: device.hostname.clone(),
        platform: device.platform.clone(),
        model: device.model.clone(),
        state: device.state,
    }
}

/// Whether a device confirmation a session holds satisfies an app's device
/// policy for a browser at `ip`: a `bound` app takes only a `bound` (or
/// certificate) confirmation made from the same address; a `confirm` app
/// takes any.
pub fn confirmation_counts(held: &DeviceConfirmation, policy: DevicePolicy, ip: &str) -> bool {
    match policy {
        DevicePolicy::None | DevicePolicy::Confirm => true,
        DevicePolicy::Bound => held.proof.is_bound() && held.ip == ip,
    }
}

/// Why a device may not confirm a login for `user` now, if it may not.
pub(crate) fn device_fitness(
    device: &Device,
    compliance: &Compliance,
    user_email: &str,
) -> Option<DeviceAuthFailure> {
    let name = device.hostname.clone();
    if device.user.as_deref() != Some(user_email) {
        return Some(DeviceAuthFailure::OtherUser { device: name });
    }
    match device.state {
        DeviceState::Active => {}
        DeviceState::Locked | DeviceState::Lost | DeviceState::WipePending => {
            return Some(DeviceAuthFailure::DeviceLocked { device: name });
        }
        DeviceState::Retired | DeviceState::Wiped | DeviceState::AwaitingEnrollment => {
            return Some(DeviceAuthFailure::DeviceRetired { device: name });
        }
    }
    match compliance {
        Compliance::Compliant => None,
        Compliance::NonCompliant(failed) => Some(DeviceAuthFailure::NotCompliant {
            device: name,
            checks: failed
                .iter()
                .map(|f| FailedCheckView {
                    check: f.check.to_owned(),
                    detail: f.detail.clone(),
                })
                .collect(),
        }),
        Compliance::Unknown => Some(DeviceAuthFailure::NotCompliant {
            device: name,
            checks: vec![FailedCheckView {
                check: "posture".into(),
                detail: "the device has not reported its posture yet".into(),
            }],
        }),
    }
}
