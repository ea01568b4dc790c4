//! The audit service: the one way every other service writes the audit
//! log, the permission check whose refusals it records, and reading the
//! log back. Refusals of callers nobody authenticated pass the flood gate
//! first.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::CoreError;
use super::auth::{AuthenticatedAdmin, AuthenticatedDevice, Permission};
use super::flood::FloodGate;
use crate::domain::audit::{AdminRequest, AuditAction, AuditEntry, AuditEvent, AuditOutcome};
use crate::store::Store;

/// Cheap to clone: every service that writes the log holds one.
#[derive(Clone)]
pub struct Audit {
    pub(super) store: Store,
    pub(super) unauthenticated_denials: Arc<FloodGate>,
}

impl Audit {
    /// Writes one entry outside any transaction (a change and its entry
    /// that must stand or fall together are written in the change's
    /// transaction instead, with `Tx::audit`).
    pub(crate) async fn record(&self, entry: AuditEntry) -> Result<(), CoreError> {
        self.store.audit(&entry).await?;
        Ok(())
    }

    /// Checks `permission`; a refusal is audited and returned.
    pub(crate) async fn authorize(
        &self,
        admin: &AuthenticatedAdmin,
        permission: Permission,
        request: AdminRequest,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        if admin.may(permission) {
            return Ok(());
        }
        let detail = format!("role {} lacks {permission:?}", admin.role().as_str());
        Err(self.refuse(admin, request, target, detail, now).await)
    }

    /// Records that `admin` was refused `request` (on `target`, for the
    /// reason `detail`) and returns the refusal, for a rule beyond the
    /// role's permissions, such as only an owner adding owners.
    pub(crate) async fn refuse(
        &self,
        admin: &AuthenticatedAdmin,
        request: AdminRequest,
        target: &str,
        detail: String,
        now: DateTime<Utc>,
    ) -> CoreError {
        let recorded = self
            .record(AuditEntry {
                at: now,
                actor: admin.actor(),
                action: AuditAction::PermissionDenied(request),
                target: target.to_owned(),
                outcome: AuditOutcome::Denied,
                detail,
            })
            .await;
        match recorded {
            Ok(()) => CoreError::PermissionDenied {
                role: admin.role().as_str(),
                action: request,
            },
            Err(e) => e,
        }
    }

    pub async fn list(
        &self,
        caller: &AuthenticatedAdmin,
        since: DateTime<Utc>,
        limit: u64,
        now: DateTime<Utc>,
    ) -> Result<Vec<AuditEvent>, CoreError> {
        self.authorize(
            caller,
            Permission::ReadAudit,
            AdminRequest::ReadAuditLog,
            "",
            now,
        )
        .await?;
        Ok(self.store.list_audit(since, limit).await?)
    }

    /// Records what an authenticated device was refused (it broke a
    /// channel's rules); the entry names the device as its actor.
    pub async fn record_device(
        &self,
        device: &AuthenticatedDevice,
        entry: AuditEntry,
    ) -> Result<(), CoreError> {
        debug_assert_eq!(entry.actor, device.actor());
        self.record(entry).await
    }

    /// Records a refusal of a caller nobody authenticated, within the
    /// flood gate's bound.
    pub async fn record_unauthenticated(
        &self,
        entry: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let rows = self.unauthenticated_denials.admit(entry, now);
        self.store.audit_many(&rows).await?;
        Ok(())
    }
}
