//! The client of Apple's Automated Device Enrollment service (ADE,
//! formerly DEP: `https://mdmenrollment.apple.com`), as Apple documents it
//! under "Device Assignment" and "Authenticating with the Automated Device
//! Enrollment program".
//!
//! Every call carries an `X-ADM-Auth-Session` header. The session comes
//! from `GET /session`, signed with OAuth 1.0a HMAC-SHA1 ([`oauth`]) over
//! the server token's four secrets; the client keeps it behind a mutex,
//! takes the rotated value Apple may return on any answer, and when Apple
//! says it is no longer good (401, or 403 with `FORBIDDEN`) gets a new one
//! and sends the request once more. [`DepClient`] clones share that state,
//! so a sync job and an admin request use one session.
//!
//! The JSON lives in `wire.rs` and stays in `dep/`; callers see the plain
//! types of `types.rs`, re-exported here. What the caller can act on is a [`DepError`] variant of its own:
//! the three cursor errors (start over with a full fetch, or switch to
//! sync), an expired or refused token (the admin must upload a new one),
//! throttling with Apple's `Retry-After`.
//!
//! Time is the caller's `now`: it signs the session request and decides
//! whether the token has expired.

pub mod oauth;
mod types;
mod wire;

pub use types::{
    AssignStatus, DepAccount, DepCursor, DepDevice, DepProfile, DepProfileUuid, DeviceOp,
    DevicePage, ProfileAssignment, ProfileStatus,
};

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{HeaderName, HeaderValue, Method};
use latchkey_certs::dep::DepServerToken;
use tokio::sync::Mutex;
use url::Url;

use crate::http_client::{HttpClient, HttpError, HttpRequest, HttpResponse};
use types::{assignment_from_wire, page_from_wire};

/// Apple's service.
pub const APPLE_DEP_BASE_URL: &str = "https://mdmenrollment.apple.com";

/// The protocol version asked for in `X-Server-Protocol-Version`: 7 reports
/// iPads' `os` as `iPadOS`; 10 would add MAC addresses and THROTTLED
/// assignment answers.
pub const SERVER_PROTOCOL_VERSION: &str = "7";

/// The most devices one fetch or sync page may ask for
/// (`FetchDeviceRequest.json`).
pub const MAX_PAGE_LIMIT: u32 = 1000;

// HTTP status codes Apple's answers are told apart by (RFC 9110 §15).
const BAD_REQUEST: u16 = 400;
const UNAUTHORIZED: u16 = 401;
const FORBIDDEN: u16 = 403;
const TOO_MANY_REQUESTS: u16 = 429;

const SESSION_HEADER: HeaderName = HeaderName::from_static("x-adm-auth-session");
const PROTOCOL_HEADER: HeaderName = HeaderName::from_static("x-server-protocol-version");
const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF8";
/// Error codes longer than this are cut in errors and logs.
const MAX_CODE_CHARS: usize = 200;

/// What went wrong talking to Apple, in the terms the caller acts on.
#[derive(Debug, thiserror::Error)]
pub enum DepError {
    #[error(
        "the ADE server token expired at {expired_at}: download a renewed token from \
         Apple Business Manager"
    )]
    TokenExpired { expired_at: DateTime<Utc> },
    #[error(
        "Apple refused the ADE server token ({status} {code}): check that the token is the \
         current one for this server"
    )]
    AuthRefused { status: u16, code: String },
    #[error("Apple asks that the Apple Business Manager terms and conditions be accepted first")]
    TermsNotAccepted,
    #[error("the device cursor is exhausted: the full fetch is complete, sync from its cursor")]
    CursorExhausted,
    #[error("the device cursor expired: start over with a full fetch")]
    CursorExpired,
    #[error("Apple does not know the device cursor: start over with a full fetch")]
    CursorInvalid,
    #[error("Apple is throttling requests{}", retry_after.map(|d| format!("; retry after {} s", d.as_secs())).unwrap_or_default())]
    Throttled { retry_after: Option<Duration> },
    #[error("Apple refused the request ({status} {code})")]
    Rejected { status: u16, code: String },
    #[error("Apple's service failed ({status} {code})")]
    ServerError { status: u16, code: String },
    #[error("Apple's answer is malformed: {0}")]
    MalformedBody(String),
    #[error("the request is invalid: {0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// Where the client talks to and how it names itself.
#[derive(Debug, Clone)]
pub struct DepConfig {
    /// Apple's service, or a fake in tests (plain http only on loopback).
    pub base_url: String,
    /// Apple refuses requests without a User-Agent (`USER_AGENT_INVALID`).
    pub user_agent: String,
}

impl DepConfig {
    /// Apple's own service.
    pub fn apple(user_agent: impl Into<String>) -> Self {
        DepConfig {
            base_url: APPLE_DEP_BASE_URL.to_owned(),
            user_agent: user_agent.into(),
        }
    }
}

/// Apple's ADE service for one server token. Clones share the session.
#[derive(Clone)]
pub struct DepClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    base_url: Url,
    user_agent: HeaderValue,
    token: DepServerToken,
    /// The current `X-ADM-Auth-Session`; held across a `/session` call so
    /// concurrent requests wait for one new session instead of each
    /// asking for its own.
    session: Mutex<Option<String>>,
}

impl std::fmt::Debug for DepClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DepClient")
            .field("base_url", &self.inner.base_url.as_str())
            .field("token", &self.inner.token)
            .finish_non_exhaustive()
    }
}

/// The short error code Apple puts in an error body (`EXHAUSTED_CURSOR`,
/// `"FORBIDDEN"`, …), cut to a readable length.
fn error_code(response: &HttpResponse) -> String {
    let text = response.text_lossy();
    let code = text.trim().trim_matches('"').trim();
    code.chars().take(MAX_CODE_CHARS).collect()
}

/// Whether Apple says the session is no longer good: 401, or 403 with
/// `FORBIDDEN` (an unknown session).
fn session_refused(response: &HttpResponse) -> bool {
    response.status == UNAUTHORIZED
        || (response.status == FORBIDDEN && error_code(response) == "FORBIDDEN")
}

/// RFC 9110 §10.2.3: a number of seconds or an HTTP date.
fn retry_after(response: &HttpResponse, now: DateTime<Utc>) -> Option<Duration> {
    let value = response.header("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

fn json_body<T: serde::Serialize>(value: &T) -> Result<bytes::Bytes, DepError> {
    serde_json::to_vec(value)
        .map(bytes::Bytes::from)
        .map_err(|e| DepError::InvalidRequest(e.to_string()))
}

fn clamp_limit(limit: Option<u32>) -> Option<u32> {
    limit.map(|l| l.clamp(1, MAX_PAGE_LIMIT))
}

impl DepClient {
    pub fn new(
        config: DepConfig,
        token: DepServerToken,
        http: HttpClient,
    ) -> Result<Self, DepError> {
        let base_url = Url::parse(&config.base_url)
            .map_err(|e| DepError::InvalidRequest(format!("{}: {e}", config.base_url)))?;
        crate::http_client::check_url(&base_url)?;
        let user_agent = HeaderValue::from_str(config.user_agent.trim())
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                DepError::InvalidRequest("the user agent is empty or not a header value".into())
            })?;
        Ok(DepClient {
            inner: Arc::new(Inner {
                http,
                base_url,
                user_agent,
                token,
                session: Mutex::new(None),
            }),
        })
    }

    /// When the token stops working.
    pub fn token_expiry(&self) -> DateTime<Utc> {
        self.inner.token.access_token_expiry
    }

    fn url(&self, path_and_query: &str) -> Result<Url, DepError> {
        let base = self.inner.base_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path_and_query}"))
            .map_err(|e| DepError::InvalidRequest(format!("{path_and_query}: {e}")))
    }

    /// A request with the headers every call carries.
    fn request(&self, method: Method, url: Url) -> Result<HttpRequest, DepError> {
        Ok(HttpRequest::new(method, url)
            .header(http::header::USER_AGENT, self.inner.user_agent.clone())
            .header(
                PROTOCOL_HEADER,
                HeaderValue::from_static(SERVER_PROTOCOL_VERSION),
            )
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(JSON_CONTENT_TYPE),
            ))
    }

    /// `GET /session`, OAuth 1.0a signed as of `now`.
    async fn new_session(&self, now: DateTime<Utc>) -> Result<String, DepError> {
        let url = self.url("/session")?;
        let token = &self.inner.token;
        let credentials = oauth::OAuthCredentials {
            consumer_key: &token.consumer_key,
            consumer_secret: &token.consumer_secret,
            token: &token.access_token,
            token_secret: &token.access_secret,
        };
        let nonce = latchkey_certs::random_bytes::<16>()
            .map_err(|e| DepError::InvalidRequest(e.to_string()))?;
        let params = oauth::signed_parameters(
            "GET",
            &url,
            &credentials,
            now.timestamp(),
            &hex::encode(nonce),
        );
        let authorization = HeaderValue::from_str(&oauth::authorization_header("ADM", &params))
            .map_err(|_| {
                DepError::InvalidRequest("the token holds characters a header cannot".into())
            })?;
        let request = self
            .request(Method::GET, url)?
            .header(http::header::AUTHORIZATION, authorization);
        let response = self.inner.http.send(request).await?;
        if !response.is_success() {
            return Err(match response.status {
                BAD_REQUEST | UNAUTHORIZED | FORBIDDEN => {
                    let code = error_code(&response);
                    if code == "T_C_NOT_SIGNED" {
                        DepError::TermsNotAccepted
                    } else {
                        DepError::AuthRefused {
                            status: response.status,
                            code,
                        }
                    }
                }
                _ => status_error(&response, now),
            });
        }
        let session: wire::SessionResponse = response
            .json()
            .map_err(|e| DepError::MalformedBody(e.to_string()))?;
        if session.auth_session_token.is_empty()
            || HeaderValue::from_str(&session.auth_session_token).is_err()
        {
            return Err(DepError::MalformedBody(
                "the session token is empty or not a header value".into(),
            ));
        }
        Ok(session.auth_session_token)
    }

    /// The current session, or a new one.
    async fn session(&self, now: DateTime<Utc>) -> Result<String, DepError> {
        let mut current = self.inner.session.lock().await;
        if let Some(session) = current.as_ref() {
            return Ok(session.clone());
        }
        let session = self.new_session(now).await?;
        tracing::debug!("new ADE session");
        *current = Some(session.clone());
        Ok(session)
    }

    /// Forgets `refused`, unless another request replaced it already.
    async fn forget_session(&self, refused: &str) {
        let mut current = self.inner.session.lock().await;
        if current.as_deref() == Some(refused) {
            *current = None;
        }
    }

    /// Takes the rotated session Apple may send with an answer.
    async fn keep_rotated(&self, used: &str, response: &HttpResponse) {
        let Some(rotated) = response.header(SESSION_HEADER.as_str()) else {
            return;
        };
        if rotated.is_empty() || rotated == used {
            return;
        }
        let mut current = self.inner.session.lock().await;
        if current.as_deref() == Some(used) || current.is_none() {
            *current = Some(rotated.to_owned());
        }
    }

    /// Sends a call with the session, renewing it once if Apple refuses
    /// it; returns a successful answer, or the error its status means.
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<bytes::Bytes>,
        now: DateTime<Utc>,
    ) -> Result<HttpResponse, DepError> {
        if self.inner.token.is_expired(now) {
            return Err(DepError::TokenExpired {
                expired_at: self.inner.token.access_token_expiry,
            });
        }
        let url = self.url(path_and_query)?;
        let mut renewed = false;
        loop {
            let session = self.session(now).await?;
            let session_value = HeaderValue::from_str(&session)
                .map_err(|_| DepError::MalformedBody("the session is not a header value".into()))?;
            let mut request = self
                .request(method.clone(), url.clone())?
                .header(SESSION_HEADER, session_value);
            if let Some(body) = &body {
                request.body = body.clone();
            }
            let response = self.inner.http.send(request).await?;
            if session_refused(&response) {
                tracing::debug!(
                    status = response.status,
                    retried = renewed,
                    "Apple refused the ADE session"
                );
                self.forget_session(&session).await;
                if renewed {
                    return Err(DepError::AuthRefused {
                        status: response.status,
                        code: error_code(&response),
                    });
                }
                renewed = true;
                continue;
            }
            self.keep_rotated(&session, &response).await;
            if response.is_success() {
                return Ok(response);
            }
            return Err(status_error(&response, now));
        }
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<bytes::Bytes>,
        now: DateTime<Utc>,
    ) -> Result<T, DepError> {
        let response = self.call(method, path_and_query, body, now).await?;
        response
            .json()
            .map_err(|e| DepError::MalformedBody(e.to_string()))
    }

    /// `GET /account`.
    pub async fn account(&self, now: DateTime<Utc>) -> Result<DepAccount, DepError> {
        let account: wire::AccountDetail =
            self.call_json(Method::GET, "/account", None, now).await?;
        Ok(DepAccount {
            server_name: account.server_name,
            server_uuid: account.server_uuid,
            admin_id: account.admin_id.or(account.facilitator_id),
            org_name: account.org_name,
            org_email: account.org_email,
            org_phone: account.org_phone,
            org_address: account.org_address,
            org_id: account.org_id,
            org_id_hash: account.org_id_hash,
            org_type: account.org_type,
            org_version: account.org_version,
        })
    }

    /// `POST /server/devices`: a page of the full device list, from the
    /// start without a cursor. Fetch until `more_to_follow` is false, then
    /// sync from the last cursor; fetching past the end is
    /// [`DepError::CursorExhausted`]. `limit` is kept within 1..=1000.
    pub async fn fetch_devices(
        &self,
        cursor: Option<&DepCursor>,
        limit: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<DevicePage, DepError> {
        let body = json_body(&wire::FetchDeviceRequest {
            cursor: cursor.map(DepCursor::as_str),
            limit: clamp_limit(limit),
        })?;
        let page: wire::FetchDeviceResponse = self
            .call_json(Method::POST, "/server/devices", Some(body), now)
            .await?;
        page_from_wire(page)
    }

    /// `POST /devices/sync`: what was added, modified or deleted since
    /// `cursor`.
    pub async fn sync_devices(
        &self,
        cursor: &DepCursor,
        limit: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<DevicePage, DepError> {
        let body = json_body(&wire::SyncDeviceRequest {
            cursor: cursor.as_str(),
            limit: clamp_limit(limit),
        })?;
        let page: wire::FetchDeviceResponse = self
            .call_json(Method::POST, "/devices/sync", Some(body), now)
            .await?;
        page_from_wire(page)
    }

    /// `POST /profile`: defines a profile (and assigns it to
    /// `profile.devices`); returns its uuid and each device's status.
    pub async fn define_profile(
        &self,
        profile: &DepProfile,
        now: DateTime<Utc>,
    ) -> Result<ProfileAssignment, DepError> {
        let body = json_body(&profile.to_wire())?;
        let answer: wire::ProfileResponse = self
            .call_json(Method::POST, "/profile", Some(body), now)
            .await?;
        assignment_from_wire(answer)
    }

    /// `PUT /profile/devices`: assigns a defined profile to devices.
    pub async fn assign_profile(
        &self,
        profile_uuid: &DepProfileUuid,
        serial_numbers: &[String],
        now: DateTime<Utc>,
    ) -> Result<ProfileAssignment, DepError> {
        if serial_numbers.is_empty() {
            return Err(DepError::InvalidRequest("no devices to assign".into()));
        }
        let body = json_body(&wire::ProfileServiceRequest {
            profile_uuid: profile_uuid.as_str(),
            devices: serial_numbers,
        })?;
        let answer: wire::ProfileResponse = self
            .call_json(Method::PUT, "/profile/devices", Some(body), now)
            .await?;
        assignment_from_wire(answer)
    }

    /// `GET /profile?profile_uuid=…`.
    pub async fn get_profile(
        &self,
        profile_uuid: &DepProfileUuid,
        now: DateTime<Utc>,
    ) -> Result<DepProfile, DepError> {
        let path = format!(
            "/profile?profile_uuid={}",
            oauth::percent_encode(profile_uuid.as_str())
        );
        let profile: wire::Profile = self.call_json(Method::GET, &path, None, now).await?;
        Ok(DepProfile::from_wire(profile))
    }
}

/// The error an unsuccessful status (other than a refused session) means.
fn status_error(response: &HttpResponse, now: DateTime<Utc>) -> DepError {
    let code = error_code(response);
    let status = response.status;
    if status == BAD_REQUEST {
        // Apple answers the cursor errors as 400 with the code as the body.
        if code.contains("EXHAUSTED_CURSOR") {
            return DepError::CursorExhausted;
        }
        if code.contains("EXPIRED_CURSOR") {
            return DepError::CursorExpired;
        }
        if code.contains("INVALID_CURSOR") {
            return DepError::CursorInvalid;
        }
    }
    if status == FORBIDDEN && code == "T_C_NOT_SIGNED" {
        return DepError::TermsNotAccepted;
    }
    if status == TOO_MANY_REQUESTS {
        return DepError::Throttled {
            retry_after: retry_after(response, now),
        };
    }
    if (500..600).contains(&status) {
        return DepError::ServerError { status, code };
    }
    DepError::Rejected { status, code }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        HttpResponse {
            status,
            headers: map,
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn cursor_errors_are_read_with_or_without_quotes() {
        let now = Utc::now();
        assert!(matches!(
            status_error(&response(400, "EXHAUSTED_CURSOR", &[]), now),
            DepError::CursorExhausted
        ));
        assert!(matches!(
            status_error(&response(400, "\"EXPIRED_CURSOR\"\n", &[]), now),
            DepError::CursorExpired
        ));
        assert!(matches!(
            status_error(&response(400, "INVALID_CURSOR", &[]), now),
            DepError::CursorInvalid
        ));
        assert!(matches!(
            status_error(&response(400, "MALFORMED_REQUEST_BODY", &[]), now),
            DepError::Rejected { status: 400, .. }
        ));
    }

    #[test]
    fn only_401_and_403_forbidden_refuse_the_session() {
        assert!(session_refused(&response(401, "UNAUTHORIZED", &[])));
        assert!(session_refused(&response(403, "\"FORBIDDEN\"", &[])));
        assert!(!session_refused(&response(403, "T_C_NOT_SIGNED", &[])));
        assert!(!session_refused(&response(400, "FORBIDDEN", &[])));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        match status_error(&response(429, "", &[("retry-after", "7")]), now) {
            DepError::Throttled { retry_after } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
            }
            other => panic!("{other:?}"),
        }
        match status_error(
            &response(429, "", &[("retry-after", "Wed, 01 Jan 2025 00:01:00 GMT")]),
            now,
        ) {
            DepError::Throttled { retry_after } => {
                assert_eq!(retry_after, Some(Duration::from_secs(60)));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            status_error(&response(429, "", &[]), now),
            DepError::Throttled { retry_after: None }
        ));
    }

    #[test]
    fn server_errors_and_long_codes() {
        let long = "E".repeat(5000);
        match status_error(&response(503, &long, &[]), Utc::now()) {
            DepError::ServerError { status, code } => {
                assert_eq!(status, 503);
                assert_eq!(code.len(), MAX_CODE_CHARS);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_page_reads_devices_and_refuses_bad_times() {
        let page: wire::FetchDeviceResponse = serde_json::from_str(
            r#"{"cursor":"AB12","fetched_until":"2025-01-02T03:04:05Z","more_to_follow":false,
               "devices":[{"serial_number":"C02X","model":"MacBook Air","os":"OSX",
               "device_family":"Mac","profile_status":"pushed","op_type":"added",
               "op_date":"2025-01-01T00:00:00Z","extra":1},
               {"serial_number":"F17Y","profile_status":"shiny"}]}"#,
        )
        .unwrap();
        let page = page_from_wire(page).unwrap();
        assert_eq!(page.cursor.as_str(), "AB12");
        assert_eq!(page.devices.len(), 2);
        assert_eq!(page.devices[0].op_type, Some(DeviceOp::Added));
        assert_eq!(page.devices[0].profile_status, Some(ProfileStatus::Pushed));
        assert_eq!(page.devices[1].model, None);
        assert_eq!(
            page.devices[1].profile_status,
            Some(ProfileStatus::Other("shiny".into()))
        );

        let bad: wire::FetchDeviceResponse = serde_json::from_str(
            r#"{"cursor":"AB12","fetched_until":"yesterday","more_to_follow":false}"#,
        )
        .unwrap();
        assert!(matches!(
            page_from_wire(bad),
            Err(DepError::MalformedBody(_))
        ));
    }

    #[test]
    fn the_profile_json_has_the_required_keys_and_omits_unset_ones() {
        let mut profile = DepProfile::new("Latchkey", "https://mdm.example.com/enroll", "magic");
        profile.devices = vec!["C02X".into()];
        let json = serde_json::to_value(profile.to_wire()).unwrap();
        assert_eq!(json["is_mdm_removable"], true);
        assert_eq!(json["org_magic"], "magic");
        assert_eq!(json["devices"][0], "C02X");
        assert!(json.get("is_supervised").is_none());
        assert!(json.get("anchor_certs").is_none());
        assert!(json.get("profile_uuid").is_none());
    }

    #[test]
    fn limits_are_kept_within_apples_bounds() {
        assert_eq!(clamp_limit(Some(0)), Some(1));
        assert_eq!(clamp_limit(Some(5000)), Some(1000));
        assert_eq!(clamp_limit(None), None);
    }
}
