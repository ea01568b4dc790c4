//! The plain types the ADE client hands its callers, and their reading
//! from the wire types of `wire.rs`: no serde here, so the layers above
//! never see Apple's JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::DepError;
use super::wire;

/// An opaque position in a server's device list (`FetchDeviceRequest.json`
/// `cursor`), to persist between syncs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DepCursor(String);

impl DepCursor {
    pub fn new(cursor: impl Into<String>) -> Self {
        DepCursor(cursor.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A profile's identifier at Apple.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DepProfileUuid(String);

impl DepProfileUuid {
    pub fn new(uuid: impl Into<String>) -> Self {
        DepProfileUuid(uuid.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The account behind the token (`GET /account`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepAccount {
    pub server_name: Option<String>,
    /// Issuer of the MAID JWT (`GetToken`), among others.
    pub server_uuid: Option<String>,
    /// Who made the token (`admin_id`, else the older `facilitator_id`).
    pub admin_id: Option<String>,
    pub org_name: Option<String>,
    pub org_email: Option<String>,
    pub org_phone: Option<String>,
    pub org_address: Option<String>,
    pub org_id: Option<String>,
    pub org_id_hash: Option<String>,
    pub org_type: Option<String>,
    pub org_version: Option<String>,
}

/// Whether the device's enrollment profile is in place (`profile_status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileStatus {
    Empty,
    Assigned,
    Pushed,
    Removed,
    Other(String),
}

impl ProfileStatus {
    pub(super) fn parse(text: &str) -> Self {
        match text {
            "empty" => ProfileStatus::Empty,
            "assigned" => ProfileStatus::Assigned,
            "pushed" => ProfileStatus::Pushed,
            "removed" => ProfileStatus::Removed,
            other => ProfileStatus::Other(other.to_owned()),
        }
    }
}

/// What happened to a device, in a sync answer (`op_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceOp {
    /// Assigned to this server.
    Added,
    Modified,
    /// Released or moved to another server.
    Deleted,
    Other(String),
}

impl DeviceOp {
    pub(super) fn parse(text: &str) -> Self {
        match text {
            "added" => DeviceOp::Added,
            "modified" => DeviceOp::Modified,
            "deleted" => DeviceOp::Deleted,
            other => DeviceOp::Other(other.to_owned()),
        }
    }
}

/// A device assigned to this server in Apple Business Manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepDevice {
    pub serial_number: String,
    pub model: Option<String>,
    pub description: Option<String>,
    pub color: Option<String>,
    pub asset_tag: Option<String>,
    /// `iOS`, `iPadOS`, `OSX`, `tvOS`, `visionOS`.
    pub os: Option<String>,
    /// `iPad`, `iPhone`, `iPod`, `Mac`, `AppleTV`, `Vision`.
    pub device_family: Option<String>,
    pub profile_status: Option<ProfileStatus>,
    pub profile_uuid: Option<DepProfileUuid>,
    pub profile_assign_time: Option<DateTime<Utc>>,
    pub profile_push_time: Option<DateTime<Utc>>,
    pub device_assigned_by: Option<String>,
    pub device_assigned_date: Option<DateTime<Utc>>,
    /// Sync answers only.
    pub op_type: Option<DeviceOp>,
    pub op_date: Option<DateTime<Utc>>,
}

/// One page of a fetch or a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePage {
    pub devices: Vec<DepDevice>,
    /// Where the next request starts; persist it.
    pub cursor: DepCursor,
    /// Ask again at once with `cursor`.
    pub more_to_follow: bool,
    pub fetched_until: DateTime<Utc>,
}

/// A Setup Assistant profile (`Profile.json`). Set `configuration_web_url`
/// as well as `url`: without it Apple switches the device's request from
/// GET to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepProfile {
    pub profile_name: String,
    /// Where the device fetches its enrollment profile.
    pub url: String,
    pub configuration_web_url: Option<String>,
    pub is_supervised: Option<bool>,
    pub is_mandatory: Option<bool>,
    pub is_mdm_removable: bool,
    pub is_multi_user: Option<bool>,
    pub await_device_configured: Option<bool>,
    pub allow_pairing: Option<bool>,
    pub auto_advance_setup: Option<bool>,
    /// ISO 639-1 or 639-2 (2 or 3 letters).
    pub language: Option<String>,
    /// ISO 3166-1 (2 letters).
    pub region: Option<String>,
    pub org_magic: String,
    pub department: Option<String>,
    pub support_phone_number: Option<String>,
    pub support_email_address: Option<String>,
    /// Base64 DER certificates the device trusts for `url`.
    pub anchor_certs: Vec<String>,
    pub supervising_host_certs: Vec<String>,
    pub skip_setup_items: Vec<String>,
    /// Serial numbers to assign the profile to as it is defined.
    pub devices: Vec<String>,
}

impl DepProfile {
    /// A profile with only the required keys set: removable by the user,
    /// nothing skipped, no devices.
    pub fn new(
        profile_name: impl Into<String>,
        url: impl Into<String>,
        org_magic: impl Into<String>,
    ) -> Self {
        DepProfile {
            profile_name: profile_name.into(),
            url: url.into(),
            configuration_web_url: None,
            is_supervised: None,
            is_mandatory: None,
            is_mdm_removable: true,
            is_multi_user: None,
            await_device_configured: None,
            allow_pairing: None,
            auto_advance_setup: None,
            language: None,
            region: None,
            org_magic: org_magic.into(),
            department: None,
            support_phone_number: None,
            support_email_address: None,
            anchor_certs: Vec::new(),
            supervising_host_certs: Vec::new(),
            skip_setup_items: Vec::new(),
            devices: Vec::new(),
        }
    }

    pub(super) fn to_wire(&self) -> wire::Profile {
        wire::Profile {
            profile_name: Some(self.profile_name.clone()),
            url: Some(self.url.clone()),
            configuration_web_url: self.configuration_web_url.clone(),
            is_supervised: self.is_supervised,
            is_mandatory: self.is_mandatory,
            is_mdm_removable: self.is_mdm_removable,
            is_multi_user: self.is_multi_user,
            await_device_configured: self.await_device_configured,
            allow_pairing: self.allow_pairing,
            auto_advance_setup: self.auto_advance_setup,
            language: self.language.clone(),
            region: self.region.clone(),
            org_magic: self.org_magic.clone(),
            department: self.department.clone(),
            support_phone_number: self.support_phone_number.clone(),
            support_email_address: self.support_email_address.clone(),
            anchor_certs: self.anchor_certs.clone(),
            supervising_host_certs: self.supervising_host_certs.clone(),
            skip_setup_items: self.skip_setup_items.clone(),
            devices: self.devices.clone(),
        }
    }

    pub(super) fn from_wire(profile: wire::Profile) -> Self {
        DepProfile {
            profile_name: profile.profile_name.unwrap_or_default(),
            url: profile.url.unwrap_or_default(),
            configuration_web_url: profile.configuration_web_url,
            is_supervised: profile.is_supervised,
            is_mandatory: profile.is_mandatory,
            is_mdm_removable: profile.is_mdm_removable,
            is_multi_user: profile.is_multi_user,
            await_device_configured: profile.await_device_configured,
            allow_pairing: profile.allow_pairing,
            auto_advance_setup: profile.auto_advance_setup,
            language: profile.language,
            region: profile.region,
            org_magic: profile.org_magic,
            department: profile.department,
            support_phone_number: profile.support_phone_number,
            support_email_address: profile.support_email_address,
            anchor_certs: profile.anchor_certs,
            supervising_host_certs: profile.supervising_host_certs,
            skip_setup_items: profile.skip_setup_items,
            devices: profile.devices,
        }
    }
}

/// How a device fared in a profile definition or assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignStatus {
    Success,
    /// Not assigned to this server (or unknown to Apple).
    NotAccessible,
    Failed,
    /// Assigned too often lately; try again later.
    Throttled,
    Other(String),
}

impl AssignStatus {
    pub(super) fn parse(text: &str) -> Self {
        match text {
            "SUCCESS" => AssignStatus::Success,
            "NOT_ACCESSIBLE" => AssignStatus::NotAccessible,
            "FAILED" => AssignStatus::Failed,
            "THROTTLED" => AssignStatus::Throttled,
            other => AssignStatus::Other(other.to_owned()),
        }
    }
}

/// The answer to a profile definition or assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileAssignment {
    pub profile_uuid: DepProfileUuid,
    /// Each serial number sent, and how it fared.
    pub devices: BTreeMap<String, AssignStatus>,
    /// For throttled devices (protocol version 10 and later).
    pub retry_after: Option<Duration>,
}

pub(super) fn parse_time(
    field: &str,
    value: Option<&str>,
) -> Result<Option<DateTime<Utc>>, DepError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                DepError::MalformedBody(format!("{field} {text:?} is not an ISO 8601 time"))
            }),
    }
}

pub(super) fn device_from_wire(device: wire::Device) -> Result<DepDevice, DepError> {
    Ok(DepDevice {
        profile_assign_time: parse_time(
            "profile_assign_time",
            device.profile_assign_time.as_deref(),
        )?,
        profile_push_time: parse_time("profile_push_time", device.profile_push_time.as_deref())?,
        device_assigned_date: parse_time(
            "device_assigned_date",
            device.device_assigned_date.as_deref(),
        )?,
        op_date: parse_time("op_date", device.op_date.as_deref())?,
        serial_number: device.serial_number,
        model: device.model,
        description: device.description,
        color: device.color,
        asset_tag: device.asset_tag,
        os: device.os,
        device_family: device.device_family,
        profile_status: device.profile_status.as_deref().map(ProfileStatus::parse),
        profile_uuid: device.profile_uuid.map(DepProfileUuid),
        device_assigned_by: device.device_assigned_by,
        op_type: device.op_type.as_deref().map(DeviceOp::parse),
    })
}

pub(super) fn page_from_wire(page: wire::FetchDeviceResponse) -> Result<DevicePage, DepError> {
    let fetched_until = parse_time("fetched_until", Some(&page.fetched_until))?
        .ok_or_else(|| DepError::MalformedBody("fetched_until is empty".into()))?;
    if page.cursor.is_empty() {
        return Err(DepError::MalformedBody("the cursor is empty".into()));
    }
    Ok(DevicePage {
        devices: page
            .devices
            .into_iter()
            .map(device_from_wire)
            .collect::<Result<_, _>>()?,
        cursor: DepCursor(page.cursor),
        more_to_follow: page.more_to_follow,
        fetched_until,
    })
}

pub(super) fn assignment_from_wire(
    answer: wire::ProfileResponse,
) -> Result<ProfileAssignment, DepError> {
    let uuid = answer
        .profile_uuid
        .filter(|u| !u.is_empty())
        .ok_or_else(|| DepError::MalformedBody("no profile_uuid".into()))?;
    Ok(ProfileAssignment {
        profile_uuid: DepProfileUuid(uuid),
        devices: answer
            .devices
            .into_iter()
            .map(|(serial, status)| (serial, AssignStatus::parse(&status)))
            .collect(),
        retry_after: answer
            .retry_after_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs),
    })
}
