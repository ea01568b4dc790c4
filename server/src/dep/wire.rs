//! The JSON of Apple's device enrollment API, as its published schemas
//! describe it (micromdm/apple-device-services `dep/schemas/*.json`,
//! transcribed from Apple's "Device Assignment" documentation). These
//! types stay inside `dep/`: the client converts them to the plain types
//! of `dep/mod.rs`.
//!
//! Responses are read leniently where a strict reading would lose a whole
//! page to one odd record: unknown keys are ignored, and enumerations are
//! kept as text so a value Apple adds later reads as "other".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The answer of `GET /session` ("Authenticating with the Automated
/// Device Enrollment program"; the schemas have none).
#[derive(Debug, Deserialize)]
pub(super) struct SessionResponse {
    pub auth_session_token: String,
}

/// `dep/schemas/AccountDetail.json`, without `urls` (the endpoints and
/// their limits, `Url.json`), which the client does not use.
#[derive(Debug, Deserialize)]
pub(super) struct AccountDetail {
    pub server_name: Option<String>,
    pub server_uuid: Option<String>,
    pub admin_id: Option<String>,
    pub facilitator_id: Option<String>,
    pub org_name: Option<String>,
    pub org_email: Option<String>,
    pub org_phone: Option<String>,
    pub org_address: Option<String>,
    pub org_id: Option<String>,
    pub org_id_hash: Option<String>,
    /// `edu`, `org` or `tvprovider`.
    pub org_type: Option<String>,
    /// `v1` or `v2`.
    pub org_version: Option<String>,
}

/// `dep/schemas/FetchDeviceRequest.json`: both keys optional; no cursor on
/// the first request; `limit` at most 1000 (default 100).
#[derive(Debug, Serialize)]
pub(super) struct FetchDeviceRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `dep/schemas/SyncDeviceRequest.json`: `cursor` required.
#[derive(Debug, Serialize)]
pub(super) struct SyncDeviceRequest<'a> {
    pub cursor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `dep/schemas/FetchDeviceResponse.json` (the sync endpoint answers the
/// same shape): `cursor`, `fetched_until` and `more_to_follow` required.
#[derive(Debug, Deserialize)]
pub(super) struct FetchDeviceResponse {
    pub cursor: String,
    pub fetched_until: String,
    pub more_to_follow: bool,
    #[serde(default)]
    pub devices: Vec<Device>,
}

/// `dep/schemas/Device.json`. The schema requires `serial_number` and
/// `model`; `model` is read as optional so one record without it does not
/// cost the page.
#[derive(Debug, Deserialize)]
pub(super) struct Device {
    pub serial_number: String,
    pub model: Option<String>,
    pub description: Option<String>,
    pub asset_tag: Option<String>,
    pub color: Option<String>,
    pub device_assigned_by: Option<String>,
    pub device_assigned_date: Option<String>,
    /// `iPad`, `iPhone`, `iPod`, `Mac`, `AppleTV`, `Vision`.
    pub device_family: Option<String>,
    /// `iOS`, `iPadOS`, `OSX`, `tvOS`, `visionOS`.
    pub os: Option<String>,
    /// `empty`, `assigned`, `pushed`, `removed`.
    pub profile_status: Option<String>,
    pub profile_uuid: Option<String>,
    pub profile_assign_time: Option<String>,
    pub profile_push_time: Option<String>,
    /// `added`, `modified`, `deleted` (sync only).
    pub op_type: Option<String>,
    pub op_date: Option<String>,
}

/// `dep/schemas/Profile.json`, written by `POST /profile` and read by
/// `GET /profile`: `is_mdm_removable` and `org_magic` required. The
/// `profile_uuid` a `GET /profile` answer adds (the schema's `$comment`)
/// is the one asked for, and is not read.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_web_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_supervised: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_mandatory: Option<bool>,
    pub is_mdm_removable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_multi_user: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub await_device_configured: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_pairing: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_advance_setup: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub org_magic: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support_phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support_email_address: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anchor_certs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supervising_host_certs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_setup_items: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
}

/// `dep/schemas/DefineProfileResponse.json` and
/// `dep/schemas/AssignProfileResponse.json` (the same shape; the latter
/// adds `THROTTLED` and `retry_after_seconds`).
#[derive(Debug, Deserialize)]
pub(super) struct ProfileResponse {
    pub profile_uuid: Option<String>,
    #[serde(default)]
    pub devices: BTreeMap<String, String>,
    pub retry_after_seconds: Option<i64>,
}

/// `dep/schemas/ProfileServiceRequest.json`, the body of
/// `PUT /profile/devices`.
#[derive(Debug, Serialize)]
pub(super) struct ProfileServiceRequest<'a> {
    pub profile_uuid: &'a str,
    pub devices: &'a [String],
}
