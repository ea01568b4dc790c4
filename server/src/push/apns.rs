//! APNs for MDM: the push that tells an Apple device to check in and fetch
//! its commands. A push carries no command, only the device's PushMagic:
//! `POST /3/device/<hex token>` with `apns-push-type: mdm`, `apns-topic`
//! the push certificate's topic, and the body exactly `{"mdm":"<PushMagic>"}`
//! (Apple, "Sending MDM commands to a device"; `../shared/notes/apple.md`
//! §7). The push certificate is the TLS client certificate.
//!
//! [`Apns`] is the seam: [`A2Apns`] sends through the `a2` crate, one client
//! per topic over HTTP/2, many pushes in flight at once; [`RecordingApns`]
//! stands in for Apple in tests, which cannot reach it and whose endpoint
//! `a2` does not let us change, and hands each push to whoever plays the
//! device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use latchkey_certs::PrivateKeyPem;

use crate::domain::apple::push::{PushOutcome, PushTarget};

/// How long APNs keeps a push for a device that is offline: it delivers
/// the latest one when the device comes back, which then checks in.
const PUSH_EXPIRATION: Duration = Duration::days(3);

/// Pushes in flight at once per [`A2Apns::push`] call (HTTP/2 streams over
/// the topic's connection; APNs allows many concurrent streams).
const CONCURRENT_PUSHES: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ApnsError {
    #[error("the push certificate or key cannot be used for APNs: {0}")]
    Certificate(String),
}

/// Sends MDM pushes. Implementations must send the pushes of one call
/// concurrently, and answer one outcome per target, in order.
pub trait Apns: Send + Sync {
    /// Uses this certificate and key for `topic` from now on (a renewal
    /// replaces the previous client; other topics stay).
    fn install(
        &self,
        topic: &str,
        certificate_pem: &str,
        key: &PrivateKeyPem,
    ) -> Result<(), ApnsError>;

    fn push<'a>(
        &'a self,
        targets: &'a [PushTarget],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Vec<PushOutcome>>;
}

/// Which APNs environment `a2` talks to (its endpoints are fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApnsEnvironment {
    Production,
    /// For devices whose profile sets `UseDevelopmentAPNS`.
    Sandbox,
}

/// The body and headers of one MDM push, as `a2` sends them.
#[derive(Debug, serde::Serialize)]
struct MdmPush<'a> {
    mdm: &'a str,
    #[serde(skip)]
    options: a2::NotificationOptions<'a>,
    #[serde(skip)]
    device_token: &'a str,
}

impl<'a> a2::request::payload::PayloadLike for MdmPush<'a> {
    fn get_device_token(&self) -> &'a str {
        self.device_token
    }

    fn get_options(&self) -> &a2::NotificationOptions<'_> {
        &self.options
    }
}

fn mdm_push<'a>(
    topic: &'a str,
    hex_token: &'a str,
    push_magic: &'a str,
    now: DateTime<Utc>,
) -> MdmPush<'a> {
    MdmPush {
        mdm: push_magic,
        options: a2::NotificationOptions {
            apns_push_type: Some(a2::PushType::Mdm),
            apns_topic: Some(topic),
            apns_expiration: u64::try_from((now + PUSH_EXPIRATION).timestamp()).ok(),
            ..Default::default()
        },
        device_token: hex_token,
    }
}

/// The outcome of one `a2` send.
fn outcome(result: Result<a2::Response, a2::Error>) -> PushOutcome {
    match result {
        Ok(_) => PushOutcome::Sent,
        Err(a2::Error::ResponseError(response)) => {
            let reason = response
                .error
                .as_ref()
                .map(|e| format!("{:?}", e.reason))
                .unwrap_or_else(|| "no reason given".into());
            match response.code {
                410 => PushOutcome::Unregistered,
                429 | 500..=599 => PushOutcome::Unavailable {
                    reason: format!("{} {reason}", response.code),
                },
                status => PushOutcome::Rejected { status, reason },
            }
        }
        Err(other) => PushOutcome::Unavailable {
            reason: other.to_string(),
        },
    }
}

/// APNs through the `a2` crate.
pub struct A2Apns {
    environment: ApnsEnvironment,
    clients: RwLock<HashMap<String, Arc<a2::Client>>>,
}

impl A2Apns {
    pub fn new(environment: ApnsEnvironment) -> Self {
        A2Apns {
            environment,
            clients: RwLock::default(),
        }
    }

    fn client(&self, topic: &str) -> Option<Arc<a2::Client>> {
        self.clients.read().ok()?.get(topic).cloned()
    }

    async fn send_one(&self, target: &PushTarget, now: DateTime<Utc>) -> PushOutcome {
        let Some(client) = self.client(&target.topic) else {
            return PushOutcome::Unavailable {
                reason: format!("no push certificate for topic {}", target.topic),
            };
        };
        let token = hex::encode(&target.token);
        outcome(
            client
                .send(mdm_push(&target.topic, &token, &target.push_magic, now))
                .await,
        )
    }
}

impl Apns for A2Apns {
    fn install(
        &self,
        topic: &str,
        certificate_pem: &str,
        key: &PrivateKeyPem,
    ) -> Result<(), ApnsError> {
        let config = a2::ClientConfig::new(match self.environment {
            ApnsEnvironment::Production => a2::Endpoint::Production,
            ApnsEnvironment::Sandbox => a2::Endpoint::Sandbox,
        });
        let client = a2::Client::certificate_parts(
            certificate_pem.as_bytes(),
            key.expose().as_bytes(),
            config,
        )
        .map_err(|e| ApnsError::Certificate(e.to_string()))?;
        if let Ok(mut clients) = self.clients.write() {
            clients.insert(topic.to_owned(), Arc::new(client));
        }
        Ok(())
    }

    fn push<'a>(
        &'a self,
        targets: &'a [PushTarget],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Vec<PushOutcome>> {
        let sends: Vec<_> = targets.iter().map(|t| self.send_one(t, now)).collect();
        Box::pin(async move {
            futures_util::stream::iter(sends)
                .buffered(CONCURRENT_PUSHES)
                .collect()
                .await
        })
    }
}

/// One push as [`RecordingApns`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPush {
    pub target: PushTarget,
    /// The JSON body `a2` would have sent.
    pub body: String,
    pub at: DateTime<Utc>,
}

type PushHandler = dyn Fn(&PushTarget) -> PushOutcome + Send + Sync;

/// APNs for tests: records every push with the body that would have gone
/// out, and answers with what its handler says (by default "sent"). A
/// test's handler wakes the simulated device the token belongs to, or
/// answers 410 for a token it wants unregistered.
pub struct RecordingApns {
    topics: Mutex<Vec<String>>,
    pushes: Mutex<Vec<RecordedPush>>,
    handler: Box<PushHandler>,
    /// Tokens APNs answers 410 Unregistered for, before the handler.
    unregistered: Mutex<std::collections::HashSet<Vec<u8>>>,
    /// Every push as it happens, for simulated devices that wait for one.
    live: tokio::sync::broadcast::Sender<RecordedPush>,
}

impl Default for RecordingApns {
    fn default() -> Self {
        Self::with_handler(|_| PushOutcome::Sent)
    }
}

impl RecordingApns {
    pub fn with_handler(
        handler: impl Fn(&PushTarget) -> PushOutcome + Send + Sync + 'static,
    ) -> Self {
        RecordingApns {
            topics: Mutex::default(),
            pushes: Mutex::default(),
            handler: Box::new(handler),
            unregistered: Mutex::default(),
            live: tokio::sync::broadcast::channel(16_384).0,
        }
    }

    /// The pushes from now on, as they happen.
    pub fn watch(&self) -> tokio::sync::broadcast::Receiver<RecordedPush> {
        self.live.subscribe()
    }

    /// Every push so far, oldest first.
    pub fn pushes(&self) -> Vec<RecordedPush> {
        self.pushes.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// From now on, pushes to `token` are answered 410 Unregistered (as
    /// APNs answers for an app removed or a device erased).
    pub fn unregister(&self, token: &[u8]) {
        if let Ok(mut unregistered) = self.unregistered.lock() {
            unregistered.insert(token.to_vec());
        }
    }

    /// Pushes to `token` are answered by the handler again.
    pub fn reregister(&self, token: &[u8]) {
        if let Ok(mut unregistered) = self.unregistered.lock() {
            unregistered.remove(token);
        }
    }

    /// The topics a certificate was installed for, in order.
    pub fn installed_topics(&self) -> Vec<String> {
        self.topics.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl Apns for RecordingApns {
    fn install(
        &self,
        topic: &str,
        _certificate_pem: &str,
        _key: &PrivateKeyPem,
    ) -> Result<(), ApnsError> {
        if let Ok(mut topics) = self.topics.lock() {
            topics.push(topic.to_owned());
        }
        Ok(())
    }

    fn push<'a>(
        &'a self,
        targets: &'a [PushTarget],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Vec<PushOutcome>> {
        use a2::request::payload::PayloadLike;
        let mut outcomes = Vec::with_capacity(targets.len());
        for target in targets {
            let token = hex::encode(&target.token);
            let body = mdm_push(&target.topic, &token, &target.push_magic, now)
                .to_json_string()
                .unwrap_or_default();
            let recorded = RecordedPush {
                target: target.clone(),
                body,
                at: now,
            };
            if let Ok(mut pushes) = self.pushes.lock() {
                pushes.push(recorded.clone());
            }
            let unregistered = self
                .unregistered
                .lock()
                .is_ok_and(|u| u.contains(&target.token));
            let outcome = if unregistered {
                PushOutcome::Unregistered
            } else {
                (self.handler)(target)
            };
            if outcome == PushOutcome::Sent {
                // No one listening is not an error: no device was woken.
                let _ = self.live.send(recorded);
            }
            outcomes.push(outcome);
        }
        Box::pin(std::future::ready(outcomes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use a2::request::payload::PayloadLike;

    #[test]
    fn an_mdm_push_is_the_push_magic_alone_with_the_mdm_push_type_and_the_topic() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let push = mdm_push("com.apple.mgmt.External.abc", "00ff", "MAGIC-1", now);
        assert_eq!(push.to_json_string().unwrap(), r#"{"mdm":"MAGIC-1"}"#);
        let options = push.get_options();
        assert_eq!(options.apns_push_type, Some(a2::PushType::Mdm));
        assert_eq!(options.apns_topic, Some("com.apple.mgmt.External.abc"));
        assert_eq!(options.apns_expiration, Some(1_800_000_000 + 3 * 24 * 3600));
        assert_eq!(push.get_device_token(), "00ff");
    }

    #[test]
    fn apns_answers_become_outcomes_410_unregistered_and_overload_retried() {
        let response = |code: u16| {
            Err(a2::Error::ResponseError(a2::Response {
                error: None,
                apns_id: None,
                code,
            }))
        };
        assert_eq!(outcome(response(410)), PushOutcome::Unregistered);
        assert!(matches!(
            outcome(response(429)),
            PushOutcome::Unavailable { .. }
        ));
        assert!(matches!(
            outcome(response(503)),
            PushOutcome::Unavailable { .. }
        ));
        assert!(matches!(
            outcome(response(400)),
            PushOutcome::Rejected { status: 400, .. }
        ));
        assert_eq!(
            outcome(Ok(a2::Response {
                error: None,
                apns_id: Some("id".into()),
                code: 200
            })),
            PushOutcome::Sent
        );
    }

    #[test]
    fn a_topic_without_a_certificate_is_unavailable_not_a_panic() {
        let apns = A2Apns::new(ApnsEnvironment::Production);
        let target = PushTarget {
            device: crate::domain::ids::DeviceId::generate(),
            topic: "com.apple.mgmt.External.none".into(),
            token: vec![1, 2, 3],
            push_magic: "m".into(),
        };
        let now = Utc::now();
        let outcomes = futures_executor_block_on(apns.push(std::slice::from_ref(&target), now));
        assert!(matches!(
            outcomes.as_slice(),
            [PushOutcome::Unavailable { reason }] if reason.contains("no push certificate")
        ));
    }

    fn futures_executor_block_on<T>(future: BoxFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}
