//! The admin API's Apple calls: importing the APNs push certificate and
//! the Apple status. `admin.rs` routes the calls here.

use chrono::Utc;
use latchkey_proto::v1;
use tonic::{Request, Response, Status};

use super::admin::{AdminApi, Reply, unix};
use super::status;
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
