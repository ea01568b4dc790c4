//! Automated Device Enrollment (Apple, "Device Assignment"): the key pair
//! an admin uploads to Apple Business Manager, the server token imported
//! with it, the sync of each token's device list, and the enrollment
//! profile Setup Assistant fetches for a listed device.
//!
//! A sync fetches the full list until Apple answers `EXHAUSTED_CURSOR`,
//! then asks for changes from that cursor; an expired or unknown cursor
//! starts the fetch again. The cursor is stored after every page, so a
//! sync cut short (or run by another replica) continues where it stopped,
//! and a failed sync keeps it. Listed devices become device records
//! awaiting enrollment; a device released at Apple is retired unless it
//! enrolled. Each token's Setup Assistant profile is defined once (again
//! when the enrollment URL changes) and assigned to listed devices that
//! carry another.
//!
//! The profile request's MachineInfo is not proof of identity (Apple
//! signs it, but anyone can replay one): it only binds the one-time SCEP
//! challenge to the listed device it names, so that the device enrolls as
//! that record, and names nothing else.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use super::Apple;
use super::enroll::NewEnrollment;
use crate::core::auth::{AuthenticatedAdmin, Permission};
use crate::core::{CoreError, printable};
use crate::dep::{
    AssignStatus, DepClient, DepConfig, DepCursor, DepError, DepProfile, DeviceOp, DevicePage,
    ProfileStatus,
};
use crate::domain::apple::dep::{
    DEFAULT_TOKEN_NAME, DepCursorState, DepDeviceRecord, DepImported, DepSyncReport, DepTokenInfo,
    valid_token_name,
};
use crate::domain::apple::enrollment::platform_of;
use crate::domain::audit::{Actor, AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::device::{Channel, Device, DeviceState};
use crate::domain::ids::DeviceId;
use crate::store::StoredDepToken;

/// How long one sync may hold a token before another replica may take it
/// over (a sync that died holding it).
const SYNC_LEASE: Duration = Duration::minutes(10);
/// Devices asked for per page (Apple allows up to 1000).
const PAGE_LIMIT: u32 = 500;
/// How long the challenge in a Setup Assistant profile stays usable: the
/// device enrolls right after fetching it.
pub(super) const DEP_CHALLENGE_LIFETIME: Duration = Duration::hours(1);
/// Largest token file accepted (Apple's are about 4 KiB).
pub const MAX_TOKEN_FILE_BYTES: usize = 64 * 1024;

/// What `apple dep keypair` answers.
#[derive(Debug, Clone)]
pub struct DepKeypair {
    pub name: String,
    pub certificate_pem: String,
    /// False when the key pair already existed and is shown again.
    pub created: bool,
}

fn token_name(name: Option<&str>) -> Result<String, CoreError> {
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_TOKEN_NAME);
    if !valid_token_name(name) {
        return Err(CoreError::InvalidArgument(format!(
            "token name {:?}: use 1 to 64 letters, digits, '-', '_' or '.'",
            printable(name, 80)
        )));
    }
    Ok(name.to_owned())
}

/// What the caller can do about an error of Apple's service.
fn dep_error(name: &str, e: DepError) -> CoreError {
    let text = format!("ADE token {name}: {e}");
    match e {
        DepError::TokenExpired { .. }
        | DepError::AuthRefused { .. }
        | DepError::TermsNotAccepted
        | DepError::Rejected { .. }
        | DepError::InvalidRequest(_) => CoreError::FailedPrecondition(text),
        DepError::CursorExhausted
        | DepError::CursorExpired
        | DepError::CursorInvalid
        | DepError::Throttled { .. }
        | DepError::ServerError { .. }
        | DepError::MalformedBody(_)
        | DepError::Http(_) => CoreError::Unavailable(text),
    }
}

/// ADE tokens Apple asked to wait, by name: until when no sync of the
/// token is made. Kept in memory: a restarted server asks again and
/// Apple says again.
pub type Throttled = Arc<std::sync::Mutex<std::collections::HashMap<String, DateTime<Utc>>>>;

/// How long to leave a token alone when Apple throttles without saying.
const THROTTLE_WITHOUT_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

fn sealed_error(e: crate::ca::dep::DepKeyError) -> CoreError {
    use crate::ca::dep::DepKeyError;
    match e {
        DepKeyError::Token(t) => CoreError::InvalidArgument(t.to_string()),
        DepKeyError::Sealed(c) => CoreError::Internal(crate::core::InternalError::Cert(c)),
    }
}

fn profile_status_text(status: &ProfileStatus) -> String {
    match status {
        ProfileStatus::Empty => "empty".into(),
        ProfileStatus::Assigned => "assigned".into(),
        ProfileStatus::Pushed => "pushed".into(),
        ProfileStatus::Removed => "removed".into(),
        ProfileStatus::Other(other) => printable(other, 32),
    }
}

fn op_text(op: &DeviceOp) -> String {
    match op {
        DeviceOp::Added => "added".into(),
        DeviceOp::Modified => "modified".into(),
        DeviceOp::Deleted => "deleted".into(),
        DeviceOp::Other(other) => printable(other, 32),
    }
}

impl Apple {
    /// Makes the key pair for token `name`, or shows the one it has: its
    /// certificate is what the admin uploads to Apple Business Manager.
    pub async fn dep_keypair(
        &self,
        caller: &AuthenticatedAdmin,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<DepKeypair, CoreError> {
        let name = token_name(name)?;
        self.audit
            .authorize(
                caller,
                Permission::ManagePlatforms,
                AdminRequest::CreateAppleDepKeypairs,
                &name,
                now,
            )
            .await?;
        if let Some(stored) = self.store.dep_token(&name).await? {
            return Ok(DepKeypair {
                name,
                certificate_pem: stored.info.certificate_pem,
                created: false,
            });
        }
        let (certificate_pem, key_sealed) = self
            .ca
            .token_keys()
            .new_dep_keypair(&name, now)
            .map_err(sealed_error)?;
        let tx = self.store.begin().await?;
        tx.insert_dep_keypair(
            &name,
            &certificate_pem,
            &key_sealed,
            &caller.admin().email,
            now,
        )
        .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::AppleDepKeypairCreate,
            target: name.clone(),
            outcome: AuditOutcome::Ok,
            detail: "RSA key pair for an Automated Device Enrollment token".into(),
        })
        .await?;
        tx.commit().await?;
        Ok(DepKeypair {
            name,
            certificate_pem,
            created: true,
        })
    }

    fn dep_client(
        &self,
        token: latchkey_certs::dep::DepServerToken,
    ) -> Result<DepClient, CoreError> {
        DepClient::new(
            DepConfig {
                base_url: self.settings.dep_base_url.clone(),
                user_agent: format!("Latchkey/{}", env!("CARGO_PKG_VERSION")),
            },
            token,
            self.dep_http.clone(),
        )
        .map_err(|e| CoreError::FailedPrecondition(format!("the ADE client: {e}")))
    }

    /// Decrypts a server token with the key pair of `name`, checks it
    /// against Apple (`GET /account`) and stores it sealed. Nothing is
    /// stored for a token that does not decrypt or that Apple refuses.
    pub async fn import_dep_token(
        &self,
        caller: &AuthenticatedAdmin,
        name: Option<&str>,
        p7m: &[u8],
        now: DateTime<Utc>,
    ) -> Result<DepTokenInfo, CoreError> {
        let name = token_name(name)?;
        self.audit
            .authorize(
                caller,
                Permission::ManagePlatforms,
                AdminRequest::ImportAppleDepTokens,
                &name,
                now,
            )
            .await?;
        if p7m.len() > MAX_TOKEN_FILE_BYTES {
            return Err(CoreError::InvalidArgument(format!(
                "the token file is {} bytes; Apple's are a few KiB (at most {MAX_TOKEN_FILE_BYTES})",
                p7m.len()
            )));
        }
        let stored = self.store.dep_token(&name).await?.ok_or_else(|| {
            CoreError::FailedPrecondition(format!(
                "no key pair for ADE token {name}: run `latchctl apple dep keypair --name {name}`, \
                 upload its certificate to Apple Business Manager and download the token for it"
            ))
        })?;
        let token = self
            .ca
            .token_keys()
            .decrypt_dep_token(&name, p7m, &stored.info.certificate_pem, &stored.key_sealed)
            .map_err(sealed_error)?;
        if token.is_expired(now) {
            return Err(CoreError::InvalidArgument(format!(
                "the token expired at {}: download a renewed one from Apple Business Manager",
                token.access_token_expiry.to_rfc3339()
            )));
        }
        let account = self
            .dep_client(token.clone())?
            .account(now)
            .await
            .map_err(|e| self.dep_failed(&name, e, now))?;
        let imported = DepImported {
            consumer_key: token.consumer_key.clone(),
            expires_at: token.access_token_expiry,
            server_name: printable(account.server_name.as_deref().unwrap_or_default(), 128),
            server_uuid: printable(account.server_uuid.as_deref().unwrap_or_default(), 64),
            org_name: printable(account.org_name.as_deref().unwrap_or_default(), 128),
            imported_at: now,
            imported_by: caller.admin().email.clone(),
        };
        let server_changed = stored
            .info
            .imported
            .as_ref()
            .is_some_and(|before| before.server_uuid != imported.server_uuid);
        let sealed = self.ca.token_keys().seal_dep_token(&name, &token)?;
        let tx = self.store.begin().await?;
        tx.set_dep_token(&name, &sealed, &imported, server_changed)
            .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::AppleDepTokenImport,
            target: name.clone(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "server {} ({}) of {}; expires {}{}",
                imported.server_name,
                imported.server_uuid,
                imported.org_name,
                imported.expires_at.to_rfc3339(),
                if server_changed {
                    "; another server than before: the device list starts over"
                } else {
                    ""
                }
            ),
        })
        .await?;
        tx.commit().await?;
        self.dep_token_info(&name).await
    }

    async fn dep_token_info(&self, name: &str) -> Result<DepTokenInfo, CoreError> {
        Ok(self
            .store
            .dep_token(name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("ADE token {name}")))?
            .info)
    }

    /// Every token: expiry, last sync, device count.
    pub async fn dep_tokens(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<Vec<DepTokenInfo>, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ReadPlatforms,
                AdminRequest::ShowAppleStatus,
                "",
                now,
            )
            .await?;
        Ok(self
            .store
            .dep_tokens()
            .await?
            .into_iter()
            .map(|t| t.info)
            .collect())
    }

    /// Forgets the cursor: the next sync fetches the whole list again.
    pub async fn reset_dep_cursor(
        &self,
        caller: &AuthenticatedAdmin,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<DepTokenInfo, CoreError> {
        let name = token_name(name)?;
        self.audit
            .authorize(
                caller,
                Permission::ManagePlatforms,
                AdminRequest::ResetAppleDepCursors,
                &name,
                now,
            )
            .await?;
        if self.store.dep_token(&name).await?.is_none() {
            return Err(CoreError::NotFound(format!("ADE token {name}")));
        }
        let tx = self.store.begin().await?;
        tx.set_dep_cursor(&name, &DepCursorState::None, now).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::AppleDepCursorReset,
            target: name.clone(),
            outcome: AuditOutcome::Ok,
            detail: "the next sync fetches every device again".into(),
        })
        .await?;
        tx.commit().await?;
        self.dep_token_info(&name).await
    }

    /// An admin's sync of one token now; `progress` hears the devices
    /// fetched so far after each page.
    pub async fn sync_dep_now(
        &self,
        caller: &AuthenticatedAdmin,
        name: Option<&str>,
        progress: &(dyn Fn(u64) + Send + Sync),
        now: DateTime<Utc>,
    ) -> Result<DepSyncReport, CoreError> {
        let name = token_name(name)?;
        self.audit
            .authorize(
                caller,
                Permission::ManagePlatforms,
                AdminRequest::SyncAppleDep,
                &name,
                now,
            )
            .await?;
        let stored = self
            .store
            .dep_token(&name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("ADE token {name}")))?;
        self.sync_dep_token(stored, caller.actor(), progress, now)
            .await
    }

    /// The background job's sync of every imported token. Each failure is
    /// logged and recorded; the others still run.
    pub async fn sync_all_dep(&self, now: DateTime<Utc>) -> Result<(), CoreError> {
        for stored in self.store.dep_tokens().await? {
            if stored.token_sealed.is_none() {
                continue;
            }
            let name = stored.info.name.clone();
            match self
                .sync_dep_token(stored, Actor::System, &|_| {}, now)
                .await
            {
                Ok(report) => info!(token = %name, summary = %report.summary(), "ADE sync"),
                Err(e) => warn!(token = %name, error = %e, "ADE sync failed"),
            }
        }
        Ok(())
    }

    /// A failure of Apple's ADE service as the caller sees it; when Apple
    /// throttled, the token is left alone until its `Retry-After`.
    fn dep_failed(&self, name: &str, e: DepError, now: DateTime<Utc>) -> CoreError {
        if let DepError::Throttled { retry_after } = &e {
            let wait = retry_after.unwrap_or(THROTTLE_WITHOUT_RETRY_AFTER);
            let until = now + Duration::from_std(wait).unwrap_or(Duration::MAX);
            if let Ok(mut throttled) = self.dep_throttled.lock() {
                throttled.insert(name.to_owned(), until);
            }
        }
        dep_error(name, e)
    }

    /// Until when Apple asked to leave the token alone, if that is later
    /// than `now`.
    fn dep_throttled_until(&self, name: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut throttled = self.dep_throttled.lock().ok()?;
        match throttled.get(name).copied() {
            Some(until) if until > now => Some(until),
            Some(_) => {
                throttled.remove(name);
                None
            }
            None => None,
        }
    }

    async fn sync_dep_token(
        &self,
        stored: StoredDepToken,
        actor: Actor,
        progress: &(dyn Fn(u64) + Send + Sync),
        now: DateTime<Utc>,
    ) -> Result<DepSyncReport, CoreError> {
        let name = stored.info.name.clone();
        if let Some(until) = self.dep_throttled_until(&name, now) {
            return Err(CoreError::Unavailable(format!(
                "ADE token {name}: Apple asked Latchkey to wait; the next sync can run after {}",
                until.format("%Y-%m-%d %H:%M:%S UTC")
            )));
        }
        let Some(sealed) = stored.token_sealed.clone() else {
            return Err(CoreError::FailedPrecondition(format!(
                "no token imported for ADE token {name}: run `latchctl apple dep import-token \
                 FILE.p7m --name {name}`"
            )));
        };
        if !self
            .store
            .claim_dep_sync(&name, now, now + SYNC_LEASE)
            .await?
        {
            return Err(CoreError::FailedPrecondition(format!(
                "a sync of ADE token {name} is already running"
            )));
        }
        let result = self.sync_claimed(&stored, &sealed, progress, now).await;
        let (outcome, detail, last_sync) = match &result {
            Ok(report) => (AuditOutcome::Ok, report.summary(), report.summary()),
            Err(e) => (AuditOutcome::Failed, e.to_string(), format!("failed: {e}")),
        };
        let tx = self.store.begin().await?;
        tx.finish_dep_sync(&name, &last_sync, now).await?;
        tx.audit(&AuditEntry {
            at: now,
            actor,
            action: AuditAction::AppleDepSync,
            target: name.clone(),
            outcome,
            detail,
        })
        .await?;
        tx.commit().await?;
        result
    }

    async fn sync_claimed(
        &self,
        stored: &StoredDepToken,
        sealed: &str,
        progress: &(dyn Fn(u64) + Send + Sync),
        now: DateTime<Utc>,
    ) -> Result<DepSyncReport, CoreError> {
        let name = stored.info.name.as_str();
        let token = self
            .ca
            .token_keys()
            .open_dep_token(name, sealed)
            .map_err(sealed_error)?;
        let client = self.dep_client(token)?;
        let profile_uuid = self.ensure_dep_profile(&client, stored, now).await?;
        let mut report = DepSyncReport::default();
        let mut cursor = stored.cursor.clone();
        loop {
            let answer = match &cursor {
                DepCursorState::None => client.fetch_devices(None, Some(PAGE_LIMIT), now).await,
                DepCursorState::Fetching(c) => {
                    client
                        .fetch_devices(Some(&DepCursor::new(c.clone())), Some(PAGE_LIMIT), now)
                        .await
                }
                DepCursorState::Syncing(c) => {
                    client
                        .sync_devices(&DepCursor::new(c.clone()), Some(PAGE_LIMIT), now)
                        .await
                }
            };
            let page = match answer {
                Ok(page) => page,
                // The full fetch is complete: changes come from here on.
                Err(DepError::CursorExhausted) => match cursor {
                    DepCursorState::Fetching(c) => {
                        cursor = DepCursorState::Syncing(c);
                        self.store.set_dep_cursor(name, &cursor, now).await?;
                        continue;
                    }
                    _ => return Err(dep_error(name, DepError::CursorExhausted)),
                },
                Err(e @ (DepError::CursorExpired | DepError::CursorInvalid))
                    if !report.refetched && cursor != DepCursorState::None =>
                {
                    info!(token = %name, error = %e, "ADE cursor refused; fetching again");
                    report.refetched = true;
                    cursor = DepCursorState::None;
                    self.store.set_dep_cursor(name, &cursor, now).await?;
                    continue;
                }
                Err(e) => return Err(self.dep_failed(name, e, now)),
            };
            let to_assign = self
                .apply_dep_page(name, &page, &profile_uuid, &mut report, now)
                .await?;
            cursor = match cursor {
                DepCursorState::Syncing(_) => DepCursorState::Syncing(page.cursor.as_str().into()),
                _ => DepCursorState::Fetching(page.cursor.as_str().into()),
            };
            self.store.set_dep_cursor(name, &cursor, now).await?;
            progress(report.fetched);
            if !to_assign.is_empty() {
                self.assign_dep_profile(&client, name, &profile_uuid, &to_assign, &mut report, now)
                    .await?;
            }
            // A fetch goes on until Apple says the cursor is exhausted; a
            // sync until nothing more follows.
            if !page.more_to_follow && matches!(cursor, DepCursorState::Syncing(_)) {
                return Ok(report);
            }
        }
    }

    /// The token's Setup Assistant profile, defined at Apple when it has
    /// none or the enrollment URL changed.
    async fn ensure_dep_profile(
        &self,
        client: &DepClient,
        stored: &StoredDepToken,
        now: DateTime<Utc>,
    ) -> Result<String, CoreError> {
        let url = self.settings.dep_enrollment_url();
        if let (Some(uuid), Some(defined_for)) = (&stored.info.profile_uuid, &stored.profile_url)
            && *defined_for == url
        {
            return Ok(uuid.clone());
        }
        let mut profile = DepProfile::new(
            format!("{} device management", self.settings.organization),
            url.clone(),
            self.settings.identifier_base(),
        );
        // Apple's notes: without configuration_web_url Setup Assistant
        // switches its request to POST and may loop on "Remote
        // Management"; the same URL answers both.
        profile.configuration_web_url = Some(url.clone());
        profile.is_supervised = Some(true);
        profile.is_mandatory = Some(true);
        profile.is_mdm_removable = false;
        profile.await_device_configured = Some(true);
        let defined = client
            .define_profile(&profile, now)
            .await
            .map_err(|e| self.dep_failed(&stored.info.name, e, now))?;
        let uuid = defined.profile_uuid.as_str().to_owned();
        self.store
            .set_dep_profile(&stored.info.name, &uuid, &url)
            .await?;
        Ok(uuid)
    }

    async fn assign_dep_profile(
        &self,
        client: &DepClient,
        name: &str,
        profile_uuid: &str,
        serials: &[String],
        report: &mut DepSyncReport,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let answer = client
            .assign_profile(&crate::dep::DepProfileUuid::new(profile_uuid), serials, now)
            .await
            .map_err(|e| self.dep_failed(name, e, now))?;
        for serial in serials {
            match answer.devices.get(serial) {
                Some(AssignStatus::Success) => {
                    report.assigned += 1;
                    if let Some(mut record) = self.store.dep_device(serial).await? {
                        record.profile_uuid = Some(profile_uuid.to_owned());
                        record.profile_status = Some("assigned".into());
                        self.store.put_dep_device(&record).await?;
                    }
                }
                other => {
                    report.assign_failed += 1;
                    warn!(token = %name, serial = %serial, status = ?other, "Apple refused the profile assignment");
                }
            }
        }
        Ok(())
    }

    /// Records one page: devices listed become records awaiting
    /// enrollment, released ones are retired unless they enrolled. Returns
    /// the serial numbers to assign the profile to.
    async fn apply_dep_page(
        &self,
        name: &str,
        page: &DevicePage,
        profile_uuid: &str,
        report: &mut DepSyncReport,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, CoreError> {
        let mut to_assign = Vec::new();
        let tx = self.store.begin().await?;
        for listed in &page.devices {
            report.fetched += 1;
            let serial = printable(&listed.serial_number, 64);
            if serial.is_empty() {
                continue;
            }
            let existing = tx.dep_device(&serial).await?;
            let linked = match existing.as_ref().and_then(|r| r.device.clone()) {
                Some(id) => tx.device(&id).await?,
                None => None,
            };
            if matches!(listed.op_type, Some(DeviceOp::Deleted)) {
                let Some(mut record) = existing else { continue };
                if record.deleted_at.is_some() {
                    continue;
                }
                record.deleted_at = Some(now);
                record.op_type = Some("deleted".into());
                record.op_date = listed.op_date;
                record.updated_at = now;
                tx.put_dep_device(&record).await?;
                if let Some(device) = linked
                    && device.state == DeviceState::AwaitingEnrollment
                {
                    crate::core::Devices::end_device_in(
                        &tx,
                        &device.id,
                        DeviceState::Retired,
                        Actor::System,
                        AuditAction::DeviceRetire,
                        now,
                    )
                    .await?;
                    report.retired += 1;
                }
                continue;
            }
            let text = |v: &Option<String>| v.as_deref().map(|t| printable(t, 128));
            let live =
                linked.filter(|d| !matches!(d.state, DeviceState::Retired | DeviceState::Wiped));
            let device_id = match live {
                Some(device) => {
                    report.updated += 1;
                    device.id
                }
                None => {
                    let id = DeviceId::generate();
                    tx.insert_devices(&[Device {
                        id: id.clone(),
                        hostname: text(&listed.description)
                            .filter(|d| !d.is_empty())
                            .unwrap_or_else(|| serial.clone()),
                        platform: platform_of(listed.device_family.as_deref(), None).into(),
                        os_version: String::new(),
                        machine_id: String::new(),
                        serial: serial.clone(),
                        model: text(&listed.model).unwrap_or_default(),
                        state: DeviceState::AwaitingEnrollment,
                        user: None,
                        group: None,
                        enrolled_at: now,
                        last_seen: None,
                        posture: None,
                        posture_at: None,
                        certificate_expires_at: None,
                        channel: Channel::apple(),
                    }])
                    .await?;
                    tx.insert_apple_enrollment(&id).await?;
                    report.added += 1;
                    id
                }
            };
            let listed_profile = listed.profile_uuid.as_ref().map(|p| p.as_str().to_owned());
            if listed_profile.as_deref() != Some(profile_uuid) {
                to_assign.push(serial.clone());
            }
            tx.put_dep_device(&DepDeviceRecord {
                serial_number: serial,
                token_name: name.to_owned(),
                device: Some(device_id),
                model: text(&listed.model),
                description: text(&listed.description),
                color: text(&listed.color),
                os: text(&listed.os),
                device_family: text(&listed.device_family),
                profile_status: listed.profile_status.as_ref().map(profile_status_text),
                profile_uuid: listed_profile,
                op_type: listed.op_type.as_ref().map(op_text),
                op_date: listed.op_date,
                updated_at: now,
                deleted_at: None,
            })
            .await?;
        }
        tx.commit().await?;
        Ok(to_assign)
    }

    /// The enrollment for the profile Setup Assistant fetches: a one-time
    /// challenge bound to the listed device `serial` names, so that the
    /// device enrolls as that record. A serial no token lists (or whose
    /// device already enrolled) gets nothing; with `[apple] dep_sign_in`
    /// on, nothing is handed out without the user's sign-in.
    pub async fn dep_enrollment(
        &self,
        serial: &str,
        now: DateTime<Utc>,
    ) -> Result<NewEnrollment, CoreError> {
        if self.settings.dep_sign_in {
            let serial = printable(serial, 64);
            self.audit
                .record_unauthenticated(
                    AuditEntry {
                        at: now,
                        actor: Actor::EnrollingDevice,
                        action: AuditAction::AppleEnrollmentProfileCreate,
                        target: serial,
                        outcome: AuditOutcome::Denied,
                        detail: "Setup Assistant profile refused: MachineInfo was posted, and \
                                 this server requires the user's sign-in in the web view"
                            .into(),
                    },
                    now,
                )
                .await?;
            return Err(CoreError::FailedPrecondition(
                "this server enrolls a device from Setup Assistant only after its user has \
                 signed in to Latchkey: Setup Assistant must open the enrollment in its web view \
                 (the ADE profile's configuration_web_url), where the user can sign in"
                    .into(),
            ));
        }
        let device = self
            .listed_awaiting_enrollment(serial, AuditAction::AppleEnrollmentProfileCreate, now)
            .await?;
        self.make_enrollment(
            device.user.clone(),
            Some(device.id.clone()),
            Actor::EnrollingDevice,
            DEP_CHALLENGE_LIFETIME,
            now,
        )
        .await
    }

    /// The device record of the listed device `serial` names, while it
    /// awaits enrollment. Any other serial is refused (`NotFound`) and the
    /// refusal audited as `action`.
    pub(super) async fn listed_awaiting_enrollment(
        &self,
        serial: &str,
        action: AuditAction,
        now: DateTime<Utc>,
    ) -> Result<Device, CoreError> {
        let serial = printable(serial, 64);
        let record = self
            .store
            .dep_device(&serial)
            .await?
            .filter(|r| r.deleted_at.is_none());
        let device = match record.and_then(|r| r.device) {
            Some(id) => self.store.device(&id).await?,
            None => None,
        };
        match device.filter(|d| d.state == DeviceState::AwaitingEnrollment) {
            Some(device) => Ok(device),
            None => {
                self.audit
                    .record_unauthenticated(
                        AuditEntry {
                            at: now,
                            actor: Actor::EnrollingDevice,
                            action,
                            target: serial.clone(),
                            outcome: AuditOutcome::Denied,
                            detail: "Setup Assistant refused: the serial number is not a \
                                     listed ADE device awaiting enrollment"
                                .into(),
                        },
                        now,
                    )
                    .await?;
                Err(CoreError::NotFound(format!("ADE device {serial}")))
            }
        }
    }
}
