//! The enrollment profile a new enrollment is handed out as: the server's
//! Apple settings and the enrollment's one-time challenge, rendered by
//! `profile.rs`. latchctl writes it as it is; the enrollment page serves
//! it signed.

use super::profile::{
    AccessRights, EnrollmentProfileSettings, ProfileError, ServerCapability,
    render_enrollment_profile,
};
use crate::core::CoreError;
use crate::core::apple::{Apple, NewEnrollment};

/// The `.mobileconfig` for `enrollment`, unsigned.
pub fn enrollment_profile(apple: &Apple, enrollment: &NewEnrollment) -> Result<Vec<u8>, CoreError> {
    let settings = apple.settings();
    let profile = EnrollmentProfileSettings {
        organization: settings.organization.clone(),
        display_name: format!("{} device management", settings.organization),
        identifier_base: settings.identifier_base(),
        push_topic: enrollment.topic.clone(),
        server_url: settings.server_url(),
        check_in_url: Some(settings.check_in_url()),
        scep_url: settings.scep_url(),
        scep_challenge: enrollment.challenge.clone(),
        scep_subject_common_name: "Latchkey device identity".into(),
        scep_name: Some("Latchkey".into()),
        ca_certificate_der: apple.ca_certificate_der()?,
        access_rights: AccessRights::ALL,
        sign_message: true,
        server_capabilities: vec![ServerCapability::BootstrapToken],
        check_out_when_removed: true,
    };
    render_enrollment_profile(&profile)
        .map(|rendered| rendered.bytes)
        .map_err(|e: ProfileError| {
            CoreError::FailedPrecondition(format!("the enrollment profile cannot be made: {e}"))
        })
}
