//! Group commit for enrollments. Enrollments arrive in bursts (a fleet
//! rollout, a lab of machines imaged at once); writing each in its own
//! transaction makes the database the bottleneck. The writer takes every
//! enrollment that is waiting, consumes their tokens and inserts their
//! devices, certificates and audit entries in one transaction, and answers
//! each caller. An enrollment is never reported done before its commit.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{CoreError, InternalError};
use crate::domain::audit::AuditEntry;
use crate::domain::device::Device;
use crate::domain::ids::{DeviceId, TokenId};
use crate::store::{NewCertificate, Store, StoreResult};

/// Most enrollments written in one transaction.
const MAX_BATCH: usize = 256;

pub(super) struct PendingEnrollment {
    pub token: TokenId,
    pub device: Device,
    pub certificate: NewCertificate,
    pub audit: AuditEntry,
    pub now: DateTime<Utc>,
    /// `Ok(true)` when written; `Ok(false)` when the token had no use left.
    pub reply: oneshot::Sender<Result<bool, CoreError>>,
}

/// The task side of the queue; `lib.rs` runs it.
pub struct EnrollmentWriter {
    queue: mpsc::Receiver<PendingEnrollment>,
    store: Store,
}

pub(super) fn channel(store: Store) -> (mpsc::Sender<PendingEnrollment>, EnrollmentWriter) {
    let (sender, queue) = mpsc::channel(4 * MAX_BATCH);
    (sender, EnrollmentWriter { queue, store })
}

impl EnrollmentWriter {
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => break,
                next = self.queue.recv() => match next {
                    Some(pending) => pending,
                    None => break,
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.queue.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: Vec<PendingEnrollment>) {
        // A caller that gave up (timeout, disconnect) would never receive its
        // certificate: write nothing for it, and keep its token's use.
        let batch: Vec<PendingEnrollment> =
            batch.into_iter().filter(|p| !p.reply.is_closed()).collect();
        if batch.is_empty() {
            return;
        }
        match self.try_write(&batch).await {
            Ok(accepted) => {
                for (pending, accepted) in batch.into_iter().zip(accepted) {
                    let _ = pending.reply.send(Ok(accepted));
                }
            }
            Err(e) => {
                warn!(error = %e, enrollments = batch.len(), "enrollment batch failed");
                let e = Arc::new(e);
                for pending in batch {
                    let failed = CoreError::Internal(InternalError::Store(e.clone()));
                    let _ = pending.reply.send(Err(failed));
                }
            }
        }
    }

    async fn try_write(&self, batch: &[PendingEnrollment]) -> StoreResult<Vec<bool>> {
        let Some(now) = batch.iter().map(|p| p.now).max() else {
            return Ok(Vec::new());
        };
        let mut per_token: HashMap<&TokenId, Vec<usize>> = HashMap::new();
        for (index, pending) in batch.iter().enumerate() {
            per_token.entry(&pending.token).or_default().push(index);
        }
        let mut accepted = vec![false; batch.len()];
        let tx = self.store.begin().await?;
        for (token, indexes) in per_token {
            let count = u32::try_from(indexes.len()).unwrap_or(u32::MAX);
            if tx.consume_enrollment_uses(token, count, now).await? {
                for index in indexes {
                    if let Some(slot) = accepted.get_mut(index) {
                        *slot = true;
                    }
                }
                continue;
            }
            // Not every use fits: hand out what is left in arrival order.
            for index in indexes {
                if !tx.consume_enrollment_uses(token, 1, now).await? {
                    break;
                }
                if let Some(slot) = accepted.get_mut(index) {
                    *slot = true;
                }
            }
        }
        let written = || {
            batch
                .iter()
                .zip(&accepted)
                .filter(|(_, a)| **a)
                .map(|(p, _)| p)
        };
        let devices: Vec<Device> = written().map(|p| p.device.clone()).collect();
        let certificates: Vec<(DeviceId, NewCertificate)> = written()
            .map(|p| (p.device.id.clone(), p.certificate.clone()))
            .collect();
        let audits: Vec<AuditEntry> = written().map(|p| p.audit.clone()).collect();
        tx.insert_devices(&devices).await?;
        tx.insert_certificates(&certificates).await?;
        tx.audit_many(&audits).await?;
        tx.commit().await?;
        Ok(accepted)
    }
}
