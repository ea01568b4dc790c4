//! The agent's side of device-bound login.
//!
//! A sign-in page opens `latchkey://device-auth?txn=…`; the URL handler
//! (`latchkey-agent open-url`) hands it to the running agent over a local
//! channel (`local.rs`). The agent fetches the challenge over its mTLS
//! channel, signs `{txn, nonce, device_id, aud, iat}` with the device key
//! and sends the answer back the same way. In `bound` mode an accepted
//! answer returns a one-time redemption link and code, which the URL
//! handler brings to the user's browser (or shows, for sign-ins the link
//! cannot reach). In `confirm` mode the server asks over MQTT instead, and
//! the person at the device types the number the browser shows, which goes
//! into the signed statement.

use std::sync::Arc;

use latchkey_proto::v1::{self, device_service_client::DeviceServiceClient};
use tokio::sync::Mutex;
use tonic::transport::Channel;

use crate::enroll::{self, EnrollError};
use crate::keystore;
use crate::state::{StateDir, StateError};

/// The `typ` of the statement the agent signs; the server checks it.
pub const STATEMENT_TYP: &str = "latchkey-device-auth+jwt";

#[derive(Debug, thiserror::Error)]
pub enum DeviceAuthError {
    #[error("not a Latchkey sign-in link: {0}")]
    BadUrl(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Connect(#[from] EnrollError),
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("cannot sign: {0}")]
    Sign(#[from] latchkey_certs::CertError),
    #[error("the sign-in was not confirmed on this device")]
    Declined,
}

/// The transaction id in a `latchkey://device-auth?txn=…` URL.
pub fn txn_from_url(url: &str) -> Result<String, DeviceAuthError> {
    let bad = || DeviceAuthError::BadUrl(url.chars().take(200).collect());
    let rest = url.strip_prefix("latchkey://device-auth").ok_or_else(bad)?;
    let query = rest.strip_prefix('/').unwrap_or(rest);
    let query = query.strip_prefix('?').ok_or_else(bad)?;
    let txn = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "txn")
        .map(|(_, v)| v)
        .ok_or_else(bad)?;
    let canonical = txn.len() == 32 && txn.bytes().all(|b| b.is_ascii_hexdigit());
    if !canonical {
        return Err(bad());
    }
    Ok(txn.to_ascii_lowercase())
}

/// The number a person typed for a `confirm` challenge, or `None` when
/// they declined.
pub type NumberSource = Arc<dyn Fn(&v1::DeviceAuthChallenge) -> Option<String> + Send + Sync>;

/// How the agent gets the number the browser shows, for a `confirm`-mode
/// request. There is no way to approve without it: number matching is what
/// keeps a push the user did not start from being approved by reflex.
#[derive(Clone, Default)]
pub enum Approval {
    /// Ask the person at the device to type it (a desktop prompt).
    #[default]
    Ask,
    /// The number from elsewhere: tests, which read it from the page.
    Typed(NumberSource),
}

impl std::fmt::Debug for Approval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Approval::Ask => "Ask",
            Approval::Typed(_) => "Typed",
        })
    }
}

/// What happened to one answer, and in `bound` mode what the user's
/// browser must receive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub confirmed: bool,
    /// The failed check, e.g. `device_locked`; empty when confirmed.
    pub failure: String,
    pub message: String,
    /// `bound`, confirmed: the one-time link to open in the user's browser.
    pub redeem_url: String,
    /// `bound`, confirmed: the code for sign-ins the link cannot reach.
    pub code: String,
    /// The sign-in, for the dialog that shows the code.
    pub app_name: String,
    /// The browser that started it ("Chrome 156 · Windows") and its address.
    pub browser: String,
    pub browser_ip: String,
    /// The issuer, whose sign-in page alone may receive the code.
    pub issuer: String,
}

/// Where a `bound` answer's proof is, as the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Waiting,
    Delivered,
    OtherBrowser,
    Over,
}

impl Delivery {
    pub fn parse(text: &str) -> Delivery {
        match text {
            "waiting" => Delivery::Waiting,
            "delivered" => Delivery::Delivered,
            "other_browser" => Delivery::OtherBrowser,
            _ => Delivery::Over,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Waiting => "waiting",
            Delivery::Delivered => "delivered",
            Delivery::OtherBrowser => "other_browser",
            Delivery::Over => "over",
        }
    }
}

/// Answers device-auth requests with the device key over mTLS, reusing one
/// gRPC channel (reconnecting after a certificate renewal).
#[derive(Clone)]
pub struct Answerer {
    state: StateDir,
    channel: Arc<Mutex<Option<(String, Channel)>>>,
    approval: Approval,
}

impl Answerer {
    pub fn new(state: StateDir, approval: Approval) -> Self {
        Answerer {
            state,
            channel: Arc::new(Mutex::new(None)),
            approval,
        }
    }

    async fn client(&self) -> Result<DeviceServiceClient<Channel>, DeviceAuthError> {
        let chain = self.state.certificate_chain()?;
        let mut cached = self.channel.lock().await;
        if let Some((for_chain, channel)) = cached.as_ref()
            && *for_chain == chain
        {
            return Ok(DeviceServiceClient::new(channel.clone()));
        }
        let enrollment = self.state.enrollment()?;
        let key = keystore::load(&self.state)?;
        let ca = self.state.ca()?.ok_or(StateError::NotEnrolled)?;
        let channel =
            enroll::channel(&enrollment.server_url, &ca, Some((chain.as_str(), &key))).await?;
        *cached = Some((chain, channel.clone()));
        Ok(DeviceServiceClient::new(channel))
    }

    /// Fetches, (in confirm mode) approves, signs and answers `txn_id`.
    pub async fn answer(
        &self,
        txn_id: &str,
        confirm_mode_expected: bool,
    ) -> Result<Report, DeviceAuthError> {
        let mut client = self.client().await?;
        let challenge = client
            .get_device_auth(v1::GetDeviceAuthRequest {
                txn_id: txn_id.to_owned(),
            })
            .await
            .map_err(|s| DeviceAuthError::Refused(s.message().to_owned()))?
            .into_inner();
        // A sign-in pushed over MQTT is always a `confirm` request: the
        // person at the device must type the browser's number whatever the
        // challenge says.
        let number = if challenge.mode == "confirm" || confirm_mode_expected {
            let typed = match &self.approval {
                Approval::Typed(source) => {
                    let (source, challenge) = (Arc::clone(source), challenge.clone());
                    tokio::task::spawn_blocking(move || source(&challenge))
                        .await
                        .ok()
                        .flatten()
                }
                Approval::Ask => {
                    let prompt = crate::platform::prompt::NumberPrompt {
                        app: challenge.app_name.clone(),
                        user: challenge.user_email.clone(),
                        browser: latchkey_proto::text::browser_summary(
                            &challenge.browser_user_agent,
                        ),
                        ip: challenge.browser_ip.clone(),
                    };
                    tokio::task::spawn_blocking(move || prompt.ask())
                        .await
                        .ok()
                        .flatten()
                }
            };
            Some(typed.ok_or(DeviceAuthError::Declined)?)
        } else {
            None
        };
        let signed = sign_statement(&self.state, &challenge, number.as_deref())?;
        let answer = client
            .answer_device_auth(v1::AnswerDeviceAuthRequest { signed })
            .await
            .map_err(|s| DeviceAuthError::Refused(s.message().to_owned()))?
            .into_inner();
        Ok(Report {
            confirmed: answer.confirmed,
            failure: answer.failure,
            message: answer.message,
            redeem_url: answer.redeem_url,
            code: answer.code,
            app_name: challenge.app_name,
            browser: latchkey_proto::text::browser_summary(&challenge.browser_user_agent),
            browser_ip: challenge.browser_ip,
            issuer: challenge.audience,
        })
    }

    /// Where the proof of a `bound` answer this device gave is; the server
    /// waits up to about ten seconds for it to move.
    pub async fn await_delivery(&self, txn_id: &str) -> Result<Delivery, DeviceAuthError> {
        let mut client = self.client().await?;
        let state = client
            .await_device_auth_delivery(v1::AwaitDeviceAuthDeliveryRequest {
                txn_id: txn_id.to_owned(),
            })
            .await
            .map_err(|s| DeviceAuthError::Refused(s.message().to_owned()))?
            .into_inner()
            .state;
        Ok(Delivery::parse(&state))
    }
}

/// The device's answer to `challenge`: `{txn, nonce, device_id, aud, iat}`
/// signed with the device key as a compact JWS.
pub fn sign_statement(
    state: &StateDir,
    challenge: &v1::DeviceAuthChallenge,
    number: Option<&str>,
) -> Result<String, DeviceAuthError> {
    let enrollment = state.enrollment()?;
    let key = keystore::load(state)?;
    let signing_key = latchkey_certs::jose::SigningKey::from_pkcs8_pem(key.expose())?;
    statement_signed_by(&signing_key, &enrollment.device_id, challenge, number)
}

/// The answer to `challenge` in the name of `device_id`, signed with `key`;
/// in `confirm` mode with the number the person typed.
pub fn statement_signed_by(
    key: &latchkey_certs::jose::SigningKey,
    device_id: &str,
    challenge: &v1::DeviceAuthChallenge,
    number: Option<&str>,
) -> Result<String, DeviceAuthError> {
    let mut statement = serde_json::json!({
        "txn": challenge.txn_id,
        "nonce": challenge.nonce,
        "device_id": device_id,
        "aud": challenge.audience,
        "iat": chrono::Utc::now().timestamp(),
    });
    if let (Some(number), Some(fields)) = (number, statement.as_object_mut()) {
        fields.insert("number".into(), serde_json::Value::from(number.trim()));
    }
    Ok(latchkey_certs::jose::compact_jws(
        key,
        STATEMENT_TYP,
        device_id,
        statement.to_string().as_bytes(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_device_auth_links_with_a_canonical_txn_parse() {
        let txn = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            txn_from_url(&format!("latchkey://device-auth?txn={txn}")).unwrap(),
            txn
        );
        assert_eq!(
            txn_from_url(&format!("latchkey://device-auth/?x=1&txn={txn}")).unwrap(),
            txn
        );
        assert!(
            txn_from_url("https://evil.example/?txn=0123456789abcdef0123456789abcdef").is_err()
        );
        assert!(txn_from_url("latchkey://device-auth?txn=../../etc").is_err());
        assert!(txn_from_url("latchkey://wipe?txn=0123456789abcdef0123456789abcdef").is_err());
    }
}
