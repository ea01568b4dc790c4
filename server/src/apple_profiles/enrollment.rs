//! The enrollment profile: the `.mobileconfig` that enrolls an Apple device
//! in MDM, as an unsigned XML property list (signing it as attached CMS is
//! done elsewhere). It holds three payloads: the CA as
//! `com.apple.security.root`, the device identity as
//! `com.apple.security.scep`, and `com.apple.mdm`, whose
//! `IdentityCertificateUUID` is the SCEP payload's `PayloadUUID`.
//!
//! Built to Apple's schema `apple/device-management`, `mdm/profiles/`:
//! `TopLevel.yaml`, `com.apple.mdm.yaml`, `com.apple.security.scep.yaml`,
//! `com.apple.security.root.yaml`.
//!
//! Rendering is a pure function of its settings: the same settings give
//! the same bytes. The profile's and the MDM payload's identifiers and
//! UUIDs derive from the identifier base and the push topic only, so a
//! profile rendered again (a new SCEP challenge, a renewed identity)
//! replaces the installed one instead of enrolling twice (apple.md §11.4).
//! The SCEP payload's UUID also covers the SCEP settings, so a new
//! challenge is a new identity payload; the root payload's covers the CA.

use std::fmt;

use plist::{Dictionary, Value};
use ring::digest;

use super::{EncodeError, text, to_xml};

/// `AccessRights` of the MDM payload: a bit set the schema constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRights(u32);

/// Why a set of access rights is refused (`com.apple.mdm.yaml`: "Don't set
/// to 0. Specify 1 if you specify 2. Specify 64 if you specify 128.").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessRightsError {
    #[error("access rights must not be 0")]
    Zero,
    #[error("access right 2 (install and remove profiles) needs right 1 (inspect profiles)")]
    InstallWithoutInspect,
    #[error(
        "access right 128 (install and remove provisioning profiles) needs right 64 (inspect provisioning profiles)"
    )]
    ProvisioningInstallWithoutInspect,
    #[error("access rights {0} name bits beyond 4096, the last right Apple defines")]
    UnknownBits(u32),
}

impl AccessRights {
    /// Every right Apple defines: 1 + 2 + … + 4096.
    pub const ALL: AccessRights = AccessRights(8191);

    pub fn new(bits: u32) -> Result<Self, AccessRightsError> {
        if bits == 0 {
            return Err(AccessRightsError::Zero);
        }
        if bits & !Self::ALL.0 != 0 {
            return Err(AccessRightsError::UnknownBits(bits));
        }
        if bits & 2 != 0 && bits & 1 == 0 {
            return Err(AccessRightsError::InstallWithoutInspect);
        }
        if bits & 128 != 0 && bits & 64 == 0 {
            return Err(AccessRightsError::ProvisioningInstallWithoutInspect);
        }
        Ok(AccessRights(bits))
    }

    pub fn bits(self) -> u32 {
        self.0
    }
}

impl Default for AccessRights {
    fn default() -> Self {
        AccessRights::ALL
    }
}

/// `ServerCapabilities` of the MDM payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerCapability {
    /// Device and user channels (macOS users, Shared iPad).
    PerUserConnections,
    /// Bootstrap token escrow (macOS 11+).
    BootstrapToken,
    /// The `GetToken` check-in message.
    Token,
}

impl ServerCapability {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerCapability::PerUserConnections => "com.apple.mdm.per-user-connections",
            ServerCapability::BootstrapToken => "com.apple.mdm.bootstraptoken",
            ServerCapability::Token => "com.apple.mdm.token",
        }
    }
}

/// What the enrollment profile is rendered from.
#[derive(Clone)]
pub struct EnrollmentProfileSettings {
    /// `PayloadOrganization`.
    pub organization: String,
    /// The profile's `PayloadDisplayName`.
    pub display_name: String,
    /// Reverse-DNS base of every `PayloadIdentifier`, e.g. `com.example.mdm`.
    pub identifier_base: String,
    /// The APNs topic (the push certificate's UID): `com.apple.mgmt.…`.
    pub push_topic: String,
    pub server_url: String,
    /// Defaults to the server URL on the device when absent.
    pub check_in_url: Option<String>,
    pub scep_url: String,
    pub scep_challenge: String,
    /// The common name the identity certificate is requested with.
    pub scep_subject_common_name: String,
    /// SCEP `Name`: sent as the `message` of GetCACert.
    pub scep_name: Option<String>,
    /// The CA certificate, DER, installed as a trust anchor.
    pub ca_certificate_der: Vec<u8>,
    pub access_rights: AccessRights,
    /// Devices sign every request (`Mdm-Signature`).
    pub sign_message: bool,
    pub server_capabilities: Vec<ServerCapability>,
    /// The device attempts one `CheckOut` when the profile is removed.
    pub check_out_when_removed: bool,
}

impl fmt::Debug for EnrollmentProfileSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentProfileSettings")
            .field("organization", &self.organization)
            .field("identifier_base", &self.identifier_base)
            .field("push_topic", &self.push_topic)
            .field("server_url", &self.server_url)
            .field("check_in_url", &self.check_in_url)
            .field("scep_url", &self.scep_url)
            .field("scep_challenge", &"[redacted]")
            .field("access_rights", &self.access_rights)
            .finish_non_exhaustive()
    }
}

/// Why a profile cannot be rendered from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("the push topic {0} does not start with com.apple.mgmt.")]
    TopicNotMdm(String),
    #[error("{field} {url} is not an https URL with a host")]
    NotHttps { field: &'static str, url: String },
    #[error("the SCEP URL {0} has a query or fragment; devices append their own query to it")]
    ScepUrlWithQuery(String),
    #[error(
        "the identifier base {0} is not a reverse-DNS name (letters, digits, '-', dot-separated)"
    )]
    NotReverseDns(String),
    #[error(transparent)]
    AccessRights(#[from] AccessRightsError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// The enrollment profile's `PayloadIdentifier` under `identifier_base`:
/// the same for every profile a deployment renders, so a refreshed one
/// replaces the installed one.
pub fn enrollment_profile_identifier(identifier_base: &str) -> String {
    format!("{identifier_base}.enrollment")
}

/// A rendered profile and the identifier by which a device knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedProfile {
    pub identifier: String,
    pub uuid: String,
    pub bytes: Vec<u8>,
}

/// A UUID derived from `parts`: the same parts give the same UUID, in the
/// upper-case form Apple's tools write.
pub(super) fn stable_uuid(parts: &[&[u8]]) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(b"latchkey apple profile uuid\0");
    for part in parts {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    let digest = context.finish();
    let mut bytes = [0u8; 16];
    for (byte, from) in bytes.iter_mut().zip(digest.as_ref()) {
        *byte = *from;
    }
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
        .to_uppercase()
}

/// Refuses an empty setting.
pub(super) fn non_empty(field: &'static str, value: &str) -> Result<(), ProfileError> {
    if value.trim().is_empty() {
        Err(ProfileError::Empty { field })
    } else {
        Ok(())
    }
}

/// A reverse-DNS identifier: dot-separated labels of ASCII letters, digits
/// and '-'.
pub(super) fn reverse_dns(identifier: &str) -> Result<(), ProfileError> {
    let valid = !identifier.is_empty()
        && identifier.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(ProfileError::NotReverseDns(identifier.to_owned()))
    }
}

fn https(field: &'static str, value: &str) -> Result<url::Url, ProfileError> {
    let not_https = || ProfileError::NotHttps {
        field,
        url: value.to_owned(),
    };
    let url = url::Url::parse(value).map_err(|_| not_https())?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
        return Err(not_https());
    }
    Ok(url)
}

/// The keys every payload starts with (`CommonPayloadKeys`).
pub(super) fn payload(
    payload_type: &str,
    identifier: &str,
    uuid: &str,
    display_name: &'static str,
) -> Dictionary {
    let mut entries = Dictionary::new();
    entries.insert("PayloadType".into(), Value::String(payload_type.into()));
    entries.insert("PayloadVersion".into(), Value::Integer(1.into()));
    entries.insert("PayloadIdentifier".into(), Value::String(identifier.into()));
    entries.insert("PayloadUUID".into(), Value::String(uuid.into()));
    entries.insert(
        "PayloadDisplayName".into(),
        Value::String(display_name.into()),
    );
    entries
}

/// The top level of a profile (`TopLevel.yaml`) around `content`.
pub(super) fn top_level(
    identifier: &str,
    uuid: &str,
    display_name: &str,
    organization: &str,
    content: Vec<Value>,
) -> Result<Dictionary, ProfileError> {
    let mut entries = Dictionary::new();
    entries.insert("PayloadType".into(), Value::String("Configuration".into()));
    entries.insert("PayloadVersion".into(), Value::Integer(1.into()));
    entries.insert("PayloadIdentifier".into(), Value::String(identifier.into()));
    entries.insert("PayloadUUID".into(), Value::String(uuid.into()));
    entries.insert(
        "PayloadDisplayName".into(),
        text("PayloadDisplayName", display_name)?,
    );
    entries.insert(
        "PayloadOrganization".into(),
        text("PayloadOrganization", organization)?,
    );
    entries.insert("PayloadContent".into(), Value::Array(content));
    Ok(entries)
}

/// Renders the enrollment profile, after checking its settings: the topic
/// is an MDM topic, every URL is https, the SCEP URL has no query, the
/// identifier base is reverse-DNS and no required text is empty.
pub fn render_enrollment_profile(
    settings: &EnrollmentProfileSettings,
) -> Result<RenderedProfile, ProfileError> {
    non_empty("organization", &settings.organization)?;
    non_empty("display name", &settings.display_name)?;
    reverse_dns(&settings.identifier_base)?;
    let topic = &settings.push_topic;
    match topic.strip_prefix("com.apple.mgmt.") {
        Some(rest) if !rest.is_empty() => {}
        _ => return Err(ProfileError::TopicNotMdm(topic.clone())),
    }
    https("server URL", &settings.server_url)?;
    if let Some(check_in_url) = &settings.check_in_url {
        https("check-in URL", check_in_url)?;
    }
    let scep_url = https("SCEP URL", &settings.scep_url)?;
    if scep_url.query().is_some() || scep_url.fragment().is_some() {
        return Err(ProfileError::ScepUrlWithQuery(settings.scep_url.clone()));
    }
    non_empty("SCEP challenge", &settings.scep_challenge)?;
    non_empty(
        "SCEP subject common name",
        &settings.scep_subject_common_name,
    )?;
    if settings.ca_certificate_der.is_empty() {
        return Err(ProfileError::Empty {
            field: "CA certificate",
        });
    }
    let rights = settings.access_rights;

    let base = settings.identifier_base.as_str();
    let identifier = enrollment_profile_identifier(base);
    let deployment = [base.as_bytes(), topic.as_bytes()];
    let profile_uuid = stable_uuid(&[deployment[0], deployment[1], b"profile"]);
    let mdm_uuid = stable_uuid(&[deployment[0], deployment[1], b"mdm"]);
    let scep_name = settings.scep_name.as_deref().unwrap_or("");
    let scep_uuid = stable_uuid(&[
        deployment[0],
        deployment[1],
        b"scep",
        settings.scep_url.as_bytes(),
        settings.scep_challenge.as_bytes(),
        settings.scep_subject_common_name.as_bytes(),
        scep_name.as_bytes(),
    ]);
    let ca_digest = digest::digest(&digest::SHA256, &settings.ca_certificate_der);
    let root_uuid = stable_uuid(&[deployment[0], b"root", ca_digest.as_ref()]);

    // com.apple.security.root.yaml
    let mut root = payload(
        "com.apple.security.root",
        &format!("{identifier}.ca"),
        &root_uuid,
        "Certificate authority",
    );
    root.insert(
        "PayloadCertificateFileName".into(),
        Value::String("ca.cer".into()),
    );
    root.insert(
        "PayloadContent".into(),
        Value::Data(settings.ca_certificate_der.clone()),
    );

    // com.apple.security.scep.yaml: Subject is an array of relative
    // distinguished names, each an array of [OID or short name, value]
    // pairs: three levels of arrays.
    let subject = Value::Array(vec![Value::Array(vec![Value::Array(vec![
        Value::String("CN".into()),
        text("Subject", &settings.scep_subject_common_name)?,
    ])])]);
    let mut scep_content = Dictionary::new();
    scep_content.insert("URL".into(), text("URL", &settings.scep_url)?);
    if let Some(name) = &settings.scep_name {
        scep_content.insert("Name".into(), text("Name", name)?);
    }
    scep_content.insert("Subject".into(), subject);
    scep_content.insert(
        "Challenge".into(),
        text("Challenge", &settings.scep_challenge)?,
    );
    scep_content.insert("Keysize".into(), Value::Integer(2048.into()));
    scep_content.insert("Key Type".into(), Value::String("RSA".into()));
    // 1 signing | 4 encryption.
    scep_content.insert("Key Usage".into(), Value::Integer(5.into()));
    // The identity is the device's key for the device-bound sign-in: it
    // must not be exportable from a Mac's keychain (on iOS it never is).
    scep_content.insert("KeyIsExtractable".into(), Value::Boolean(false));
    let mut scep = payload(
        "com.apple.security.scep",
        &format!("{identifier}.scep"),
        &scep_uuid,
        "Device identity",
    );
    scep.insert("PayloadContent".into(), Value::Dictionary(scep_content));

    // com.apple.mdm.yaml
    let mut mdm = payload(
        "com.apple.mdm",
        &format!("{identifier}.mdm"),
        &mdm_uuid,
        "Device management",
    );
    mdm.insert(
        "IdentityCertificateUUID".into(),
        Value::String(scep_uuid.clone()),
    );
    mdm.insert("Topic".into(), text("Topic", topic)?);
    mdm.insert("ServerURL".into(), text("ServerURL", &settings.server_url)?);
    if let Some(check_in_url) = &settings.check_in_url {
        mdm.insert("CheckInURL".into(), text("CheckInURL", check_in_url)?);
    }
    mdm.insert("SignMessage".into(), Value::Boolean(settings.sign_message));
    mdm.insert(
        "AccessRights".into(),
        Value::Integer(u64::from(rights.bits()).into()),
    );
    mdm.insert(
        "CheckOutWhenRemoved".into(),
        Value::Boolean(settings.check_out_when_removed),
    );
    let mut capabilities = settings.server_capabilities.clone();
    capabilities.sort();
    capabilities.dedup();
    if !capabilities.is_empty() {
        mdm.insert(
            "ServerCapabilities".into(),
            Value::Array(
                capabilities
                    .iter()
                    .map(|c| Value::String(c.as_str().into()))
                    .collect(),
            ),
        );
    }

    let profile = top_level(
        &identifier,
        &profile_uuid,
        &settings.display_name,
        &settings.organization,
        vec![
            Value::Dictionary(root),
            Value::Dictionary(scep),
            Value::Dictionary(mdm),
        ],
    )?;
    Ok(RenderedProfile {
        identifier,
        uuid: profile_uuid,
        bytes: to_xml(&Value::Dictionary(profile))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::apple::wire::read_plist;

    fn settings() -> EnrollmentProfileSettings {
        EnrollmentProfileSettings {
            organization: "Example Corp".into(),
            display_name: "Example Corp device management".into(),
            identifier_base: "com.example.mdm".into(),
            push_topic: "com.apple.mgmt.External.2b2d1f5e-6c0a-4f6e-9d43-6a1f0c3e8b11".into(),
            server_url: "https://mdm.example.com/mdm".into(),
            check_in_url: Some("https://mdm.example.com/checkin".into()),
            scep_url: "https://mdm.example.com/scep".into(),
            scep_challenge: "one-time-challenge".into(),
            scep_subject_common_name: "latchkey device".into(),
            scep_name: Some("Latchkey".into()),
            ca_certificate_der: vec![0x30, 0x82, 0x01, 0x0a, 0x02],
            access_rights: AccessRights::ALL,
            sign_message: true,
            server_capabilities: vec![
                ServerCapability::BootstrapToken,
                ServerCapability::PerUserConnections,
                ServerCapability::BootstrapToken,
            ],
            check_out_when_removed: true,
        }
    }

    fn parse(profile: &RenderedProfile) -> Value {
        assert!(profile.bytes.starts_with(b"<?xml"));
        read_plist(&profile.bytes).unwrap()
    }

    fn get<'a>(dict: &'a Dictionary, key: &str) -> &'a Value {
        dict.get(key)
            .unwrap_or_else(|| panic!("no {key} in {dict:?}"))
    }

    fn string<'a>(dict: &'a Dictionary, key: &str) -> &'a str {
        get(dict, key)
            .as_string()
            .unwrap_or_else(|| panic!("{key} is not a string"))
    }

    /// The payloads of a profile by `PayloadType`, in order.
    fn payloads(profile: &Value) -> Vec<&Dictionary> {
        get(profile.as_dictionary().unwrap(), "PayloadContent")
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_dictionary().unwrap())
            .collect()
    }

    #[test]
    fn the_enrollment_profile_has_root_scep_and_mdm_payloads_that_point_at_each_other() {
        let rendered = render_enrollment_profile(&settings()).unwrap();
        let profile = parse(&rendered);
        let top = profile.as_dictionary().unwrap();
        assert_eq!(string(top, "PayloadType"), "Configuration");
        assert_eq!(get(top, "PayloadVersion").as_signed_integer(), Some(1));
        assert_eq!(
            string(top, "PayloadIdentifier"),
            "com.example.mdm.enrollment"
        );
        assert_eq!(rendered.identifier, "com.example.mdm.enrollment");
        assert_eq!(string(top, "PayloadUUID"), rendered.uuid);
        assert_eq!(string(top, "PayloadOrganization"), "Example Corp");
        assert_eq!(
            string(top, "PayloadDisplayName"),
            "Example Corp device management"
        );

        let payloads = payloads(&profile);
        let types: Vec<&str> = payloads.iter().map(|p| string(p, "PayloadType")).collect();
        assert_eq!(
            types,
            [
                "com.apple.security.root",
                "com.apple.security.scep",
                "com.apple.mdm"
            ]
        );
        for payload in &payloads {
            assert_eq!(get(payload, "PayloadVersion").as_signed_integer(), Some(1));
            let uuid = string(payload, "PayloadUUID");
            assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{uuid}");
            assert_eq!(uuid, uuid.to_uppercase());
            assert!(
                string(payload, "PayloadIdentifier").starts_with("com.example.mdm.enrollment.")
            );
        }
        let (root, scep, mdm) = (payloads[0], payloads[1], payloads[2]);

        assert_eq!(
            get(root, "PayloadContent").as_data(),
            Some(&[0x30, 0x82, 0x01, 0x0a, 0x02][..])
        );

        let scep_content = get(scep, "PayloadContent").as_dictionary().unwrap();
        assert_eq!(string(scep_content, "URL"), "https://mdm.example.com/scep");
        assert_eq!(string(scep_content, "Name"), "Latchkey");
        assert_eq!(string(scep_content, "Challenge"), "one-time-challenge");
        assert_eq!(string(scep_content, "Key Type"), "RSA");
        assert_eq!(get(scep_content, "Keysize").as_signed_integer(), Some(2048));
        assert_eq!(get(scep_content, "Key Usage").as_signed_integer(), Some(5));
        assert_eq!(
            get(scep_content, "KeyIsExtractable").as_boolean(),
            Some(false)
        );
        // Subject: an array of RDNs, each an array of [type, value] pairs.
        let subject = get(scep_content, "Subject").as_array().unwrap();
        assert_eq!(subject.len(), 1);
        let rdn = subject[0].as_array().unwrap();
        assert_eq!(rdn.len(), 1);
        let pair = rdn[0].as_array().unwrap();
        assert_eq!(
            pair.iter().map(|v| v.as_string()).collect::<Vec<_>>(),
            [Some("CN"), Some("latchkey device")]
        );

        assert_eq!(
            string(mdm, "IdentityCertificateUUID"),
            string(scep, "PayloadUUID")
        );
        assert_eq!(
            string(mdm, "Topic"),
            "com.apple.mgmt.External.2b2d1f5e-6c0a-4f6e-9d43-6a1f0c3e8b11"
        );
        assert_eq!(string(mdm, "ServerURL"), "https://mdm.example.com/mdm");
        assert_eq!(string(mdm, "CheckInURL"), "https://mdm.example.com/checkin");
        assert_eq!(get(mdm, "SignMessage").as_boolean(), Some(true));
        assert_eq!(get(mdm, "CheckOutWhenRemoved").as_boolean(), Some(true));
        assert_eq!(get(mdm, "AccessRights").as_signed_integer(), Some(8191));
        assert_eq!(
            get(mdm, "ServerCapabilities")
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_string().unwrap())
                .collect::<Vec<_>>(),
            [
                "com.apple.mdm.per-user-connections",
                "com.apple.mdm.bootstraptoken"
            ]
        );
    }

    fn mdm_payload(profile: &RenderedProfile) -> (String, String, String) {
        let value = parse(profile);
        let payloads = payloads(&value);
        let mdm = payloads[2];
        (
            string(mdm, "PayloadIdentifier").to_owned(),
            string(mdm, "PayloadUUID").to_owned(),
            string(mdm, "IdentityCertificateUUID").to_owned(),
        )
    }

    #[test]
    fn uuids_are_stable_across_renders_and_a_new_challenge_keeps_the_mdm_payload() {
        let first = render_enrollment_profile(&settings()).unwrap();
        let again = render_enrollment_profile(&settings()).unwrap();
        assert_eq!(first, again, "the same settings render the same bytes");

        let mut renewed = settings();
        renewed.scep_challenge = "another-challenge".into();
        let renewed = render_enrollment_profile(&renewed).unwrap();
        assert_ne!(first.bytes, renewed.bytes);
        assert_eq!(first.identifier, renewed.identifier);
        assert_eq!(first.uuid, renewed.uuid);
        let (id_1, uuid_1, identity_1) = mdm_payload(&first);
        let (id_2, uuid_2, identity_2) = mdm_payload(&renewed);
        assert_eq!(id_1, id_2);
        assert_eq!(uuid_1, uuid_2, "a new challenge keeps the MDM payload UUID");
        assert_ne!(
            identity_1, identity_2,
            "a new challenge is a new identity payload"
        );

        let mut other_deployment = settings();
        other_deployment.push_topic = "com.apple.mgmt.External.other".into();
        let (_, uuid_3, _) = mdm_payload(&render_enrollment_profile(&other_deployment).unwrap());
        assert_ne!(uuid_1, uuid_3);
    }

    #[test]
    fn optional_settings_are_left_out() {
        let mut minimal = settings();
        minimal.check_in_url = None;
        minimal.scep_name = None;
        minimal.server_capabilities.clear();
        minimal.sign_message = false;
        let value = parse(&render_enrollment_profile(&minimal).unwrap());
        let payloads = payloads(&value);
        let scep_content = get(payloads[1], "PayloadContent").as_dictionary().unwrap();
        assert!(!scep_content.contains_key("Name"));
        let mdm = payloads[2];
        assert!(!mdm.contains_key("CheckInURL"));
        assert!(!mdm.contains_key("ServerCapabilities"));
        assert_eq!(get(mdm, "SignMessage").as_boolean(), Some(false));
    }

    #[test]
    fn access_rights_follow_the_schema_rules() {
        assert_eq!(AccessRights::new(0), Err(AccessRightsError::Zero));
        assert_eq!(
            AccessRights::new(2),
            Err(AccessRightsError::InstallWithoutInspect)
        );
        assert_eq!(
            AccessRights::new(1 | 128),
            Err(AccessRightsError::ProvisioningInstallWithoutInspect)
        );
        assert_eq!(
            AccessRights::new(8192),
            Err(AccessRightsError::UnknownBits(8192))
        );
        assert_eq!(AccessRights::new(3).map(AccessRights::bits), Ok(3));
        assert_eq!(
            AccessRights::new(1 | 64 | 128).map(AccessRights::bits),
            Ok(193)
        );
        assert_eq!(AccessRights::default(), AccessRights::ALL);
        let mut some_rights = settings();
        some_rights.access_rights = AccessRights::new(1 | 16 | 1024).unwrap();
        let value = parse(&render_enrollment_profile(&some_rights).unwrap());
        assert_eq!(
            get(payloads(&value)[2], "AccessRights").as_signed_integer(),
            Some(1041)
        );
    }

    #[test]
    fn bad_settings_are_refused_with_what_is_wrong() {
        let refused = |change: &dyn Fn(&mut EnrollmentProfileSettings)| {
            let mut s = settings();
            change(&mut s);
            render_enrollment_profile(&s).unwrap_err()
        };
        assert_eq!(
            refused(&|s| s.push_topic = "com.example.push".into()),
            ProfileError::TopicNotMdm("com.example.push".into())
        );
        assert_eq!(
            refused(&|s| s.push_topic = "com.apple.mgmt.".into()),
            ProfileError::TopicNotMdm("com.apple.mgmt.".into())
        );
        assert_eq!(
            refused(&|s| s.server_url = "http://mdm.example.com/mdm".into()),
            ProfileError::NotHttps {
                field: "server URL",
                url: "http://mdm.example.com/mdm".into()
            }
        );
        assert_eq!(
            refused(&|s| s.check_in_url = Some("mdm.example.com".into())),
            ProfileError::NotHttps {
                field: "check-in URL",
                url: "mdm.example.com".into()
            }
        );
        assert_eq!(
            refused(&|s| s.scep_url = "https://mdm.example.com/scep?x=1".into()),
            ProfileError::ScepUrlWithQuery("https://mdm.example.com/scep?x=1".into())
        );
        assert_eq!(
            refused(&|s| s.scep_challenge = String::new()),
            ProfileError::Empty {
                field: "SCEP challenge"
            }
        );
        assert_eq!(
            refused(&|s| s.ca_certificate_der.clear()),
            ProfileError::Empty {
                field: "CA certificate"
            }
        );
        assert_eq!(
            refused(&|s| s.identifier_base = "com..example".into()),
            ProfileError::NotReverseDns("com..example".into())
        );
        assert_eq!(
            refused(&|s| s.organization = "Example\u{7}Corp".into()),
            ProfileError::Encode(EncodeError::UnencodableText {
                key: "PayloadOrganization"
            })
        );
    }

    #[test]
    fn the_challenge_does_not_print() {
        let printed = format!("{:?}", settings());
        assert!(!printed.contains("one-time-challenge"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
