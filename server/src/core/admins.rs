//! The admins service: authenticating an admin's token, the first owner,
//! adding and listing admins.

use chrono::{DateTime, Utc};

use super::auth::{self, AuthenticatedAdmin, Permission};
use super::{Audit, CoreError, validate_email};
use crate::domain::admin::{Admin, Role};
use crate::domain::audit::{Actor, AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::ids::AdminId;
use crate::store::Store;

/// Admins: their tokens, the first owner, adding and listing them.
pub struct Admins {
    pub(super) store: Store,
    pub(super) audit: Audit,
}

impl Admins {
    pub async fn authenticate_admin(
        &self,
        token: &str,
    ) -> Result<Option<AuthenticatedAdmin>, CoreError> {
        Ok(auth::authenticate_admin(&self.store, token).await?)
    }

    /// Creates the first owner when there is no admin yet; returns its token.
    pub async fn bootstrap_owner(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, CoreError> {
        if self.store.count_admins().await? > 0 {
            return Ok(None);
        }
        let (token, hash) = auth::new_secret(auth::ADMIN_TOKEN_PREFIX)?;
        let admin = Admin {
            id: AdminId::generate(),
            email: email.to_owned(),
            role: Role::Owner,
            created_at: now,
        };
        let tx = self.store.begin().await?;
        tx.insert_admin(&admin, &hash).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: Actor::System,
            action: AuditAction::AdminBootstrap,
            target: email.to_owned(),
            outcome: AuditOutcome::Ok,
            detail: "first owner created at first start".into(),
        })
        .await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    pub async fn add_admin(
        &self,
        caller: &AuthenticatedAdmin,
        email: &str,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<(Admin, String), CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageAdmins,
                AdminRequest::AddAdmins,
                email,
                now,
            )
            .await?;
        let role = Role::parse(role).ok_or_else(|| {
            CoreError::InvalidArgument(format!(
                "unknown role {role:?}; use owner, admin, helpdesk or auditor"
            ))
        })?;
        if role == Role::Owner && caller.role() != Role::Owner {
            let detail = format!("role {} may not add owners", caller.role().as_str());
            return Err(self
                .audit
                .refuse(caller, AdminRequest::AddOwners, email, detail, now)
                .await);
        }
        let email = validate_email(email)?;
        if self.store.admin_by_email(&email).await?.is_some() {
            return Err(CoreError::AlreadyExists(format!(
                "an admin with email {email} already exists"
            )));
        }
        let (token, hash) = auth::new_secret(auth::ADMIN_TOKEN_PREFIX)?;
        let admin = Admin {
            id: AdminId::generate(),
            email: email.clone(),
            role,
            created_at: now,
        };
        let tx = self.store.begin().await?;
        tx.insert_admin(&admin, &hash).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::AdminAdd,
            target: email,
            outcome: AuditOutcome::Ok,
            detail: format!("role {}", role.as_str()),
        })
        .await?;
        tx.commit().await?;
        Ok((admin, token))
    }

    pub async fn list_admins(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<Vec<Admin>, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ReadAdmins,
                AdminRequest::ListAdmins,
                "",
                now,
            )
            .await?;
        Ok(self.store.list_admins().await?)
    }
}
