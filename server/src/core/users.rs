//! The users service: users and groups, the people who log in through the
//! SSO layer, their temporary passwords, and the binding of a device to the
//! one user it belongs to.

use chrono::{DateTime, Utc};
use latchkey_proto::limits::MAX_IMPORT_ROWS;

use super::auth::{AuthenticatedAdmin, Permission};
use super::passwords::{Password, Passwords, TEMPORARY_PASSWORD_DAYS, temporary_password};
use super::policies::Policies;
use super::{Audit, CoreError, DeviceView, existing_device, validate_email, validate_label};
use crate::domain::audit::{AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::ids::UserId;
use crate::domain::user::{Group, User, UserKind, UserStatus};
use crate::store::{PasswordRecord, Store};

/// A temporary password, shown to the admin once.
#[derive(Debug)]
pub struct TemporaryPassword {
    pub password: Password,
    pub expires_at: DateTime<Utc>,
}

/// What a password check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordCheck {
    Valid {
        user: Box<User>,
        must_change: bool,
    },
    Wrong,
    /// A temporary password past its 7 days.
    Expired,
    /// No such user, not active, or no password set: the caller must not
    /// tell these apart from `Wrong` to the person signing in.
    Unusable,
}

/// Longest display name accepted.
const MAX_NAME_LEN: usize = 200;

/// A new user as an admin describes it.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
    pub kind: UserKind,
}

/// The outcome of a CSV import: the valid rows were added, the others are
/// named with the reason.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub added: Vec<String>,
    pub rejected: Vec<RejectedRow>,
}

#[derive(Debug, Clone)]
pub struct RejectedRow {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub email: String,
    pub reason: String,
}

fn validate_user(new: NewUser) -> Result<NewUser, CoreError> {
    let email = validate_email(&new.email)?;
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(CoreError::InvalidArgument(format!(
            "the name of {email} must be 1-{MAX_NAME_LEN} bytes of printable text"
        )));
    }
    let mut groups = Vec::with_capacity(new.groups.len());
    for group in &new.groups {
        let group = validate_label("group", group)?;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups.sort();
    Ok(NewUser {
        email,
        name,
        groups,
        kind: new.kind,
    })
}

fn user_record(new: NewUser, now: DateTime<Utc>) -> User {
    User {
        id: UserId::generate(),
        email: new.email,
        name: new.name,
        kind: new.kind,
        status: UserStatus::Active,
        locale: None,
        groups: new.groups,
        created_at: now,
        updated_at: now,
    }
}

fn added_entry(
    caller: &AuthenticatedAdmin,
    user: &User,
    how: &str,
    now: DateTime<Utc>,
) -> AuditEntry {
    AuditEntry {
        at: now,
        actor: caller.actor(),
        action: AuditAction::UserAdd,
        target: user.email.clone(),
        outcome: AuditOutcome::Ok,
        detail: format!(
            "{how}; kind {}, groups [{}]",
            user.kind.as_str(),
            user.groups.join(", ")
        ),
    }
}

/// A row of an import: its line and the user, or (email, reason).
type ImportRow = (u64, Result<NewUser, (String, String)>);

/// Reads an import file: a header row naming `email` and `name` (and
/// optionally `groups`, separated by `;`, and `role`: `user` or
/// `break-glass`), then one user per row.
fn parse_import(csv_text: &str) -> Result<Vec<ImportRow>, CoreError> {
    // Excel's "CSV UTF-8" starts with a byte order mark.
    let csv_text = csv_text.strip_prefix('\u{feff}').unwrap_or(csv_text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| CoreError::InvalidArgument(format!("the CSV header cannot be read: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(email_at), Some(name_at)) = (column("email"), column("name")) else {
        return Err(CoreError::InvalidArgument(
            "the CSV header must name the columns email and name (and may name groups and role)"
                .into(),
        ));
    };
    for header in headers.iter() {
        if !["email", "name", "groups", "role"]
            .iter()
            .any(|k| header.eq_ignore_ascii_case(k))
        {
            return Err(CoreError::InvalidArgument(format!(
                "unknown CSV column {header:?}; the columns are email, name, groups, role"
            )));
        }
    }
    let (groups_at, role_at) = (column("groups"), column("role"));
    let mut rows = Vec::new();
    for record in reader.records() {
        if rows.len() >= MAX_IMPORT_ROWS {
            return Err(CoreError::InvalidArgument(format!(
                "the file has more than {MAX_IMPORT_ROWS} rows, more than one import takes; split it into files of at most {MAX_IMPORT_ROWS} rows"
            )));
        }
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                rows.push((line, Err((String::new(), format!("unreadable row: {e}")))));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let field = |at: Option<usize>| at.and_then(|i| record.get(i)).unwrap_or("").to_owned();
        let email = field(Some(email_at));
        let role = field(role_at);
        let parsed = match UserKind::parse(&role) {
            Some(kind) => Ok(NewUser {
                email: email.clone(),
                name: field(Some(name_at)),
                groups: field(groups_at)
                    .split(';')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect(),
                kind,
            }),
            None => Err((
                email.clone(),
                format!("unknown role {role:?}; use user or break-glass"),
            )),
        };
        rows.push((line, parsed));
    }
    Ok(rows)
}

/// Users, groups and which user a device belongs to.
pub struct Users {
    pub(super) store: Store,
    pub(super) audit: Audit,
    /// Hashes temporary passwords.
    pub(super) passwords: Passwords,
    /// The device's compliance, shown once it is assigned.
    pub(super) policies: Policies,
}

impl Users {
    /// The user with this id, whatever their status, for the sign-in
    /// pages (the session's user, their saved language).
    pub async fn user_by_id(&self, id: &UserId) -> Result<Option<User>, CoreError> {
        Ok(self.store.user_by_id(id).await?)
    }

    pub async fn add_user(
        &self,
        caller: &AuthenticatedAdmin,
        new: NewUser,
        now: DateTime<Utc>,
    ) -> Result<User, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageUsers,
                AdminRequest::AddUsers,
                &new.email,
                now,
            )
            .await?;
        let new = validate_user(new)?;
        if self.store.user_by_email(&new.email).await?.is_some() {
            return Err(CoreError::AlreadyExists(format!(
                "a user with email {} already exists",
                new.email
            )));
        }
        let user = user_record(new, now);
        let tx = self.store.begin().await?;
        tx.ensure_groups(&user.groups, now).await?;
        tx.insert_user(&user).await?;
        tx.audit(&added_entry(caller, &user, "added", now)).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Imports users from CSV: every valid row is added (in one
    /// transaction), every other row is reported with its reason.
    pub async fn import_users(
        &self,
        caller: &AuthenticatedAdmin,
        csv_text: &str,
        now: DateTime<Utc>,
    ) -> Result<ImportReport, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageUsers,
                AdminRequest::ImportUsers,
                "",
                now,
            )
            .await?;
        let rows = parse_import(csv_text)?;
        let existing: std::collections::HashSet<String> = self
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|u| u.email)
            .collect();
        let mut report = ImportReport::default();
        let mut users = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (line, parsed) in rows {
            let checked = parsed
                .and_then(|new| {
                    let email = new.email.clone();
                    validate_user(new).map_err(|e| (email, e.to_string()))
                })
                .and_then(|new| {
                    if existing.contains(&new.email) {
                        Err((
                            new.email,
                            "a user with this email already exists".to_owned(),
                        ))
                    } else if !seen.insert(new.email.clone()) {
                        Err((
                            new.email,
                            "this email appears earlier in the file".to_owned(),
                        ))
                    } else {
                        Ok(new)
                    }
                });
            match checked {
                Ok(new) => users.push(user_record(new, now)),
                Err((email, reason)) => report.rejected.push(RejectedRow {
                    line,
                    email,
                    reason,
                }),
            }
        }
        let mut groups: Vec<String> = users.iter().flat_map(|u| u.groups.clone()).collect();
        groups.sort();
        groups.dedup();
        let tx = self.store.begin().await?;
        tx.ensure_groups(&groups, now).await?;
        tx.insert_users(&users).await?;
        let entries: Vec<AuditEntry> = users
            .iter()
            .map(|u| added_entry(caller, u, "imported", now))
            .collect();
        tx.audit_many(&entries).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::UserImport,
            target: String::new(),
            outcome: AuditOutcome::Ok,
            detail: format!("{} added, {} rejected", users.len(), report.rejected.len()),
        })
        .await?;
        tx.commit().await?;
        report.added = users.into_iter().map(|u| u.email).collect();
        Ok(report)
    }

    pub async fn list_users(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<Vec<User>, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ReadUsers,
                AdminRequest::ListUsers,
                "",
                now,
            )
            .await?;
        Ok(self.store.list_users().await?)
    }

    async fn existing_user(&self, email: &str) -> Result<User, CoreError> {
        // An address stored before addresses were checked strictly must
        // still be found, so that an admin can correct or delete it.
        let email = validate_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
        self.store
            .user_by_email(&email)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user {email}")))
    }

    pub async fn get_user(
        &self,
        caller: &AuthenticatedAdmin,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<User, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ReadUsers,
                AdminRequest::ShowUsers,
                email,
                now,
            )
            .await?;
        self.existing_user(email).await
    }

    /// Suspends, activates or deletes a user.
    pub async fn set_user_status(
        &self,
        caller: &AuthenticatedAdmin,
        email: &str,
        to: UserStatus,
        now: DateTime<Utc>,
    ) -> Result<User, CoreError> {
        let (action, verb) = match to {
            UserStatus::Active => (AuditAction::UserActivate, AdminRequest::ActivateUsers),
            UserStatus::Suspended => (AuditAction::UserSuspend, AdminRequest::SuspendUsers),
            UserStatus::Deleted => (AuditAction::UserDelete, AdminRequest::DeleteUsers),
        };
        self.audit
            .authorize(caller, Permission::ManageUsers, verb, email, now)
            .await?;
        let user = self.existing_user(email).await?;
        let from: &[UserStatus] = match to {
            UserStatus::Active => &[UserStatus::Suspended],
            UserStatus::Suspended => &[UserStatus::Active],
            UserStatus::Deleted => &[UserStatus::Active, UserStatus::Suspended],
        };
        let tx = self.store.begin().await?;
        if !tx.change_user_status(&user.id, from, to, now).await? {
            return Err(CoreError::FailedPrecondition(format!(
                "user {} is {}",
                user.email,
                user.status.as_str()
            )));
        }
        // A suspended or deleted user's sessions and tokens end with the
        // change, in the same transaction.
        let ended = if to == UserStatus::Active {
            0
        } else {
            tx.end_user_sso(&user.id, &format!("user {}", to.as_str()), now)
                .await?
        };
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action,
            target: user.email.clone(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "status {} -> {}; {ended} session(s) and grant(s) ended",
                user.status.as_str(),
                to.as_str()
            ),
        })
        .await?;
        tx.commit().await?;
        self.existing_user(&user.email).await
    }

    pub async fn add_group(
        &self,
        caller: &AuthenticatedAdmin,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Group, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageUsers,
                AdminRequest::AddGroups,
                name,
                now,
            )
            .await?;
        let name = validate_label("group", name)?;
        let tx = self.store.begin().await?;
        if !tx.insert_group(&name, now).await? {
            return Err(CoreError::AlreadyExists(format!(
                "group {name} already exists"
            )));
        }
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::GroupAdd,
            target: name.clone(),
            outcome: AuditOutcome::Ok,
            detail: String::new(),
        })
        .await?;
        tx.commit().await?;
        Ok(Group {
            name,
            members: 0,
            created_at: now,
        })
    }

    pub async fn list_groups(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<Vec<Group>, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ReadUsers,
                AdminRequest::ListGroups,
                "",
                now,
            )
            .await?;
        Ok(self.store.list_groups().await?)
    }

    /// Binds a device to the one user it belongs to (for device-bound login).
    pub async fn assign_device(
        &self,
        caller: &AuthenticatedAdmin,
        id: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<DeviceView, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageDevices,
                AdminRequest::AssignDevices,
                id,
                now,
            )
            .await?;
        let (device_id, device) = existing_device(&self.store, id).await?;
        if device.state.is_final() {
            return Err(CoreError::FailedPrecondition(format!(
                "device {id} is {}",
                device.state.as_str()
            )));
        }
        let user = self.existing_user(email).await?;
        if user.status == UserStatus::Deleted {
            return Err(CoreError::FailedPrecondition(format!(
                "user {} is deleted",
                user.email
            )));
        }
        let tx = self.store.begin().await?;
        tx.set_device_user(&device_id, Some(&user.email)).await?;
        if device.user.as_deref() != Some(user.email.as_str()) {
            // Logins the device confirmed for its previous user end.
            tx.end_device_sso(&device_id, "device reassigned", now)
                .await?;
        }
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::DeviceAssign,
            target: device_id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "user {} -> {}",
                device.user.as_deref().unwrap_or("-"),
                user.email
            ),
        })
        .await?;
        tx.commit().await?;
        if device.channel == crate::domain::device::Channel::apple() {
            // The user's group may bring another policy, and so another
            // profile.
            if let Some(reassigned) = self.store.device(&device_id).await? {
                let policies = self.store.all_policies().await?;
                let effective = crate::domain::policy::effective_policy(&reassigned, &policies);
                self.policies
                    .bring_apple_profile_to(&reassigned, effective, now)
                    .await?;
            }
        }
        self.policies.compliance_of(&device_id, now).await
    }

    /// Sets a temporary password (valid 7 days, to be changed at the first
    /// sign-in) and returns it once.
    pub async fn reset_password(
        &self,
        caller: &AuthenticatedAdmin,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<(User, TemporaryPassword), CoreError> {
        self.reset_credentials(caller, email, false, now).await
    }

    /// For a user who lost their authenticator: removes it and issues a
    /// temporary password, with which the user sets up a new authenticator
    /// at the next sign-in (as during onboarding); the user's sessions and
    /// refresh tokens end. The helpdesk confirms who is asking first.
    pub async fn reset_mfa(
        &self,
        caller: &AuthenticatedAdmin,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<(User, TemporaryPassword), CoreError> {
        self.reset_credentials(caller, email, true, now).await
    }

    async fn reset_credentials(
        &self,
        caller: &AuthenticatedAdmin,
        email: &str,
        second_factor_too: bool,
        now: DateTime<Utc>,
    ) -> Result<(User, TemporaryPassword), CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageUsers,
                if second_factor_too {
                    AdminRequest::ResetSecondFactors
                } else {
                    AdminRequest::ResetPasswords
                },
                email,
                now,
            )
            .await?;
        let user = self.existing_user(email).await?;
        if user.status != UserStatus::Active {
            return Err(CoreError::FailedPrecondition(format!(
                "user {} is {}",
                user.email,
                user.status.as_str()
            )));
        }
        let password = temporary_password()?;
        let expires_at = now + chrono::Duration::days(TEMPORARY_PASSWORD_DAYS);
        let record = PasswordRecord {
            hash: self.passwords.hash(&password).await?,
            expires_at: Some(expires_at),
            must_change: true,
        };
        let tx = self.store.begin().await?;
        if !tx.set_password(&user.id, &record, now).await? {
            return Err(CoreError::FailedPrecondition(format!(
                "user {} was suspended or deleted meanwhile",
                user.email
            )));
        }
        let (action, detail) = if second_factor_too {
            tx.set_totp_secret(&user.id, None, None, now).await?;
            let ended = tx
                .end_user_sso(&user.id, "second factor reset", now)
                .await?;
            (
                AuditAction::UserResetMfa,
                format!(
                    "authenticator removed; {ended} sessions and grants ended; temporary password valid until {}",
                    expires_at.to_rfc3339()
                ),
            )
        } else {
            (
                AuditAction::UserResetPassword,
                format!("temporary password valid until {}", expires_at.to_rfc3339()),
            )
        };
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action,
            target: user.email.clone(),
            outcome: AuditOutcome::Ok,
            detail,
        })
        .await?;
        tx.commit().await?;
        Ok((
            user,
            TemporaryPassword {
                password,
                expires_at,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_read_quoted_fields_and_name_bad_rows() {
        let csv = "email,name,groups,role\n\
                   alice@example.com,\"Suzuki, Alice\",staff;sales,\n\
                   bob@example.com,Bob,,admin\n\
                   carol@example.com,キャロル,staff,break-glass\n";
        let rows = parse_import(csv).unwrap();
        assert_eq!(rows.len(), 3);
        let (line, alice) = &rows[0];
        assert_eq!(*line, 2);
        let alice = alice.as_ref().unwrap();
        assert_eq!(alice.name, "Suzuki, Alice");
        assert_eq!(alice.groups, ["staff", "sales"]);
        assert!(rows[1].1.as_ref().unwrap_err().1.contains("unknown role"));
        assert_eq!(rows[2].1.as_ref().unwrap().kind, UserKind::BreakGlass);
    }

    #[test]
    fn imports_need_a_known_header() {
        assert!(parse_import("mail,name\nx@y,z\n").is_err());
        assert!(parse_import("email,name,shoe_size\nx@y,z,27\n").is_err());
    }
}
