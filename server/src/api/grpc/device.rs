//! `DeviceService`: enrollment, certificate renewal, and the device's side
//! of device-bound login.

use std::sync::Arc;

use chrono::Utc;
use latchkey_proto::v1::{
    self, AnswerDeviceAuthRequest, AnswerDeviceAuthResponse, AwaitDeviceAuthDeliveryRequest,
    DeviceAuthChallenge, DeviceAuthDelivery, EnrollRequest, EnrollResponse, GetDeviceAuthRequest,
    RenewRequest, RenewResponse, device_service_server::DeviceService,
};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::status;
use crate::core::Core;
use crate::core::auth::AuthenticatedDevice;
use crate::core::auth::DeviceChannel;
use crate::core::sso::DeliveryState;
use crate::domain::device::DeviceFacts;
use crate::domain::ids::DeviceAuthTxnId;
use crate::domain::sign_in::DeviceAuthFailure;
use crate::domain::sign_in::TxnOutcome;

pub struct DeviceApi {
    core: Arc<Core>,
}

impl DeviceApi {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

fn facts(facts: Option<v1::DeviceFacts>) -> DeviceFacts {
    let f = facts.unwrap_or_default();
    DeviceFacts {
        hostname: f.hostname,
        platform: f.platform,
        os_version: f.os_version,
        machine_id: f.machine_id,
        serial: f.serial,
        model: f.model,
    }
}

impl DeviceApi {
    async fn device<T>(&self, request: &Request<T>) -> Result<AuthenticatedDevice, Status> {
        let certs = request.peer_certs();
        let leaf = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
        self.core
            .enrollment
            .authenticate_device(leaf, DeviceChannel::DeviceApi, Utc::now())
            .await
            .map_err(status)
    }
}

/// What the agent tells the person at the device about a refused answer.
fn failure_message(failure: &DeviceAuthFailure) -> String {
    match failure {
        DeviceAuthFailure::NoDevice => "no device is bound to this user".into(),
        DeviceAuthFailure::NotAnswered => "the sign-in expired before this device answered".into(),
        DeviceAuthFailure::DeviceLocked { .. } => {
            "this device is locked by your IT department; sign-in refused".into()
        }
        DeviceAuthFailure::DeviceRetired { .. } => "this device is no longer managed".into(),
        DeviceAuthFailure::NotCompliant { checks, .. } => format!(
            "this device is not compliant: {}",
            checks
                .iter()
                .map(|c| c.detail.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        DeviceAuthFailure::OtherUser { .. } => {
            "this device is bound to another user; sign-in refused".into()
        }
        DeviceAuthFailure::WrongNetwork { .. } => {
            "the browser that started this sign-in is not on this device".into()
        }
        DeviceAuthFailure::BadSignature { .. } => {
            "the answer's signature did not verify; sign-in refused".into()
        }
        DeviceAuthFailure::WrongNumber { .. } => {
            "the number typed on this device is not the one the browser showed; sign-in refused"
                .into()
        }
        DeviceAuthFailure::NotDelivered { .. } => {
            "the confirmation never reached the browser that signed in".into()
        }
        DeviceAuthFailure::TooManyCodes => {
            "too many wrong codes were typed; sign-in refused".into()
        }
        DeviceAuthFailure::TooManyRequests => {
            "too many sign-in requests in a short time; try again later".into()
        }
    }
}

#[tonic::async_trait]
impl DeviceService for DeviceApi {
    #[instrument(skip_all)]
    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let request = request.into_inner();
        let enrolled = self
            .core
            .enrollment
            .enroll(
                &request.token,
                &request.csr_der,
                facts(request.facts),
                Utc::now(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(EnrollResponse {
            device_id: enrolled.device_id.to_string(),
            certificate_chain_pem: enrolled.certificate_chain_pem,
            ca_pem: enrolled.ca_pem,
            mqtt_url: enrolled.mqtt_url,
        }))
    }

    #[instrument(skip_all)]
    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let now = Utc::now();
        let device = self.device(&request).await?;
        let chain = self
            .core
            .enrollment
            .renew(&device, &request.into_inner().csr_der, now)
            .await
            .map_err(status)?;
        Ok(Response::new(RenewResponse {
            certificate_chain_pem: chain,
        }))
    }

    #[instrument(skip_all)]
    async fn get_device_auth(
        &self,
        request: Request<GetDeviceAuthRequest>,
    ) -> Result<Response<DeviceAuthChallenge>, Status> {
        let certs = request.peer_certs();
        let leaf = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
        // An id of another shape names no transaction; the device is still
        // authenticated first.
        let txn_id = DeviceAuthTxnId::parse(&request.get_ref().txn_id);
        let challenge = self
            .core
            .sign_in
            .device_auth_challenge(leaf, txn_id.as_ref(), Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(DeviceAuthChallenge {
            txn_id: challenge.txn_id.to_string(),
            nonce: challenge.nonce,
            audience: challenge.audience,
            app_name: challenge.app_name,
            user_email: challenge.user_email,
            mode: challenge.mode.as_str().to_owned(),
            expires_at: challenge.expires_at.timestamp(),
            browser_ip: challenge.browser_ip,
            browser_user_agent: challenge.browser_user_agent,
            started_at: challenge.started_at.timestamp(),
        }))
    }

    #[instrument(skip_all)]
    async fn answer_device_auth(
        &self,
        request: Request<AnswerDeviceAuthRequest>,
    ) -> Result<Response<AnswerDeviceAuthResponse>, Status> {
        let certs = request.peer_certs();
        let leaf = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
        let peer_ip = request
            .remote_addr()
            .map(|a| a.ip().to_canonical().to_string());
        let answered = self
            .core
            .sign_in
            .answer_device_auth(
                leaf,
                peer_ip.as_deref(),
                &request.get_ref().signed,
                Utc::now(),
            )
            .await
            .map_err(status)?;
        let (redeem_url, code) = answered
            .handoff
            .map(|h| (h.redeem_url, h.code))
            .unwrap_or_default();
        Ok(Response::new(match answered.outcome {
            TxnOutcome::Confirmed | TxnOutcome::Pending => AnswerDeviceAuthResponse {
                confirmed: true,
                failure: String::new(),
                message: "sign-in confirmed; return to your browser".into(),
                redeem_url,
                code,
            },
            TxnOutcome::Failed(failure) => AnswerDeviceAuthResponse {
                confirmed: false,
                failure: failure.code().to_owned(),
                message: failure_message(&failure),
                redeem_url: String::new(),
                code: String::new(),
            },
        }))
    }

    #[instrument(skip_all)]
    async fn await_device_auth_delivery(
        &self,
        request: Request<AwaitDeviceAuthDeliveryRequest>,
    ) -> Result<Response<DeviceAuthDelivery>, Status> {
        let certs = request.peer_certs();
        let leaf = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
        let state = match DeviceAuthTxnId::parse(&request.get_ref().txn_id) {
            Some(txn_id) => {
                crate::api::long_poll::until_moved(&self.core, &txn_id, DELIVERY_WAIT, || {
                    let txn_id = &txn_id;
                    async move {
                        let state = self
                            .core
                            .sign_in
                            .device_auth_delivery(leaf, Some(txn_id), Utc::now())
                            .await?;
                        Ok((state, state != DeliveryState::Waiting))
                    }
                })
                .await
            }
            // An id of another shape names no transaction: once the device
            // is authenticated there is nothing to wait for.
            None => {
                self.core
                    .sign_in
                    .device_auth_delivery(leaf, None, Utc::now())
                    .await
            }
        }
        .map_err(status)?;
        Ok(Response::new(DeviceAuthDelivery {
            state: match state {
                DeliveryState::Waiting => "waiting",
                DeliveryState::Delivered => "delivered",
                DeliveryState::OtherBrowser => "other_browser",
                DeliveryState::Over => "over",
            }
            .to_owned(),
        }))
    }
}

/// How long one `AwaitDeviceAuthDelivery` call waits for the proof to move.
const DELIVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
