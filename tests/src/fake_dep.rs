//! A fake of Apple's Automated Device Enrollment service
//! (`mdmenrollment.apple.com`) on loopback, plain http, checking each
//! request the way Apple documents it ("Device Assignment",
//! "Authenticating with the Automated Device Enrollment program") and
//! answering in the shapes of Apple's published schemas
//! (micromdm/apple-device-services `dep/schemas/*.json`):
//!
//! - `GET /session` verifies the OAuth 1.0a HMAC-SHA1 signature (RFC 5849
//!   §3.4) over its own credentials, the timestamp and a fresh nonce, with
//!   its own implementation of the signing, so the client's is not checked
//!   against itself; a bad signature is 401.
//! - Every other call needs a session: missing or expired is 401
//!   `UNAUTHORIZED`, unknown 403 `FORBIDDEN`; with rotation on, each answer
//!   carries a new `X-ADM-Auth-Session` and retires the old one.
//! - Every call needs a `User-Agent` (400 `USER_AGENT_INVALID`) and an
//!   `X-Server-Protocol-Version`; bodies must be JSON objects with the
//!   schema's required keys, types and bounds, and no unknown keys (400
//!   `MALFORMED_REQUEST_BODY`), which catches a misspelt key Apple would
//!   ignore.
//! - Devices live in an operation log: `POST /server/devices` pages
//!   through a snapshot, `POST /devices/sync` replays the log after a
//!   cursor; the cursor errors (400 `EXHAUSTED_CURSOR`, `EXPIRED_CURSOR`,
//!   `INVALID_CURSOR`) come as Apple sends them.
//!
//! Tests drive it through [`FakeDep`]: add, modify and delete devices,
//! expire sessions and cursors, queue canned answers, count requests, read
//! assigned profiles, and make a `.p7m` token for an uploaded certificate.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use latchkey_certs::dep::{DepServerToken, encrypt_dep_token_for};
use serde_json::{Map, Value, json};

/// How far an OAuth timestamp may be from the fake's clock.
const TIMESTAMP_SKEW_SECONDS: i64 = 300;
/// `FetchDeviceRequest.json`: `limit` default and maximum.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: i64 = 1000;
/// `FetchDeviceRequest.json`: a cursor "can be up to 1000 characters".
const MAX_CURSOR_CHARS: usize = 1000;

/// A device assigned to the fake's server, as `Device.json` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeDevice {
    pub serial_number: String,
    pub model: String,
    pub description: Option<String>,
    pub color: Option<String>,
    pub asset_tag: Option<String>,
    pub os: String,
    pub device_family: String,
    /// `empty`, `assigned`, `pushed` or `removed`.
    pub profile_status: String,
    pub profile_uuid: Option<String>,
    pub profile_assign_time: Option<DateTime<Utc>>,
    pub device_assigned_by: String,
    pub device_assigned_date: DateTime<Utc>,
}

impl FakeDevice {
    pub fn mac(serial_number: &str) -> Self {
        FakeDevice {
            serial_number: serial_number.to_owned(),
            model: "MacBook Air (M2, 2022)".into(),
            description: Some("MBA 13.6 MDN SLV".into()),
            color: Some("SILVER".into()),
            asset_tag: None,
            os: "OSX".into(),
            device_family: "Mac".into(),
            profile_status: "empty".into(),
            profile_uuid: None,
            profile_assign_time: None,
            device_assigned_by: "admin@example.com".into(),
            device_assigned_date: Utc::now(),
        }
    }

    pub fn iphone(serial_number: &str) -> Self {
        FakeDevice {
            model: "iPhone 15".into(),
            description: Some("IPHONE 15 BLACK 128GB".into()),
            color: Some("BLACK".into()),
            os: "iOS".into(),
            device_family: "iPhone".into(),
            ..FakeDevice::mac(serial_number)
        }
    }

    fn to_json(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let time = |t: &DateTime<Utc>| Value::from(t.to_rfc3339_opts(SecondsFormat::Secs, true));
        map.insert("serial_number".into(), self.serial_number.clone().into());
        map.insert("model".into(), self.model.clone().into());
        for (key, value) in [
            ("description", &self.description),
            ("color", &self.color),
            ("asset_tag", &self.asset_tag),
            ("profile_uuid", &self.profile_uuid),
        ] {
            if let Some(value) = value {
                map.insert(key.into(), value.clone().into());
            }
        }
        map.insert("os".into(), self.os.clone().into());
        map.insert("device_family".into(), self.device_family.clone().into());
        map.insert("profile_status".into(), self.profile_status.clone().into());
        if let Some(at) = &self.profile_assign_time {
            map.insert("profile_assign_time".into(), time(at));
        }
        map.insert(
            "device_assigned_by".into(),
            self.device_assigned_by.clone().into(),
        );
        map.insert(
            "device_assigned_date".into(),
            time(&self.device_assigned_date),
        );
        map
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionState {
    Valid,
    Expired,
}

#[derive(Debug, Clone)]
struct LogEntry {
    op_type: &'static str,
    op_date: DateTime<Utc>,
    device: FakeDevice,
}

#[derive(Debug, Clone)]
enum CursorKind {
    /// A full fetch over the serial numbers present when it began.
    Fetch {
        snapshot: Vec<String>,
        offset: usize,
    },
    Sync,
}

#[derive(Debug, Clone)]
struct Cursor {
    kind: CursorKind,
    /// The log entries before this one are behind the cursor.
    log_position: usize,
    expired: bool,
}

#[derive(Debug, Clone)]
struct Canned {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct State {
    /// The URL the fake is reached at, as signed in the OAuth base string.
    base_url: String,
    token: DepServerToken,
    server_uuid: String,
    sessions: HashMap<String, SessionState>,
    rotate_sessions: bool,
    nonces: HashSet<String>,
    devices: Vec<FakeDevice>,
    log: Vec<LogEntry>,
    cursors: HashMap<String, Cursor>,
    profiles: BTreeMap<String, Map<String, Value>>,
    requests: HashMap<String, usize>,
    canned: HashMap<String, VecDeque<Canned>>,
}

fn random_hex<const N: usize>() -> String {
    hex::encode(latchkey_certs::random_bytes::<N>().unwrap_or([7u8; N]))
}

/// Apple's answer to a refused request: the status and the code as the body.
fn refuse(status: StatusCode, code: &str) -> Response {
    (status, code.to_owned()).into_response()
}

fn json_response(value: &Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json;charset=UTF8")],
        value.to_string(),
    )
        .into_response()
}

/// The fake service; stops when dropped.
pub struct FakeDep {
    url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDep {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDep {
    /// Starts on `127.0.0.1:0` with fresh credentials valid for a year.
    pub async fn start() -> Result<FakeDep> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let token = DepServerToken {
            consumer_key: format!("CK_{}", random_hex::<32>()),
            consumer_secret: format!("CS_{}", random_hex::<32>()),
            access_token: format!("AT_{}", random_hex::<32>()),
            access_secret: format!("AS_{}", random_hex::<32>()),
            access_token_expiry: DateTime::from_timestamp(
                (Utc::now() + Duration::days(365)).timestamp(),
                0,
            )
            .context("expiry")?,
        };
        let state = Arc::new(Mutex::new(State {
            base_url: url.clone(),
            token,
            server_uuid: uuid::Uuid::new_v4().to_string(),
            sessions: HashMap::new(),
            rotate_sessions: false,
            nonces: HashSet::new(),
            devices: Vec::new(),
            log: Vec::new(),
            cursors: HashMap::new(),
            profiles: BTreeMap::new(),
            requests: HashMap::new(),
            canned: HashMap::new(),
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(FakeDep { url, state, task })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The base URL to give the client (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server token the fake accepts.
    pub fn token(&self) -> DepServerToken {
        self.state().token.clone()
    }

    /// The token file Apple Business Manager would hand out for a server
    /// whose uploaded certificate is `certificate_pem`.
    pub fn token_p7m_for(&self, certificate_pem: &str) -> Result<Vec<u8>> {
        Ok(encrypt_dep_token_for(certificate_pem, &self.token())?)
    }

    /// The `server_uuid` `GET /account` answers.
    pub fn server_uuid(&self) -> String {
        self.state().server_uuid.clone()
    }

    /// Assigns a device to the server (an `added` operation).
    pub fn add_device(&self, device: FakeDevice) {
        let mut state = self.state();
        state
            .devices
            .retain(|d| d.serial_number != device.serial_number);
        state.devices.push(device.clone());
        state.log.push(LogEntry {
            op_type: "added",
            op_date: Utc::now(),
            device,
        });
    }

    /// Changes a device (a `modified` operation); false if it is not here.
    pub fn modify_device(&self, serial_number: &str, change: impl FnOnce(&mut FakeDevice)) -> bool {
        let mut state = self.state();
        let Some(device) = state
            .devices
            .iter_mut()
            .find(|d| d.serial_number == serial_number)
        else {
            return false;
        };
        change(device);
        let device = device.clone();
        state.log.push(LogEntry {
            op_type: "modified",
            op_date: Utc::now(),
            device,
        });
        true
    }

    /// Releases a device from the server (a `deleted` operation).
    pub fn delete_device(&self, serial_number: &str) -> bool {
        let mut state = self.state();
        let Some(at) = state
            .devices
            .iter()
            .position(|d| d.serial_number == serial_number)
        else {
            return false;
        };
        let device = state.devices.remove(at);
        state.log.push(LogEntry {
            op_type: "deleted",
            op_date: Utc::now(),
            device,
        });
        true
    }

    pub fn device(&self, serial_number: &str) -> Option<FakeDevice> {
        self.state()
            .devices
            .iter()
            .find(|d| d.serial_number == serial_number)
            .cloned()
    }

    /// Every session handed out so far answers 401 from now on.
    pub fn expire_sessions(&self) {
        for state in self.state().sessions.values_mut() {
            *state = SessionState::Expired;
        }
    }

    /// Every session handed out so far becomes unknown: 403 `FORBIDDEN`.
    pub fn forget_sessions(&self) {
        self.state().sessions.clear();
    }

    /// With rotation on, every successful answer carries a new
    /// `X-ADM-Auth-Session` and the one the request used becomes unknown.
    pub fn rotate_sessions(&self, on: bool) {
        self.state().rotate_sessions = on;
    }

    /// The cursor answers 400 `EXPIRED_CURSOR` from now on; false if the
    /// fake never issued it.
    pub fn expire_cursor(&self, cursor: &str) -> bool {
        match self.state().cursors.get_mut(cursor) {
            Some(found) => {
                found.expired = true;
                true
            }
            None => false,
        }
    }

    /// Every cursor issued so far answers 400 `EXPIRED_CURSOR` from now on
    /// (as after seven days); returns how many there were.
    pub fn expire_all_cursors(&self) -> usize {
        let mut state = self.state();
        for cursor in state.cursors.values_mut() {
            cursor.expired = true;
        }
        state.cursors.len()
    }

    /// How many requests came for `"METHOD /path"`, e.g. `"GET /session"`.
    pub fn requests(&self, method_and_path: &str) -> usize {
        self.state()
            .requests
            .get(method_and_path)
            .copied()
            .unwrap_or(0)
    }

    /// The next authenticated request for `"METHOD /path"` gets this answer
    /// instead of the real one (after the header and session checks).
    pub fn respond_once(
        &self,
        method_and_path: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) {
        let canned = Canned {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.into(),
        };
        self.state()
            .canned
            .entry(method_and_path.to_owned())
            .or_default()
            .push_back(canned);
    }

    /// A defined profile as it was sent (with its `profile_uuid`).
    pub fn profile(&self, profile_uuid: &str) -> Option<Value> {
        self.state()
            .profiles
            .get(profile_uuid)
            .map(|p| Value::Object(p.clone()))
    }

    /// The profile assigned to a device, if any.
    pub fn assigned_profile(&self, serial_number: &str) -> Option<String> {
        self.device(serial_number).and_then(|d| d.profile_uuid)
    }
}

async fn handle(
    AxumState(state): AxumState<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = format!("{method} {}", uri.path());
    *state.requests.entry(key.clone()).or_default() += 1;

    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if header("user-agent").is_none() {
        return refuse(StatusCode::BAD_REQUEST, "USER_AGENT_INVALID");
    }
    if !header("x-server-protocol-version").is_some_and(|v| v.parse::<u32>().is_ok_and(|n| n > 0)) {
        return refuse(StatusCode::BAD_REQUEST, "X_SERVER_PROTOCOL_VERSION_INVALID");
    }
    if method == Method::GET && uri.path() == "/session" {
        let authorization = header("authorization").unwrap_or_default().to_owned();
        return session(&mut state, &authorization);
    }

    let Some(session) = header("x-adm-auth-session").map(str::to_owned) else {
        return refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    };
    match state.sessions.get(&session) {
        None => return refuse(StatusCode::FORBIDDEN, "FORBIDDEN"),
        Some(SessionState::Expired) => return refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
        Some(SessionState::Valid) => {}
    }
    if let Some(canned) = state.canned.get_mut(&key).and_then(VecDeque::pop_front) {
        let mut response = (canned.status, canned.body).into_response();
        for (name, value) in canned.headers {
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::from_bytes(name.as_bytes()),
                axum::http::HeaderValue::from_str(&value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        return response;
    }
    if matches!(method, Method::POST | Method::PUT)
        && !header("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"))
    {
        return refuse(StatusCode::BAD_REQUEST, "MALFORMED_REQUEST_BODY");
    }

    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let mut response = match (method.as_str(), uri.path()) {
        ("GET", "/account") => account(&state),
        ("POST", "/server/devices") => fetch(&mut state, &body),
        ("POST", "/devices/sync") => sync(&mut state, &body),
        ("POST", "/profile") => define_profile(&mut state, &body),
        ("GET", "/profile") => get_profile(&state, query.get("profile_uuid")),
        ("PUT" | "POST", "/profile/devices") => assign_profile(&mut state, &body),
        _ => refuse(StatusCode::NOT_FOUND, "NOT_FOUND"),
    };
    if state.rotate_sessions && response.status().is_success() {
        let rotated = format!("SESSION_{}", random_hex::<16>());
        state.sessions.remove(&session);
        state.sessions.insert(rotated.clone(), SessionState::Valid);
        if let Ok(value) = axum::http::HeaderValue::from_str(&rotated) {
            response.headers_mut().insert("x-adm-auth-session", value);
        }
    }
    response
}

/// RFC 5849 §3.6, written apart from the client's on purpose.
fn oauth_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn oauth_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The parameters of an `Authorization: OAuth …` header (RFC 5849 §3.5.1).
fn oauth_params(header: &str) -> Option<BTreeMap<String, String>> {
    let rest = header
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("oauth "))
        .and_then(|_| header.get(6..))?;
    let mut params = BTreeMap::new();
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        let value = value.strip_prefix('"')?.strip_suffix('"')?;
        if params
            .insert(oauth_decode(name.trim())?, oauth_decode(value)?)
            .is_some()
        {
            return None;
        }
    }
    Some(params)
}

/// `GET /session`: checks the OAuth 1.0a signature over the fake's own
/// credentials and answers `{"auth_session_token"}`.
fn session(state: &mut State, authorization: &str) -> Response {
    let Some(params) = oauth_params(authorization) else {
        return refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    };
    let get = |name: &str| params.get(name).map(String::as_str);
    let token = state.token.clone();
    let well_formed = get("oauth_signature_method") == Some("HMAC-SHA1")
        && get("oauth_consumer_key") == Some(token.consumer_key.as_str())
        && get("oauth_token") == Some(token.access_token.as_str())
        && get("oauth_version").is_none_or(|v| v == "1.0")
        && get("oauth_nonce").is_some_and(|n| !n.is_empty());
    let fresh = get("oauth_timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .is_some_and(|t| (t - Utc::now().timestamp()).abs() <= TIMESTAMP_SKEW_SECONDS);
    let Some(signature) = get("oauth_signature") else {
        return refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    };
    if !well_formed || !fresh {
        return refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    // §3.4.1.3: every protocol parameter but the signature and the realm.
    let normalized = params
        .iter()
        .filter(|(name, _)| name.as_str() != "oauth_signature" && name.as_str() != "realm")
        .map(|(name, value)| (oauth_encode(name), oauth_encode(value)))
        .collect::<BTreeMap<_, _>>()
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!(
        "GET&{}&{}",
        oauth_encode(&format!("{}/session", state.base_url)),
        oauth_encode(&normalized)
    );
    let key = format!(
        "{}&{}",
        oauth_encode(&token.consumer_secret),
        oauth_encode(&token.access_secret)
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD
        .encode(ring::hmac::sign(&key, base.as_bytes()).as_ref());
    if expected != signature {
        return refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    // A nonce is good once (RFC 5849 §3.3).
    let nonce = get("oauth_nonce").unwrap_or_default().to_owned();
    if !state.nonces.insert(nonce) {
        return refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    if token.access_token_expiry <= Utc::now() {
        return refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    let session = format!("SESSION_{}", random_hex::<16>());
    state.sessions.insert(session.clone(), SessionState::Valid);
    json_response(&json!({ "auth_session_token": session }))
}

fn account(state: &State) -> Response {
    // AccountDetail.json
    json_response(&json!({
        "server_name": "Latchkey test server",
        "server_uuid": state.server_uuid,
        "admin_id": "admin@example.com",
        "facilitator_id": "admin@example.com",
        "org_name": "Example Org",
        "org_email": "it@example.com",
        "org_phone": "+1 555 0100",
        "org_address": "1 Infinite Loop, Cupertino",
        "org_id": "1234567",
        "org_id_hash": "4a9f6c1f2e8d",
        "org_type": "org",
        "org_version": "v2",
        "urls": [{"uri": "/server/devices", "http_method": ["POST"], "limit": {"default": 100, "maximum": 1000}}],
    }))
}

/// What one key of a request body must be.
#[derive(Clone, Copy)]
enum Kind {
    String { min: usize, max: usize },
    Uri,
    Email,
    Bool,
    Integer { min: i64, max: i64 },
    Strings,
}

/// Checks a JSON object against a schema's keys: required ones present,
/// every present one of its kind, no other key.
fn check_body(
    body: &[u8],
    keys: &[(&str, Kind, bool)],
) -> Result<Map<String, Value>, &'static str> {
    let value: Value = serde_json::from_slice(body).map_err(|_| "MALFORMED_REQUEST_BODY")?;
    let Value::Object(map) = value else {
        return Err("MALFORMED_REQUEST_BODY");
    };
    for name in map.keys() {
        if !keys.iter().any(|(k, _, _)| k == name) {
            return Err("MALFORMED_REQUEST_BODY");
        }
    }
    for (name, kind, required) in keys {
        let Some(value) = map.get(*name) else {
            if *required {
                return Err("MALFORMED_REQUEST_BODY");
            }
            continue;
        };
        let ok = match kind {
            Kind::String { min, max } => value
                .as_str()
                .is_some_and(|s| (*min..=*max).contains(&s.chars().count())),
            Kind::Uri => value.as_str().is_some_and(|s| url::Url::parse(s).is_ok()),
            Kind::Email => value.as_str().is_some_and(|s| {
                s.split_once('@')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
            }),
            Kind::Bool => value.is_boolean(),
            Kind::Integer { min, max } => {
                value.as_i64().is_some_and(|n| (*min..=*max).contains(&n))
            }
            Kind::Strings => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
        };
        if !ok {
            return Err("MALFORMED_REQUEST_BODY");
        }
    }
    Ok(map)
}

const ANY_STRING: Kind = Kind::String {
    min: 0,
    max: usize::MAX,
};

fn new_cursor(state: &mut State, kind: CursorKind, log_position: usize) -> String {
    let id = random_hex::<16>();
    state.cursors.insert(
        id.clone(),
        Cursor {
            kind,
            log_position,
            expired: false,
        },
    );
    id
}

fn page(devices: Vec<Value>, cursor: String, more_to_follow: bool) -> Response {
    // FetchDeviceResponse.json
    json_response(&json!({
        "devices": devices,
        "cursor": cursor,
        "more_to_follow": more_to_follow,
        "fetched_until": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    }))
}

fn limit_of(body: &Map<String, Value>) -> usize {
    body.get("limit")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(DEFAULT_LIMIT)
}

/// The cursor a request names, or the code Apple refuses it with.
fn known_cursor(state: &State, cursor: &str) -> Result<Cursor, &'static str> {
    match state.cursors.get(cursor) {
        None => Err("INVALID_CURSOR"),
        Some(found) if found.expired => Err("EXPIRED_CURSOR"),
        Some(found) => Ok(found.clone()),
    }
}

/// `POST /server/devices` (`FetchDeviceRequest.json`).
fn fetch(state: &mut State, body: &[u8]) -> Response {
    let body = match check_body(
        body,
        &[
            (
                "cursor",
                Kind::String {
                    min: 1,
                    max: MAX_CURSOR_CHARS,
                },
                false,
            ),
            (
                "limit",
                Kind::Integer {
                    min: 1,
                    max: MAX_LIMIT,
                },
                false,
            ),
        ],
    ) {
        Ok(body) => body,
        Err(code) => return refuse(StatusCode::BAD_REQUEST, code),
    };
    let limit = limit_of(&body);
    let (snapshot, offset, log_position) = match body.get("cursor").and_then(Value::as_str) {
        None => (
            state
                .devices
                .iter()
                .map(|d| d.serial_number.clone())
                .collect::<Vec<_>>(),
            0,
            state.log.len(),
        ),
        Some(cursor) => match known_cursor(state, cursor) {
            Err(code) => return refuse(StatusCode::BAD_REQUEST, code),
            Ok(Cursor {
                kind: CursorKind::Fetch { snapshot, offset },
                log_position,
                ..
            }) if offset < snapshot.len() => (snapshot, offset, log_position),
            Ok(_) => return refuse(StatusCode::BAD_REQUEST, "EXHAUSTED_CURSOR"),
        },
    };
    let end = snapshot.len().min(offset + limit);
    let devices = snapshot
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .filter_map(|serial| state.devices.iter().find(|d| &d.serial_number == serial))
        .map(|d| Value::Object(d.to_json()))
        .collect();
    let more_to_follow = end < snapshot.len();
    let cursor = new_cursor(
        state,
        CursorKind::Fetch {
            snapshot,
            offset: end,
        },
        log_position,
    );
    page(devices, cursor, more_to_follow)
}

/// `POST /devices/sync` (`SyncDeviceRequest.json`).
fn sync(state: &mut State, body: &[u8]) -> Response {
    let body = match check_body(
        body,
        &[
            (
                "cursor",
                Kind::String {
                    min: 1,
                    max: MAX_CURSOR_CHARS,
                },
                true,
            ),
            (
                "limit",
                Kind::Integer {
                    min: 1,
                    max: MAX_LIMIT,
                },
                false,
            ),
        ],
    ) {
        Ok(body) => body,
        Err(code) => return refuse(StatusCode::BAD_REQUEST, code),
    };
    let cursor = body
        .get("cursor")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let from = match known_cursor(state, cursor) {
        Ok(found) => found.log_position,
        Err(code) => return refuse(StatusCode::BAD_REQUEST, code),
    };
    let end = state.log.len().min(from + limit_of(&body));
    let devices = state
        .log
        .get(from..end)
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            let mut device = entry.device.to_json();
            device.insert("op_type".into(), entry.op_type.into());
            device.insert(
                "op_date".into(),
                entry
                    .op_date
                    .to_rfc3339_opts(SecondsFormat::Secs, true)
                    .into(),
            );
            Value::Object(device)
        })
        .collect();
    let more_to_follow = end < state.log.len();
    let cursor = new_cursor(state, CursorKind::Sync, end);
    page(devices, cursor, more_to_follow)
}

/// The keys of `Profile.json`, `is_mdm_removable` and `org_magic` required.
const PROFILE_KEYS: &[(&str, Kind, bool)] = &[
    ("profile_name", ANY_STRING, false),
    ("url", Kind::Uri, false),
    ("configuration_web_url", Kind::Uri, false),
    ("is_supervised", Kind::Bool, false),
    ("is_mandatory", Kind::Bool, false),
    ("is_mdm_removable", Kind::Bool, true),
    ("is_multi_user", Kind::Bool, false),
    ("is_return_to_service", Kind::Bool, false),
    ("do_not_use_profile_from_backup", Kind::Bool, false),
    ("await_device_configured", Kind::Bool, false),
    ("allow_pairing", Kind::Bool, false),
    ("auto_advance_setup", Kind::Bool, false),
    ("language", Kind::String { min: 2, max: 3 }, false),
    ("region", Kind::String { min: 2, max: 2 }, false),
    ("org_magic", ANY_STRING, true),
    ("department", ANY_STRING, false),
    ("support_phone_number", ANY_STRING, false),
    ("support_email_address", Kind::Email, false),
    ("anchor_certs", Kind::Strings, false),
    ("supervising_host_certs", Kind::Strings, false),
    ("skip_setup_items", Kind::Strings, false),
    ("devices", Kind::Strings, false),
];

/// Assigns `profile_uuid` to each serial number present; the answer's
/// `devices` map (`AssignProfileResponse.json`).
fn assign(state: &mut State, profile_uuid: &str, serials: &[String]) -> Map<String, Value> {
    let now = Utc::now();
    let mut statuses = Map::new();
    for serial in serials {
        let found = state
            .devices
            .iter_mut()
            .find(|d| &d.serial_number == serial);
        let status = match found {
            Some(device) => {
                device.profile_uuid = Some(profile_uuid.to_owned());
                device.profile_status = "assigned".into();
                device.profile_assign_time = Some(now);
                let device = device.clone();
                state.log.push(LogEntry {
                    op_type: "modified",
                    op_date: now,
                    device,
                });
                "SUCCESS"
            }
            None => "NOT_ACCESSIBLE",
        };
        statuses.insert(serial.clone(), status.into());
    }
    statuses
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /profile` (`Profile.json` in, `DefineProfileResponse.json` out).
fn define_profile(state: &mut State, body: &[u8]) -> Response {
    let mut profile = match check_body(body, PROFILE_KEYS) {
        Ok(profile) => profile,
        Err(code) => return refuse(StatusCode::BAD_REQUEST, code),
    };
    let profile_uuid = random_hex::<16>().to_ascii_uppercase();
    let serials = strings(profile.remove("devices").as_ref());
    let devices = assign(state, &profile_uuid, &serials);
    profile.insert("profile_uuid".into(), profile_uuid.clone().into());
    state.profiles.insert(profile_uuid.clone(), profile);
    json_response(&json!({ "profile_uuid": profile_uuid, "devices": devices }))
}

/// `PUT /profile/devices` (`ProfileServiceRequest.json` in,
/// `AssignProfileResponse.json` out).
fn assign_profile(state: &mut State, body: &[u8]) -> Response {
    let request = match check_body(
        body,
        &[
            ("profile_uuid", Kind::String { min: 1, max: 64 }, true),
            ("devices", Kind::Strings, true),
        ],
    ) {
        Ok(request) => request,
        Err(code) => return refuse(StatusCode::BAD_REQUEST, code),
    };
    let profile_uuid = request
        .get("profile_uuid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !state.profiles.contains_key(&profile_uuid) {
        return refuse(StatusCode::BAD_REQUEST, "PROFILE_NOT_FOUND");
    }
    let serials = strings(request.get("devices"));
    if serials.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "DEVICE_ID_REQUIRED");
    }
    let devices = assign(state, &profile_uuid, &serials);
    json_response(&json!({ "profile_uuid": profile_uuid, "devices": devices }))
}

/// `GET /profile?profile_uuid=…` (`Profile.json`).
fn get_profile(state: &State, profile_uuid: Option<&String>) -> Response {
    let Some(profile_uuid) = profile_uuid.filter(|u| !u.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "PROFILE_UUID_REQUIRED");
    };
    match state.profiles.get(profile_uuid) {
        Some(profile) => json_response(&Value::Object(profile.clone())),
        None => refuse(StatusCode::BAD_REQUEST, "PROFILE_NOT_FOUND"),
    }
}
