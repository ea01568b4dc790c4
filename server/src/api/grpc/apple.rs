//! The admin API's Apple calls: importing the APNs push certificate, the
//! Apple status, enrollment profiles, and Automated Device Enrollment
//! (key pairs, tokens, syncs streamed as they run). `admin.rs` routes the calls here.

use chrono::Utc;
use latchkey_proto::v1;
use tonic::{Request, Response, Status};

use super::admin::{AdminApi, Reply};
use super::messages::unix;
use super::status;
use crate::core::apple::MAX_TOKEN_FILE_BYTES;
use crate::domain::apple::dep::DepTokenInfo;
use crate::domain::apple::push::{PushCertificateInfo, PushWarning};

/// Longest certificate or key file accepted (a push certificate and its
/// RSA key are 2 to 4 KiB).
const MAX_PEM_BYTES: usize = 64 * 1024;

fn push_certificate_msg(c: PushCertificateInfo) -> v1::ApplePushCertificate {
    v1::ApplePushCertificate {
        topic: c.topic,
        not_after: unix(c.not_after),
        imported_at: unix(c.imported_at),
        imported_by: c.imported_by,
    }
}

fn warning_msg(w: PushWarning) -> v1::ApplePushWarning {
    use v1::apple_push_warning::Kind;
    let (kind, topic, not_after) = match w {
        PushWarning::Missing => (Kind::Missing, String::new(), 0),
        PushWarning::ExpiresSoon { topic, not_after } => {
            (Kind::ExpiresSoon, topic, unix(not_after))
        }
        PushWarning::Expired { topic, not_after } => (Kind::Expired, topic, unix(not_after)),
    };
    v1::ApplePushWarning {
        kind: kind.into(),
        topic,
        not_after,
    }
}

pub(super) async fn import_push_certificate(
    api: &AdminApi,
    request: Request<v1::ImportApplePushCertificateRequest>,
) -> Reply<v1::ImportApplePushCertificateResponse> {
    let admin = api.admin(&request).await?;
    let r = request.into_inner();
    for (what, text) in [("certificate", &r.certificate_pem), ("key", &r.key_pem)] {
        if text.len() > MAX_PEM_BYTES {
            return Err(Status::invalid_argument(format!(
                "the {what} file is {} bytes; a push {what} is a few KiB (at most {MAX_PEM_BYTES} bytes)",
                text.len()
            )));
        }
    }
    let import = api
        .core()
        .apple
        .import_push_certificate(&admin, &r.certificate_pem, &r.key_pem, r.force, Utc::now())
        .await
        .map_err(status)?;
    Ok(Response::new(v1::ImportApplePushCertificateResponse {
        certificate: Some(push_certificate_msg(import.certificate)),
        common_name: import.common_name,
        replaced_topic: import.replaced_topic.unwrap_or_default(),
        orphaned_devices: import.orphaned_devices,
    }))
}

pub(super) async fn status_of_apple(
    api: &AdminApi,
    request: Request<v1::GetAppleStatusRequest>,
) -> Reply<v1::AppleStatus> {
    let admin = api.admin(&request).await?;
    let status = api
        .core()
        .apple
        .status(&admin, Utc::now())
        .await
        .map_err(status)?;
    Ok(Response::new(v1::AppleStatus {
        push_certificates: status
            .push_certificates
            .into_iter()
            .map(push_certificate_msg)
            .collect(),
        warnings: status.warnings.into_iter().map(warning_msg).collect(),
    }))
}

pub(super) async fn create_enrollment_profile(
    api: &AdminApi,
    request: Request<v1::CreateAppleEnrollmentProfileRequest>,
) -> Reply<v1::AppleEnrollmentProfile> {
    let admin = api.admin(&request).await?;
    let r = request.into_inner();
    let user = (!r.user.trim().is_empty()).then_some(r.user.as_str());
    let apple = &api.core().apple;
    let enrollment = apple
        .new_enrollment(&admin, user, Utc::now())
        .await
        .map_err(status)?;
    let profile = apple.enrollment_profile(&enrollment).map_err(status)?;
    Ok(Response::new(v1::AppleEnrollmentProfile {
        profile,
        expires_at: unix(enrollment.expires_at),
        user: enrollment.user.unwrap_or_default(),
    }))
}

/// What `SyncAppleDep` streams: progress after each page, then the outcome
/// (or the error that ended the sync).
pub(super) type DepSyncStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<v1::AppleDepSyncProgress, Status>> + Send>,
>;

fn token_name(name: &str) -> Option<&str> {
    let name = name.trim();
    (!name.is_empty()).then_some(name)
}

fn dep_token_msg(t: DepTokenInfo) -> v1::AppleDepToken {
    let imported = t.imported.clone();
    v1::AppleDepToken {
        name: t.name,
        keypair_created_at: unix(t.created_at),
        imported: imported.is_some(),
        server_name: imported
            .as_ref()
            .map(|i| i.server_name.clone())
            .unwrap_or_default(),
        server_uuid: imported
            .as_ref()
            .map(|i| i.server_uuid.clone())
            .unwrap_or_default(),
        org_name: imported
            .as_ref()
            .map(|i| i.org_name.clone())
            .unwrap_or_default(),
        expires_at: imported.as_ref().map_or(0, |i| unix(i.expires_at)),
        imported_at: imported.as_ref().map_or(0, |i| unix(i.imported_at)),
        imported_by: imported.map(|i| i.imported_by).unwrap_or_default(),
        profile_uuid: t.profile_uuid.unwrap_or_default(),
        has_cursor: t.has_cursor,
        cursor_at: t.cursor_at.map_or(0, unix),
        last_sync_at: t.last_sync_at.map_or(0, unix),
        last_sync_outcome: t.last_sync_outcome.unwrap_or_default(),
        devices: t.devices,
    }
}

pub(super) async fn create_dep_keypair(
    api: &AdminApi,
    request: Request<v1::CreateAppleDepKeypairRequest>,
) -> Reply<v1::AppleDepKeypair> {
    let admin = api.admin(&request).await?;
    let r = request.into_inner();
    let keypair = api
        .core()
        .apple
        .dep_keypair(&admin, token_name(&r.name), Utc::now())
        .await
        .map_err(status)?;
    Ok(Response::new(v1::AppleDepKeypair {
        name: keypair.name,
        certificate_pem: keypair.certificate_pem,
        created: keypair.created,
    }))
}

pub(super) async fn import_dep_token(
    api: &AdminApi,
    request: Request<v1::ImportAppleDepTokenRequest>,
) -> Reply<v1::AppleDepToken> {
    let admin = api.admin(&request).await?;
    let r = request.into_inner();
    if r.token_file.len() > MAX_TOKEN_FILE_BYTES {
        return Err(Status::invalid_argument(format!(
            "the token file is {} bytes; Apple's are a few KiB (at most {MAX_TOKEN_FILE_BYTES} bytes)",
            r.token_file.len()
        )));
    }
    let token = api
        .core()
        .apple
        .import_dep_token(&admin, token_name(&r.name), &r.token_file, Utc::now())
        .await
        .map_err(status)?;
    Ok(Response::new(dep_token_msg(token)))
}

pub(super) async fn reset_dep_cursor(
    api: &AdminApi,
    request: Request<v1::ResetAppleDepCursorRequest>,
) -> Reply<v1::AppleDepToken> {
    let admin = api.admin(&request).await?;
    let r = request.into_inner();
    let token = api
        .core()
        .apple
        .reset_dep_cursor(&admin, token_name(&r.name), Utc::now())
        .await
        .map_err(status)?;
    Ok(Response::new(dep_token_msg(token)))
}

pub(super) async fn list_dep_tokens(
    api: &AdminApi,
    request: Request<v1::ListAppleDepTokensRequest>,
) -> Reply<v1::ListAppleDepTokensResponse> {
    let admin = api.admin(&request).await?;
    let tokens = api
        .core()
        .apple
        .dep_tokens(&admin, Utc::now())
        .await
        .map_err(status)?;
    Ok(Response::new(v1::ListAppleDepTokensResponse {
        tokens: tokens.into_iter().map(dep_token_msg).collect(),
    }))
}

/// Runs the sync in its own task, so that it finishes (and releases the
/// token's lease) even when latchctl goes away; the stream carries a line
/// per page Apple answers and then the outcome.
pub(super) async fn sync_dep(
    api: &AdminApi,
    request: Request<v1::SyncAppleDepRequest>,
) -> Reply<DepSyncStream> {
    let admin = api.admin(&request).await?;
    let name = request.into_inner().name;
    let apple = api.core().apple.clone();
    let (sender, receiver) = tokio::sync::mpsc::channel(32);
    tokio::spawn(async move {
        let progress_sender = sender.clone();
        let progress_name = name.clone();
        let progress = move |fetched: u64| {
            // A slow reader misses progress lines, never the outcome.
            let _ = progress_sender.try_send(Ok(v1::AppleDepSyncProgress {
                name: progress_name.clone(),
                fetched,
                ..Default::default()
            }));
        };
        let result = apple
            .sync_dep_now(&admin, token_name(&name), &progress, Utc::now())
            .await;
        let last = result.map_err(status).map(|r| v1::AppleDepSyncProgress {
            name: name.clone(),
            fetched: r.fetched,
            done: true,
            added: r.added,
            updated: r.updated,
            retired: r.retired,
            assigned: r.assigned,
            assign_failed: r.assign_failed,
            refetched: r.refetched,
        });
        let _ = sender.send(last).await;
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok(Response::new(Box::pin(stream)))
}
