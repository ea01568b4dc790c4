//! The Apple channel's port: an Apple device that has work is woken with
//! an MDM push, then checks in and fetches its commands one by one
//! (`api/apple`, `core::apple`). The port hands no command over; it looks
//! up where the device's push goes (the triple of its latest TokenUpdate),
//! pushes, and records how the push ended on the device's enrollment.
//! A device APNs reports unregistered (410) is not pushed again until a
//! TokenUpdate brings a new token.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::apns::Apns;
use super::port::{Handover, PortError, WorkPort};
use crate::domain::apple::push::PushOutcome;
use crate::domain::command::Command;
use crate::domain::device::Channel;
use crate::domain::ids::DeviceId;
use crate::store::Store;

pub struct AppleWake {
    store: Store,
    apns: Arc<dyn Apns>,
}

impl AppleWake {
    pub fn new(store: Store, apns: Arc<dyn Apns>) -> Self {
        AppleWake { store, apns }
    }
}

fn unavailable(reason: String) -> PortError {
    PortError::Unavailable {
        channel: Channel::APPLE,
        reason,
    }
}

impl WorkPort for AppleWake {
    fn channel(&self) -> &'static str {
        Channel::APPLE
    }

    fn has_work<'a>(
        &'a self,
        device: &'a DeviceId,
        _commands: &'a [Command],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Handover, PortError>> {
        Box::pin(async move {
            let target = self
                .store
                .apple_push_target(device)
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .ok_or_else(|| {
                    unavailable(
                        "the device cannot be pushed: it has not finished enrolling, \
                         checked out, or APNs no longer knows its token"
                            .into(),
                    )
                })?;
            let outcome = self
                .apns
                .push(std::slice::from_ref(&target), now)
                .await
                .into_iter()
                .next()
                .unwrap_or(PushOutcome::Unavailable {
                    reason: "no answer from the APNs sender".into(),
                });
            self.store
                .record_apple_push(device, &outcome, now)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            match outcome {
                PushOutcome::Sent => Ok(Handover::default()),
                other => Err(unavailable(other.summary())),
            }
        })
    }
}
