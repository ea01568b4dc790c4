//! The Apple channel's port: an Apple device that has work is woken with
//! an MDM push, then checks in and fetches its commands one by one
//! (`api/apple`, `core::apple`). The port hands no command over; it looks
//! up where the device's push goes (the triple of its latest TokenUpdate),
//! pushes, and records how the push ended on the device's enrollment.
//! A device APNs reports unregistered (410) is not pushed again until a
//! TokenUpdate brings a new token.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::apns::Apns;
use super::port::{Handover, PortError, Work, WorkPort};
use crate::domain::apple::push::{PushOutcome, PushTarget};
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

impl AppleWake {
    /// Pushes every device that can be pushed, and records each push's
    /// result, in a few statements for the lot: one answer per device, in
    /// order.
    async fn wake(
        &self,
        devices: &[DeviceId],
        now: DateTime<Utc>,
    ) -> Vec<Result<Handover, PortError>> {
        let every = |reason: String| -> Vec<Result<Handover, PortError>> {
            devices
                .iter()
                .map(|_| Err(unavailable(reason.clone())))
                .collect()
        };
        let mut targets = match self.store.apple_push_targets(devices).await {
            Ok(targets) => targets,
            Err(e) => return every(e.to_string()),
        };
        let to_push: Vec<PushTarget> = devices
            .iter()
            .filter_map(|device| targets.remove(device))
            .collect();
        let outcomes = self.apns.push(&to_push, now).await;
        let pushed: Vec<(PushTarget, PushOutcome)> = to_push
            .into_iter()
            .zip(
                outcomes
                    .into_iter()
                    .chain(std::iter::repeat(PushOutcome::Unavailable {
                        reason: "no answer from the APNs sender".into(),
                    })),
            )
            .collect();
        if let Err(e) = self.store.record_apple_pushes(&pushed, now).await {
            // The pushes went out: each device's own outcome stands.
            tracing::warn!(error = %e, "could not record the pushes' results");
        }
        let outcomes: HashMap<DeviceId, PushOutcome> = pushed
            .into_iter()
            .map(|(target, outcome)| (target.device, outcome))
            .collect();
        devices
            .iter()
            .map(|device| match outcomes.get(device) {
                Some(PushOutcome::Sent) => Ok(Handover::default()),
                Some(other) => Err(unavailable(other.summary())),
                None => Err(unavailable(
                    "the device cannot be pushed: it has not finished enrolling, \
                     checked out, or APNs no longer knows its token"
                        .into(),
                )),
            })
            .collect()
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
            self.wake(std::slice::from_ref(device), now)
                .await
                .into_iter()
                .next()
                .unwrap_or_else(|| Err(unavailable("no answer from the APNs sender".into())))
        })
    }

    fn have_work<'a>(
        &'a self,
        work: &'a [Work],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Vec<Result<Handover, PortError>>> {
        Box::pin(async move {
            let devices: Vec<DeviceId> = work.iter().map(|w| w.device.clone()).collect();
            self.wake(&devices, now).await
        })
    }
}
