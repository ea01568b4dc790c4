//! The OpenID Connect provider's core: sign-in steps, device-auth
//! transactions and the authorization codes and tokens they lead to.
//!
//! A login moves through steps that [`Core::next_step`] works out afresh on
//! every page load from what the database holds (session, request,
//! transaction), so any replica can serve any step and a reload never
//! skips a check. Device checks run again on every authorization and every
//! refresh: locking a device ends its sessions and grants in the locking
//! transaction, and a device that is no longer fit fails the next check.

mod mfa;
mod proof;
mod step_up;
mod tokens;
mod waiters;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::auth::{
    self, AuthenticatedDevice, DeviceAuthError, DeviceChannel, DeviceRefusal, secret_hash,
};
use super::limits::Guess;
use super::passwords::Password;
use super::users::PasswordCheck;
use super::{Core, CoreError};
use crate::domain::app::{App, DevicePolicy, MfaPolicy};
use crate::domain::audit::{AuditEntry, AuditOutcome};
use crate::domain::device::{Device, DeviceState};
use crate::domain::ids::{ClientId, DeviceId};
use crate::domain::networks::{self, Cidr};
use crate::domain::policy::Compliance;
use crate::domain::policy::EffectivePolicy;
use crate::domain::sign_in::AuthRequest;
use crate::domain::sign_in::Delivery;
use crate::domain::sign_in::DeviceAuthFailure;
use crate::domain::sign_in::DeviceAuthTxn;
use crate::domain::sign_in::DeviceConfirmation;
use crate::domain::sign_in::DeviceProof;
use crate::domain::sign_in::Factor;
use crate::domain::sign_in::FailedCheckView;
use crate::domain::sign_in::Grant;
use crate::domain::sign_in::LoginEvent;
use crate::domain::sign_in::SsoSession;
use crate::domain::sign_in::TxnOutcome;
use crate::domain::user::{User, UserKind, UserStatus};
use crate::store::{DeviceAuthFacts, FitAnswer, PasswordRecord, TxnUpdate, TxnUser};
pub use mfa::{
    CodeOutcome, HistoryRow, MfaChange, MfaSetting, SecondFactorView, TotpEnrollment, mask_email,
};
use proof::NewProof;
pub use proof::{
    CODE_ATTEMPTS, DeliveryState, DeviceCodeOutcome, ProofHandoff, RedeemOutcome, SignInContext,
    normalize_code,
};
pub use step_up::{PasswordChange, STEP_UP_WINDOW, StepUpFactor, StepUpOutcome};
pub use tokens::{ClientAuth, IdTokenHint, IntrospectedToken, TokenError, TokenSet, UserInfo, put};
pub use waiters::Waiters;

/// Settings of the OpenID Connect provider.
#[derive(Debug, Clone)]
pub struct SsoSettings {
    /// The issuer URL (`iss`), e.g. `https://id.example.com`; endpoints are
    /// under it.
    pub issuer: String,
    pub access_token_ttl: Duration,
    /// In `bound` mode, require the agent's answer to come from the
    /// browser's IP address (the same machine, seen from the server).
    pub bound_requires_same_ip: bool,
    /// The least a user may choose for their own second factor.
    pub user_mfa_minimum: MfaSetting,
    /// Browser addresses any sign-in may come from; empty: any.
    pub allowed_networks: Vec<Cidr>,
    /// Where phones and tablets present their device certificate (the
    /// listener that asks for one), e.g. `https://id.example.com:8444`.
    pub device_url: String,
    /// Whom users are told to contact when a sign-in was not theirs (a
    /// helpdesk address or phone number); empty: "your IT department".
    pub support_contact: String,
    /// Proxies in front of the HTTPS listener whose `X-Forwarded-For`
    /// names the browser (`[https] trusted_proxies`).
    pub trusted_proxies: Vec<Cidr>,
}

impl SsoSettings {
    pub fn new(issuer: String) -> Self {
        SsoSettings {
            issuer,
            access_token_ttl: Duration::minutes(15),
            bound_requires_same_ip: true,
            user_mfa_minimum: MfaSetting::Off,
            allowed_networks: Vec::new(),
            device_url: String::new(),
            support_contact: String::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// How long a browser session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::hours(12);
/// How long a user has to finish signing in.
const REQUEST_TTL: Duration = Duration::minutes(10);
/// How long a device has to answer a device-auth transaction.
pub const TXN_TTL: Duration = Duration::seconds(120);
/// Clock skew tolerated on the `iat` a device signs.
const DEVICE_CLOCK_SKEW: Duration = Duration::seconds(150);
const CODE_TTL: Duration = Duration::seconds(60);
const REFRESH_TTL: Duration = Duration::hours(12);
/// How long ended or expired sign-in state is kept (access tokens live at
/// most a day past their grant's last refresh token).
const PURGE_AFTER: Duration = Duration::days(1);
/// How long the sign-in history is kept.
pub const HISTORY_RETENTION: Duration = Duration::days(400);
/// Bounds on what a browser or client may send.
const MAX_PARAM: usize = 2048;
const MAX_LOGIN: usize = 320;
const MAX_USER_AGENT: usize = 512;
/// Scopes the provider knows; others are dropped from the granted scope.
const KNOWN_SCOPES: &[&str] = &["openid", "profile", "email", "groups", "offline_access"];
/// The `typ` of the statement an agent signs.
pub const DEVICE_AUTH_TYP: &str = "latchkey-device-auth+jwt";
/// `acr` values (docs/sso.md): the browser runs on a managed device of the
/// user (`bound`, or the device certificate on a phone); a managed device
/// of the user approved with number matching (`confirm`); password and a
/// one-time code; password alone.
pub const ACR_DEVICE_BOUND: &str = "urn:latchkey:acr:device-bound";
pub const ACR_DEVICE_CONFIRM: &str = "urn:latchkey:acr:device-confirm";
pub const ACR_MFA: &str = "urn:latchkey:acr:mfa";
pub const ACR_PASSWORD: &str = "urn:latchkey:acr:pwd";

/// Who is at the browser, as the HTTP layer saw it.
#[derive(Debug, Clone)]
pub struct BrowserContext {
    pub ip: String,
    pub user_agent: String,
}

impl BrowserContext {
    pub fn new(ip: String, user_agent: &str) -> Self {
        BrowserContext {
            ip,
            user_agent: truncate(user_agent, MAX_USER_AGENT),
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("").to_owned()
}

fn random_hex<const N: usize>() -> Result<String, CoreError> {
    Ok(hex::encode(latchkey_certs::random_bytes::<N>()?))
}

/// The key id a sealed authorization request is bound to.
const REQUEST_KID: &str = "latchkey-authorize-request";
/// The longest request handle a page may carry.
const MAX_HANDLE: usize = 16 * 1024;

/// The store key of a request handle: a sealed handle's digest, or a key
/// itself.
pub fn request_key(handle: &str) -> String {
    if handle.len() <= 32 {
        return handle.to_owned();
    }
    hex::encode(latchkey_certs::sha256(handle.as_bytes()))
        .chars()
        .take(32)
        .collect()
}

/// The id of a session that exists in its cookie alone, derived from the
/// cookie's secret (64 hex digits); `None` for anything else.
fn virtual_session_id(secret: &str) -> Option<String> {
    (secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
        hex::encode(latchkey_certs::sha256(
            format!("latchkey-session-id:{secret}").as_bytes(),
        ))
        .chars()
        .take(32)
        .collect()
    })
}

fn unsaved_session(id: String, browser: &BrowserContext, now: DateTime<Utc>) -> SsoSession {
    SsoSession {
        id,
        user_id: None,
        ip: browser.ip.clone(),
        user_agent: browser.user_agent.clone(),
        created_at: now,
        expires_at: now + SESSION_TTL,
        auth_time: None,
        second_factor: None,
        device: None,
        onboarding: false,
        ended_at: None,
        persisted: false,
    }
}

/// An authorization request as its sealed handle carries it.
#[derive(serde::Serialize, Deserialize)]
struct SealedRequest {
    session_id: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt_login: bool,
    max_age: Option<i64>,
    created_at: i64,
    expires_at: i64,
}

impl From<&AuthRequest> for SealedRequest {
    fn from(r: &AuthRequest) -> Self {
        SealedRequest {
            session_id: r.session_id.clone(),
            client_id: r.client_id.to_string(),
            redirect_uri: r.redirect_uri.clone(),
            scope: r.scope.clone(),
            state: r.state.clone(),
            nonce: r.nonce.clone(),
            code_challenge: r.code_challenge.clone(),
            prompt_login: r.prompt_login,
            max_age: r.max_age,
            created_at: r.created_at.timestamp_millis(),
            expires_at: r.expires_at.timestamp_millis(),
        }
    }
}

/// The query parameters of `/authorize`, as received.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

/// Why `/authorize` refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeRefusal {
    /// The client or its redirect URI cannot be trusted, so the user sees a
    /// page instead of being sent anywhere (RFC 6749 §4.1.2.1).
    Page(&'static str),
    /// Sent back to the client: the redirect URI with `error`.
    Redirect(String),
}

/// A checked authorization request, before it is tied to a session.
#[derive(Debug, Clone)]
pub struct ValidAuthorize {
    pub app: App,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt_login: bool,
    pub prompt_none: bool,
    pub max_age: Option<i64>,
}

/// The URL a code or an error goes back to the client on.
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return redirect_uri.to_owned(),
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
    }
    url.to_string()
}

/// A device as the chooser page shows it.
#[derive(Debug, Clone)]
pub struct DeviceChoice {
    pub id: DeviceId,
    pub hostname: String,
    pub platform: String,
    pub model: String,
    pub state: DeviceState,
}

/// What the browser must see next in a sign-in.
#[derive(Debug, Clone)]
pub enum Step {
    /// The sign-in form.
    Password,
    /// A temporary password was used: choose a new one.
    ChangePassword,
    /// A code from the authenticator app; with an enrollment when the user
    /// has none yet (scan the QR code, then type a code).
    Totp(Option<TotpEnrollment>),
    /// A code was emailed to this (masked) address.
    EmailCode { to: String },
    /// Choose which of several devices confirms the login.
    ChooseDevice(Vec<DeviceChoice>),
    /// Waiting for a device to answer, or (`bound`) for its proof to
    /// arrive from this browser: the redemption link or the code.
    DeviceAuth {
        txn: Box<DeviceAuthTxn>,
        devices: Vec<DeviceChoice>,
    },
    /// The sign-in cannot go on; the page says why.
    Failed(LoginFailure),
    /// Done: send the browser here (the client's redirect URI with a code),
    /// with the session's new cookie secret when the step changed what the
    /// session has proved.
    Redirect(String, Option<String>),
}

/// Why a sign-in stopped, each with its own page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFailure {
    Device(DeviceAuthFailure),
    /// The attempt (request or transaction) is too old or was finished.
    Expired,
    /// The app requires a second factor this server cannot offer the user.
    SecondFactorUnavailable,
    /// `prompt=none` was asked for, but the sign-in needs the user.
    InteractionRequired,
    /// The browser's address is outside the server's or the app's rules.
    NetworkDenied {
        ip: String,
    },
    /// A first authenticator may be set up at sign-in only during
    /// onboarding (a temporary password) or after an emailed code.
    EnrollmentNotAllowed,
}

/// Outcome of the sign-in form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordOutcome {
    /// Signed in; the session's new cookie secret.
    Accepted(String),
    /// The same message whatever was wrong (unknown user, wrong password,
    /// suspended), so the form tells nobody which accounts exist.
    Rejected,
    TemporaryExpired,
    /// Too many failures; try again after this many seconds.
    LockedOut(i64),
    /// The browser's address is outside the server's rules.
    NetworkDenied,
}

/// What an agent is shown and signs for a transaction.
#[derive(Debug, Clone)]
pub struct DeviceChallenge {
    pub txn_id: String,
    pub nonce: String,
    pub audience: String,
    pub app_name: String,
    pub user_email: String,
    pub mode: DevicePolicy,
    pub expires_at: DateTime<Utc>,
    /// The browser that started the sign-in, for the device's dialog.
    pub browser_ip: String,
    pub browser_user_agent: String,
    pub started_at: DateTime<Utc>,
}

/// The outcome of a device's answer, and in `bound` mode what the agent
/// must bring to the browser.
#[derive(Debug, Clone)]
pub struct AnswerOutcome {
    pub outcome: TxnOutcome,
    pub handoff: Option<ProofHandoff>,
}

/// A device's answer to a transaction, as [`Core::settle_answer`] decides
/// it: the authenticated device, its current record with the policy in
/// force, the transaction's user, and whether the device proved its key.
struct Answer<'a> {
    device: &'a AuthenticatedDevice,
    subject: Option<(Device, Option<EffectivePolicy>)>,
    user: Option<TxnUser>,
    verified: bool,
    /// `confirm` mode: the number typed on the device is the browser's.
    number_matches: bool,
    peer_ip: Option<&'a str>,
    /// The proof reached the session with the answer (mobile path).
    delivered: Option<Delivery>,
}

/// The longest signed statement an answer may carry.
const MAX_STATEMENT: usize = 4096;

/// The statement an agent signs (JWS payload).
#[derive(Debug, Clone, Deserialize)]
struct DeviceStatement {
    txn: String,
    nonce: String,
    device_id: String,
    aud: String,
    iat: i64,
    /// `confirm` mode: the number the user typed on the device.
    #[serde(default)]
    number: String,
}

/// A password's acceptable shape: the length NIST SP 800-63B asks for,
/// nothing else imposed.
pub fn validate_new_password(password: &str, confirm: &str) -> Result<(), &'static str> {
    if password != confirm {
        return Err("mismatch");
    }
    let chars = password.chars().count();
    if chars < 12 {
        return Err("too_short");
    }
    if chars > 256 {
        return Err("too_long");
    }
    Ok(())
}

impl Core {
    pub fn issuer(&self) -> &str {
        &self.settings.sso.issuer
    }

    pub fn device_url(&self) -> &str {
        &self.settings.sso.device_url
    }

    pub fn support_contact(&self) -> &str {
        &self.settings.sso.support_contact
    }

    /// The browser's address for a request from `peer` carrying these
    /// `X-Forwarded-For` fields (see [`networks::client_address`]).
    pub fn client_address(
        &self,
        peer: std::net::IpAddr,
        forwarded_for: &[&str],
    ) -> std::net::IpAddr {
        networks::client_address(peer, forwarded_for, &self.settings.sso.trusted_proxies)
    }

    /// Whether a browser at `ip` may sign in (to `app`, when known).
    pub fn network_allows(&self, ip: &str, app: Option<&App>) -> bool {
        networks::allowed(&self.settings.sso.allowed_networks, ip)
            && app.is_none_or(|a| networks::allowed(&a.allowed_networks, ip))
    }

    // ---- sessions ----

    /// The live session a cookie names, if any.
    /// The session is loaded with the current request's address and user
    /// agent, so every check on it judges the browser asking now.
    pub async fn session_from_cookie(
        &self,
        secret: Option<&str>,
        browser: &BrowserContext,
        now: DateTime<Utc>,
    ) -> Result<Option<SsoSession>, CoreError> {
        let Some(secret) = secret.filter(|s| s.len() <= 128) else {
            return Ok(None);
        };
        if let Some(mut session) = self
            .store
            .session_by_secret_hash(&secret_hash(secret))
            .await?
        {
            if !session.is_live(now) {
                return Ok(None);
            }
            session.ip.clone_from(&browser.ip);
            session.user_agent.clone_from(&browser.user_agent);
            return Ok(Some(session));
        }
        // A session that exists in its cookie alone (nothing submitted
        // yet). Once its row is written its secret is replaced, so a row
        // under the same id means this secret is an old one: no session.
        let Some(id) = virtual_session_id(secret) else {
            return Ok(None);
        };
        if self.store.session(&id).await?.is_some() {
            return Ok(None);
        }
        Ok(Some(unsaved_session(id, browser, now)))
    }

    /// Records what the session has proved and gives it a new cookie
    /// secret (no session fixation): the new secret, or `None` when the
    /// session ended meanwhile.
    pub(crate) async fn save_session_auth(
        &self,
        session: &SsoSession,
    ) -> Result<Option<String>, CoreError> {
        let secret = random_hex::<32>()?;
        let hash = secret_hash(&secret);
        if !session.persisted {
            self.store.insert_session(session, &hash).await?;
        }
        Ok(self
            .store
            .update_session_auth(session, &hash)
            .await?
            .then_some(secret))
    }

    /// A new, unauthenticated session and the secret for its cookie.
    pub async fn start_session(
        &self,
        browser: &BrowserContext,
        now: DateTime<Utc>,
    ) -> Result<(SsoSession, String), CoreError> {
        let secret = random_hex::<32>()?;
        let id = virtual_session_id(&secret)
            .ok_or_else(|| CoreError::Internal("a new session secret is not hex".into()))?;
        // Nothing is written until the browser submits a form.
        Ok((unsaved_session(id, browser, now), secret))
    }

    /// The CSRF token of a session's forms, derived from its cookie secret
    /// (which never appears in a page).
    pub fn csrf_token(cookie_secret: &str) -> String {
        let digest = latchkey_certs::sha256(format!("latchkey-csrf:{cookie_secret}").as_bytes());
        hex::encode(digest.get(..16).unwrap_or(&digest))
    }

    /// Ends a session (sign-out) and the grants issued in it.
    pub async fn end_session(
        &self,
        session: &SsoSession,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        self.store.end_session(&session.id, reason, now).await?;
        Ok(())
    }

    // ---- /authorize ----

    /// Checks an authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2).
    pub async fn validate_authorize(
        &self,
        params: &AuthorizeParams,
    ) -> Result<ValidAuthorize, AuthorizeRefusal> {
        let too_long = [
            &params.client_id,
            &params.redirect_uri,
            &params.scope,
            &params.state,
            &params.nonce,
            &params.code_challenge,
        ]
        .iter()
        .any(|p| p.as_ref().is_some_and(|v| v.len() > MAX_PARAM));
        if too_long {
            return Err(AuthorizeRefusal::Page("request_too_large"));
        }
        let client_id = params
            .client_id
            .as_deref()
            .and_then(ClientId::parse)
            .ok_or(AuthorizeRefusal::Page("unknown_client"))?;
        let (app, _) = self
            .store
            .app_by_client_id(&client_id)
            .await
            .map_err(|_| AuthorizeRefusal::Page("unavailable"))?
            .ok_or(AuthorizeRefusal::Page("unknown_client"))?;
        let redirect_uri = params
            .redirect_uri
            .clone()
            .ok_or(AuthorizeRefusal::Page("bad_redirect_uri"))?;
        if !app.allows_redirect(&redirect_uri) {
            return Err(AuthorizeRefusal::Page("bad_redirect_uri"));
        }
        let issuer = self.issuer().to_owned();
        let refuse = |error: &str, description: &str| {
            let mut pairs = vec![
                ("error", error),
                ("error_description", description),
                ("iss", issuer.as_str()),
            ];
            if let Some(state) = &params.state {
                pairs.push(("state", state));
            }
            AuthorizeRefusal::Redirect(redirect_with(&redirect_uri, &pairs))
        };
        if params.request.is_some() {
            return Err(refuse(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        if params.request_uri.is_some() {
            return Err(refuse(
                "request_uri_not_supported",
                "request_uri is not supported",
            ));
        }
        if params.response_type.as_deref() != Some("code") {
            return Err(refuse(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        let code_challenge = match (
            &params.code_challenge,
            params.code_challenge_method.as_deref(),
        ) {
            (Some(challenge), Some("S256")) => {
                let ok = challenge.len() == 43
                    && challenge
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    return Err(refuse(
                        "invalid_request",
                        "code_challenge is not an S256 challenge",
                    ));
                }
                Some(challenge.clone())
            }
            (Some(_), _) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge_method must be S256",
                ));
            }
            (None, _) if app.public => {
                return Err(refuse(
                    "invalid_request",
                    "public clients must use PKCE (S256)",
                ));
            }
            (None, _) => None,
        };
        let requested: Vec<&str> = params
            .scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if !requested.contains(&"openid") {
            return Err(refuse("invalid_scope", "the openid scope is required"));
        }
        // `offline_access` is dropped for an app that may not hold refresh
        // tokens (OIDC Core §11 lets the provider ignore it).
        let mut scope: Vec<&str> = KNOWN_SCOPES
            .iter()
            .copied()
            .filter(|s| requested.contains(s))
            .filter(|s| *s != "offline_access" || app.offline_access)
            .collect();
        scope.dedup();
        let prompts: Vec<&str> = params
            .prompt
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let prompt_none = prompts.contains(&"none");
        if prompt_none && prompts.len() > 1 {
            return Err(refuse("invalid_request", "prompt=none cannot be combined"));
        }
        let max_age = match params.max_age.as_deref() {
            None | Some("") => None,
            Some(text) => match text.parse::<i64>() {
                Ok(v) if v >= 0 => Some(v),
                _ => {
                    return Err(refuse(
                        "invalid_request",
                        "max_age must be a number of seconds",
                    ));
                }
            },
        };
        Ok(ValidAuthorize {
            redirect_uri,
            scope: scope.join(" "),
            state: params.state.clone(),
            nonce: params.nonce.clone(),
            code_challenge,
            prompt_login: prompts.contains(&"login"),
            prompt_none,
            max_age,
            app,
        })
    }

    /// Whether a session may be reused for `request` or the user must sign
    /// in again (`prompt=login`, `max_age` passed).
    pub fn session_satisfies(
        session: &SsoSession,
        request: &ValidAuthorize,
        now: DateTime<Utc>,
    ) -> bool {
        if request.prompt_login {
            return false;
        }
        match (request.max_age, session.auth_time) {
            (Some(max_age), Some(auth_time)) => now - auth_time <= Duration::seconds(max_age),
            _ => true,
        }
    }

    /// Ties a checked request to a session; the browser continues at the
    /// sign-in page with the request's handle. Nothing is written: the
    /// handle is the request sealed with the server's key, and its row is
    /// written once the user has submitted a form (`persist_request`).
    pub async fn create_auth_request(
        &self,
        session: &SsoSession,
        valid: &ValidAuthorize,
        now: DateTime<Utc>,
    ) -> Result<AuthRequest, CoreError> {
        let mut request = AuthRequest {
            id: String::new(),
            handle: String::new(),
            session_id: session.id.clone(),
            client_id: valid.app.client_id.clone(),
            redirect_uri: valid.redirect_uri.clone(),
            scope: valid.scope.clone(),
            state: valid.state.clone(),
            nonce: valid.nonce.clone(),
            code_challenge: valid.code_challenge.clone(),
            prompt_login: valid.prompt_login,
            max_age: valid.max_age,
            created_at: now,
            expires_at: now + REQUEST_TTL,
            finished_at: None,
        };
        let sealed = SealedRequest::from(&request);
        let json = serde_json::to_string(&sealed)
            .map_err(|e| CoreError::Internal(format!("sealing a request: {e}")))?;
        request.handle = self.ca.token_keys().seal(REQUEST_KID, &json)?;
        request.id = request_key(&request.handle);
        Ok(request)
    }

    /// The request a sealed handle carries, if this server sealed it.
    fn unseal_request(&self, handle: &str) -> Option<AuthRequest> {
        let json = self.ca.token_keys().open(REQUEST_KID, handle).ok()?;
        let sealed: SealedRequest = serde_json::from_str(&json).ok()?;
        Some(AuthRequest {
            id: request_key(handle),
            handle: handle.to_owned(),
            session_id: sealed.session_id,
            client_id: ClientId::parse(&sealed.client_id)?,
            redirect_uri: sealed.redirect_uri,
            scope: sealed.scope,
            state: sealed.state,
            nonce: sealed.nonce,
            code_challenge: sealed.code_challenge,
            prompt_login: sealed.prompt_login,
            max_age: sealed.max_age,
            created_at: DateTime::from_timestamp_millis(sealed.created_at)?,
            expires_at: DateTime::from_timestamp_millis(sealed.expires_at)?,
            finished_at: None,
        })
    }

    /// Writes a request's row, once the user has submitted something.
    async fn persist_request(&self, request: &AuthRequest) -> Result<(), CoreError> {
        self.store.insert_auth_request(request).await?;
        Ok(())
    }

    /// The request a page names, if it belongs to this session and is open.
    async fn open_request(
        &self,
        session: &SsoSession,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(AuthRequest, App)>, CoreError> {
        if request_id.len() > MAX_HANDLE {
            return Ok(None);
        }
        let key = request_key(request_id);
        let request = match self.store.auth_request(&key).await? {
            Some(mut row) => {
                row.handle = request_id.to_owned();
                Some(row)
            }
            None if request_id.len() > 32 => self.unseal_request(request_id),
            None => None,
        };
        let Some(request) = request else {
            return Ok(None);
        };
        if request.session_id != session.id
            || request.finished_at.is_some()
            || request.expires_at <= now
        {
            return Ok(None);
        }
        let Some((app, _)) = self.store.app_by_client_id(&request.client_id).await? else {
            return Ok(None);
        };
        Ok(Some((request, app)))
    }

    /// Deletes sign-in state that can no longer be used (a day after it
    /// ended or expired) and sign-in history past its retention; run
    /// periodically. Returns the rows deleted.
    pub async fn purge_sso(&self, now: DateTime<Utc>) -> Result<u64, CoreError> {
        let tx = self.store.begin().await?;
        let deleted = tx
            .purge_expired(
                now - PURGE_AFTER,
                now - HISTORY_RETENTION,
                (
                    now - super::limits::WINDOW,
                    now - super::limits::DAILY_WINDOW,
                ),
                now,
            )
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// The app a pending request is for (for page titles).
    pub async fn request_app(
        &self,
        session: &SsoSession,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<App>, CoreError> {
        Ok(self
            .open_request(session, request_id, now)
            .await?
            .map(|(_, app)| app))
    }

    async fn login_event(
        &self,
        session: &SsoSession,
        client: Option<&ClientId>,
        event: (&str, &str, Option<String>),
        user: Option<&User>,
        device: Option<&DeviceId>,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let (method, result, reason) = event;
        self.store
            .insert_login_event(&LoginEvent {
                at: now,
                user_id: user.map(|u| u.id.clone()),
                login: user.map(|u| u.email.clone()).unwrap_or_default(),
                ip: session.ip.clone(),
                user_agent: session.user_agent.clone(),
                client_id: client.cloned(),
                device_id: device.cloned(),
                method: method.to_owned(),
                result: result.to_owned(),
                reason,
            })
            .await?;
        Ok(())
    }

    // ---- sign-in steps ----

    /// Works out what the browser must see next for `request_id`.
    pub async fn next_step(
        &self,
        session: &SsoSession,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Step, CoreError> {
        self.step(session, request_id, true, now).await
    }

    /// `prompt=none`: a code if the session already satisfies everything,
    /// otherwise the step that would need the user — without starting a
    /// second factor or a device ceremony (no mail sent, nothing pushed).
    pub async fn silent_step(
        &self,
        session: &SsoSession,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Step, CoreError> {
        self.step(session, request_id, false, now).await
    }

    /// The request, its app and the user once everything before the
    /// device step holds (the address rules, the password, a temporary
    /// password replaced, the second factor); otherwise the step the
    /// browser must see.
    async fn signed_in_for(
        &self,
        session: &SsoSession,
        request_id: &str,
        interactive: bool,
        now: DateTime<Utc>,
    ) -> Result<Result<(AuthRequest, App, User), Step>, CoreError> {
        let Some((request, app)) = self.open_request(session, request_id, now).await? else {
            return Ok(Err(Step::Failed(LoginFailure::Expired)));
        };
        if !self.network_allows(&session.ip, Some(&app)) {
            self.login_event(
                session,
                Some(&app.client_id),
                ("network", "failed", Some("network_denied".to_owned())),
                None,
                None,
                now,
            )
            .await?;
            return Ok(Err(Step::Failed(LoginFailure::NetworkDenied {
                ip: session.ip.clone(),
            })));
        }
        let (Some(user_id), Some(_)) = (&session.user_id, session.auth_time) else {
            return Ok(Err(Step::Password));
        };
        let Some(user) = self
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| u.status == UserStatus::Active)
        else {
            self.end_session(session, "user not active", now).await?;
            return Ok(Err(Step::Failed(LoginFailure::Expired)));
        };
        if self
            .store
            .password(&user.id)
            .await?
            .is_some_and(|p: PasswordRecord| p.must_change)
        {
            return Ok(Err(Step::ChangePassword));
        }
        let factors = self.store.second_factor(&user.id).await?;
        // An app that asks for TOTP is satisfied by nothing else; any other
        // demand by any factor that passed in this session.
        let strict = (app.mfa_policy == MfaPolicy::Totp).then_some(Factor::Totp);
        if !session.passed_factor(strict)
            && let Some(factor) = self
                .factor_needed(session, &app, &user, &factors, now)
                .await?
        {
            if !interactive {
                return Ok(Err(Step::Failed(LoginFailure::InteractionRequired)));
            }
            return self
                .factor_step(session, &user, factor, &factors, now)
                .await
                .map(Err);
        }
        // The user has signed in: the request is written now, before a
        // device transaction or a code refers to it.
        self.persist_request(&request).await?;
        Ok(Ok((request, app, user)))
    }

    async fn step(
        &self,
        session: &SsoSession,
        request_id: &str,
        interactive: bool,
        now: DateTime<Utc>,
    ) -> Result<Step, CoreError> {
        let (request, app, user) = match self
            .signed_in_for(session, request_id, interactive, now)
            .await?
        {
            Ok(ready) => ready,
            Err(step) => return Ok(step),
        };
        let mut session = session.clone();
        let mut new_secret = None;
        let device = if app.device_policy == DevicePolicy::None {
            None
        } else if user.kind == UserKind::BreakGlass {
            self.audit(AuditEntry {
                at: now,
                actor: format!("user:{}", user.email),
                action: "sso.break-glass",
                target: app.name.clone(),
                outcome: AuditOutcome::Ok,
                detail: format!(
                    "BREAK-GLASS sign-in skipped the device requirement ({}) from {}",
                    app.device_policy.as_str(),
                    session.ip
                ),
            })
            .await?;
            None
        } else if !interactive {
            // Only a device confirmation this session already holds, of
            // the kind the app needs, from this address, counts.
            match self.held_confirmation(&session, &app, &user, now).await? {
                Some(device) => Some(device),
                None => return Ok(Step::Failed(LoginFailure::InteractionRequired)),
            }
        } else {
            match self
                .device_step(&mut session, &request, &app, &user, now)
                .await?
            {
                Ok((device, secret)) => {
                    new_secret = secret;
                    Some(device)
                }
                Err(step) => return Ok(step),
            }
        };
        match self
            .issue_code(&session, &request, &app, &user, device.as_ref(), now)
            .await?
        {
            Step::Redirect(url, None) => Ok(Step::Redirect(url, new_secret)),
            other => Ok(other),
        }
    }

    /// The device confirmation the session holds, if it still counts for
    /// `app`: the device is still fit for the user, and for a `bound` app
    /// it was a `bound` (or certificate) confirmation made from the address
    /// the browser has now. A `confirm` approval never opens a `bound` app.
    async fn held_confirmation(
        &self,
        session: &SsoSession,
        app: &App,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<Option<Device>, CoreError> {
        let Some(held) = &session.device else {
            return Ok(None);
        };
        if !confirmation_counts(held, app.device_policy, &session.ip) {
            return Ok(None);
        }
        let view = self.compliance_of(&held.device_id, now).await?;
        Ok(device_fitness(&view.device, &view.compliance, &user.email)
            .is_none()
            .then_some(view.device))
    }

    /// Settles the device requirement: `Ok` with the confirming device
    /// (and the session's new cookie secret when this step took the
    /// confirmation), or the step the browser must see instead.
    async fn device_step(
        &self,
        session: &mut SsoSession,
        request: &AuthRequest,
        app: &App,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<Result<(Device, Option<String>), Step>, CoreError> {
        // A device confirmation the session holds still counts if it is of
        // the kind this app needs and the device passes every check.
        if let Some(device) = self.held_confirmation(session, app, user, now).await? {
            return Ok(Ok((device, None)));
        }
        let devices: Vec<Device> = self
            .store
            .devices_of_user(&user.email)
            .await?
            .into_iter()
            .filter(|d| !d.state.is_final())
            .collect();
        let choices: Vec<DeviceChoice> = devices.iter().map(choice).collect();
        match self.store.latest_txn(&request.id).await? {
            Some(txn) if txn.session_id == session.id => match &txn.outcome {
                TxnOutcome::Confirmed if txn.awaiting_proof() => {
                    // The device answered; its proof has not come back
                    // from this browser yet (the link or the code).
                    if txn.code_attempts >= proof::CODE_ATTEMPTS {
                        return Ok(Err(Step::Failed(LoginFailure::Device(
                            DeviceAuthFailure::TooManyCodes,
                        ))));
                    }
                    let open = txn
                        .answered_at
                        .is_some_and(|at| at + proof::DELIVERY_TTL > now);
                    if open {
                        let devices = choices
                            .into_iter()
                            .filter(|c| txn.expected_devices.contains(&c.id))
                            .collect();
                        return Ok(Err(Step::DeviceAuth {
                            txn: Box::new(txn),
                            devices,
                        }));
                    }
                    let hostname = devices
                        .iter()
                        .find(|d| Some(&d.id) == txn.device_id.as_ref())
                        .map(|d| d.hostname.clone())
                        .unwrap_or_default();
                    let failure = DeviceAuthFailure::NotDelivered { device: hostname };
                    if self.store.redeem_txn(&txn.id, &session.id, now).await? {
                        self.login_event(
                            session,
                            Some(&app.client_id),
                            ("device", "failed", Some(failure.code().to_owned())),
                            Some(user),
                            txn.device_id.as_ref(),
                            now,
                        )
                        .await?;
                    }
                    return Ok(Err(Step::Failed(LoginFailure::Device(failure))));
                }
                TxnOutcome::Confirmed => {
                    if !self.store.redeem_txn(&txn.id, &session.id, now).await? {
                        return Ok(Err(Step::Failed(LoginFailure::Expired)));
                    }
                    let Some(device_id) = txn.device_id.clone() else {
                        return Ok(Err(Step::Failed(LoginFailure::Expired)));
                    };
                    // The checks ran when the device answered; run them
                    // again, since a lock may have landed in between.
                    let view = self.compliance_of(&device_id, now).await?;
                    if let Some(failure) =
                        device_fitness(&view.device, &view.compliance, &user.email)
                    {
                        return Ok(Err(Step::Failed(LoginFailure::Device(failure))));
                    }
                    let proof = match (txn.mode, txn.delivered.map(|(how, _)| how)) {
                        (DevicePolicy::Confirm, _) => DeviceProof::Confirm,
                        (_, Some(Delivery::Certificate)) => DeviceProof::Certificate,
                        _ => DeviceProof::Bound,
                    };
                    session.device = Some(DeviceConfirmation {
                        device_id,
                        proof,
                        ip: session.ip.clone(),
                    });
                    let Some(secret) = self.save_session_auth(session).await? else {
                        return Ok(Err(Step::Failed(LoginFailure::Expired)));
                    };
                    return Ok(Ok((view.device, Some(secret))));
                }
                TxnOutcome::Failed(failure) => {
                    return Ok(Err(Step::Failed(LoginFailure::Device(failure.clone()))));
                }
                TxnOutcome::Pending if txn.expires_at > now => {
                    let devices = choices
                        .into_iter()
                        .filter(|c| txn.expected_devices.contains(&c.id))
                        .collect();
                    return Ok(Err(Step::DeviceAuth {
                        txn: Box::new(txn),
                        devices,
                    }));
                }
                TxnOutcome::Pending => {
                    let failure = DeviceAuthFailure::NotAnswered;
                    self.fail_txn(&txn, None, failure.clone(), now).await?;
                    return Ok(Err(Step::Failed(LoginFailure::Device(failure))));
                }
            },
            _ => {}
        }
        match devices.as_slice() {
            [] => {
                let failure = DeviceAuthFailure::NoDevice;
                self.login_event(
                    session,
                    Some(&app.client_id),
                    ("device", "failed", Some(failure.code().to_owned())),
                    Some(user),
                    None,
                    now,
                )
                .await?;
                Ok(Err(Step::Failed(LoginFailure::Device(failure))))
            }
            [only] => {
                let txn = match self
                    .start_txn(session, request, app, user, vec![only.id.clone()], now)
                    .await?
                {
                    Ok(txn) => txn,
                    Err(failure) => return Ok(Err(Step::Failed(LoginFailure::Device(failure)))),
                };
                Ok(Err(Step::DeviceAuth {
                    txn: Box::new(txn),
                    devices: choices,
                }))
            }
            _ => Ok(Err(Step::ChooseDevice(choices))),
        }
    }

    /// Starts a device-auth transaction for the device the user chose (or,
    /// with `None`, for all of their devices again after a failure).
    pub async fn choose_device(
        &self,
        session: &SsoSession,
        request_id: &str,
        device: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Step, CoreError> {
        // Nothing is pushed to a device before everything ahead of the
        // device step holds.
        let (request, app, user) = match self.signed_in_for(session, request_id, true, now).await? {
            Ok(ready) => ready,
            Err(step) => return Ok(step),
        };
        if app.device_policy == DevicePolicy::None {
            return self.next_step(session, request_id, now).await;
        }
        let devices: Vec<Device> = self
            .store
            .devices_of_user(&user.email)
            .await?
            .into_iter()
            .filter(|d| !d.state.is_final())
            .collect();
        let expected: Vec<DeviceId> = match device {
            Some(id) => devices
                .iter()
                .filter(|d| d.id.as_str() == id)
                .map(|d| d.id.clone())
                .collect(),
            None if devices.len() == 1 => devices.iter().map(|d| d.id.clone()).collect(),
            None => return Ok(Step::ChooseDevice(devices.iter().map(choice).collect())),
        };
        if expected.is_empty() {
            return Ok(Step::ChooseDevice(devices.iter().map(choice).collect()));
        }
        let txn = match self
            .start_txn(session, &request, &app, &user, expected, now)
            .await?
        {
            Ok(txn) => txn,
            Err(failure) => return Ok(Step::Failed(LoginFailure::Device(failure))),
        };
        let devices = devices
            .iter()
            .filter(|d| txn.expected_devices.contains(&d.id))
            .map(choice)
            .collect();
        Ok(Step::DeviceAuth {
            txn: Box::new(txn),
            devices,
        })
    }

    async fn start_txn(
        &self,
        session: &SsoSession,
        request: &AuthRequest,
        app: &App,
        user: &User,
        expected: Vec<DeviceId>,
        now: DateTime<Utc>,
    ) -> Result<Result<DeviceAuthTxn, DeviceAuthFailure>, CoreError> {
        if let Some(failure) = self
            .txn_allowance(session, &user.id, app.device_policy, now)
            .await?
        {
            self.login_event(
                session,
                Some(&app.client_id),
                ("device", "failed", Some(failure.code().to_owned())),
                Some(user),
                None,
                now,
            )
            .await?;
            return Ok(Err(failure));
        }
        let short_code = match app.device_policy {
            DevicePolicy::Confirm => proof::match_number()?,
            _ => String::new(),
        };
        let txn = DeviceAuthTxn {
            id: random_hex::<16>()?,
            nonce: random_hex::<32>()?,
            short_code,
            mode: app.device_policy,
            request_id: request.id.clone(),
            session_id: session.id.clone(),
            user_id: user.id.clone(),
            client_id: app.client_id.clone(),
            expected_devices: expected,
            browser_ip: session.ip.clone(),
            browser_ua: session.user_agent.clone(),
            created_at: now,
            expires_at: now + TXN_TTL,
            device_id: None,
            answered_at: None,
            outcome: TxnOutcome::Pending,
            code_attempts: 0,
            link_opened_at: None,
            delivered: None,
            redeemed_at: None,
        };
        self.store.insert_txn(&txn).await?;
        if txn.mode == DevicePolicy::Confirm {
            for device in &txn.expected_devices {
                self.push.device_auth_request(device, &txn.id);
            }
        }
        Ok(Ok(txn))
    }

    async fn fail_txn(
        &self,
        txn: &DeviceAuthTxn,
        device: Option<&DeviceId>,
        failure: DeviceAuthFailure,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let outcome = TxnOutcome::Failed(failure.clone());
        // The outcome and its history row are written together.
        let tx = self.store.begin().await?;
        let recorded = tx
            .answer_txn(
                &txn.id,
                TxnUpdate {
                    device_id: device,
                    outcome: &outcome,
                    proof: None,
                    delivered: None,
                },
                now,
            )
            .await?;
        if recorded {
            tx.insert_login_event(&LoginEvent {
                at: now,
                user_id: Some(txn.user_id.clone()),
                login: String::new(),
                ip: txn.browser_ip.clone(),
                user_agent: txn.browser_ua.clone(),
                client_id: Some(txn.client_id.clone()),
                device_id: device.cloned(),
                method: "device".into(),
                result: "failed".into(),
                reason: Some(failure.code().to_owned()),
            })
            .await?;
        }
        tx.commit().await?;
        if recorded {
            self.device_auth_waiters.wake(&txn.id);
        }
        Ok(recorded)
    }

    /// The sign-in form was submitted.
    pub async fn submit_password(
        &self,
        session: &SsoSession,
        login: &str,
        password: &Password,
        now: DateTime<Utc>,
    ) -> Result<PasswordOutcome, CoreError> {
        let login = truncate(login.trim(), MAX_LOGIN);
        if !self.network_allows(&session.ip, None) {
            return Ok(PasswordOutcome::NetworkDenied);
        }
        // Counted before it is checked: parallel guesses cannot all pass.
        let reserved = match self
            .reserve_guess(Guess::Password, &login, &session.ip, now)
            .await?
        {
            Ok(reserved) => reserved,
            Err(left) => {
                self.store
                    .insert_login_event(&LoginEvent {
                        at: now,
                        user_id: None,
                        login: login.clone(),
                        ip: session.ip.clone(),
                        user_agent: session.user_agent.clone(),
                        client_id: None,
                        device_id: None,
                        method: "password".into(),
                        result: "failed".into(),
                        reason: Some("locked_out".into()),
                    })
                    .await?;
                return Ok(PasswordOutcome::LockedOut(left.num_seconds().max(1)));
            }
        };
        let check = self.check_password(&login, password, now).await?;
        let (user, outcome) = match check {
            PasswordCheck::Valid { user, must_change } => (
                Some((*user, must_change)),
                PasswordOutcome::Accepted(String::new()),
            ),
            PasswordCheck::Expired => (None, PasswordOutcome::TemporaryExpired),
            PasswordCheck::Wrong | PasswordCheck::Unusable => (None, PasswordOutcome::Rejected),
        };
        let failed = !matches!(outcome, PasswordOutcome::Accepted(_));
        let known = match &user {
            Some((user, _)) => Some(user.id.clone()),
            None => self
                .store
                .user_by_email(
                    &super::email::normalize(&login).unwrap_or_else(|_| login.to_lowercase()),
                )
                .await?
                .map(|u| u.id),
        };
        self.store
            .insert_login_event(&LoginEvent {
                at: now,
                user_id: known,
                login: login.clone(),
                ip: session.ip.clone(),
                user_agent: session.user_agent.clone(),
                client_id: None,
                device_id: None,
                method: "password".into(),
                result: if failed { "failed" } else { "ok" }.into(),
                reason: match outcome {
                    PasswordOutcome::Rejected => Some("bad_credentials".into()),
                    PasswordOutcome::TemporaryExpired => Some("temporary_password_expired".into()),
                    _ => None,
                },
            })
            .await?;
        let Some((user, temporary)) = user else {
            return Ok(outcome);
        };
        let mut session = session.clone();
        if session.user_id.as_ref() != Some(&user.id) {
            session.device = None;
        }
        // A device the same user confirmed earlier in this session still
        // counts (and is checked again at the next step); a second factor
        // is asked for again.
        session.user_id = Some(user.id.clone());
        session.auth_time = Some(now);
        session.second_factor = None;
        session.onboarding = temporary;
        let Some(secret) = self.save_session_auth(&session).await? else {
            return Ok(PasswordOutcome::Rejected);
        };
        // A second factor started for someone else in this browser is void.
        self.store.delete_challenge(&session.id).await?;
        self.guess_passed(reserved).await?;
        Ok(PasswordOutcome::Accepted(secret))
    }

    /// A user who signed in with a temporary password chose a new one.
    /// Only a password the server marked to be changed may be replaced
    /// here; any other change goes through the account page (the current
    /// password and a fresh sign-in with every factor). The user's other
    /// sessions and every refresh token end.
    pub async fn change_password(
        &self,
        session: &SsoSession,
        new_password: &Password,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let (Some(user_id), Some(_)) = (&session.user_id, session.auth_time) else {
            return Ok(false);
        };
        let must_change = self
            .store
            .password(user_id)
            .await?
            .is_some_and(|p| p.must_change);
        if !must_change {
            return Ok(false);
        }
        self.replace_password(
            session,
            user_id,
            new_password,
            "password changed at sign-in",
            now,
        )
        .await
    }

    /// Sets a user's new password, ends their other sessions and every
    /// refresh token, and audits it, in one transaction.
    pub(crate) async fn replace_password(
        &self,
        session: &SsoSession,
        user_id: &crate::domain::ids::UserId,
        new_password: &Password,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let hash = self.passwords().hash(new_password).await?;
        let tx = self.store.begin().await?;
        let set = tx
            .set_password(
                user_id,
                &PasswordRecord {
                    hash,
                    expires_at: None,
                    must_change: false,
                },
                now,
            )
            .await?;
        if !set {
            return Ok(false);
        }
        let ended = tx
            .end_user_sso_except(user_id, &session.id, "password changed", now)
            .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: format!("user:{user_id}"),
            action: "user.password-change",
            target: user_id.to_string(),
            outcome: AuditOutcome::Ok,
            detail: format!("{detail}; {ended} other sessions and grants ended"),
        })
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// All factors passed: record the grant and hand out a code.
    async fn issue_code(
        &self,
        session: &SsoSession,
        request: &AuthRequest,
        app: &App,
        user: &User,
        device: Option<&Device>,
        now: DateTime<Utc>,
    ) -> Result<Step, CoreError> {
        let code = random_hex::<32>()?;
        let proof = device.and(session.device.as_ref().map(|d| d.proof));
        let acr = match proof {
            Some(p) if p.is_bound() => ACR_DEVICE_BOUND,
            Some(_) => ACR_DEVICE_CONFIRM,
            None if session.second_factor.is_some() => ACR_MFA,
            None => ACR_PASSWORD,
        };
        let amr = match proof {
            Some(_) => session.amr(),
            // A device confirmation the app did not ask for is not claimed.
            None => session
                .amr()
                .into_iter()
                .filter(|m| !matches!(m.as_str(), "swk" | "mca" | "user"))
                .collect(),
        };
        let grant = Grant {
            id: random_hex::<16>()?,
            session_id: session.id.clone(),
            user_id: user.id.clone(),
            client_id: app.client_id.clone(),
            device_id: device.map(|d| d.id.clone()),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            code_expires_at: now + CODE_TTL,
            code_used_at: None,
            auth_time: session.auth_time.unwrap_or(now),
            amr,
            acr: acr.to_owned(),
            created_at: now,
            ended_at: None,
        };
        let tx = self.store.begin().await?;
        if !tx.finish_auth_request(&request.id, now).await? {
            return Ok(Step::Failed(LoginFailure::Expired));
        }
        tx.insert_grant(&grant, &secret_hash(&code)).await?;
        tx.commit().await?;
        let method = if device.is_some() {
            "device"
        } else if user.kind == UserKind::BreakGlass && app.device_policy != DevicePolicy::None {
            "break-glass"
        } else if session.second_factor.is_some() {
            "otp"
        } else {
            "password"
        };
        self.login_event(
            session,
            Some(&app.client_id),
            (method, "ok", None),
            Some(user),
            device.map(|d| &d.id),
            now,
        )
        .await?;
        let mut params = vec![("code", code.as_str()), ("iss", self.issuer())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        Ok(Step::Redirect(
            redirect_with(&request.redirect_uri, &params),
            None,
        ))
    }

    // ---- the device's side ----

    /// What a device must sign for `txn_id`. Only a device the transaction
    /// expects is told; any other device fails the transaction with the
    /// reason, so the browser shows it at once.
    pub async fn device_auth_challenge(
        &self,
        leaf_der: Option<&[u8]>,
        txn_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeviceChallenge, CoreError> {
        let leaf = auth::read_leaf(leaf_der, now)?;
        let (device, facts) = self.device_auth_facts(leaf, txn_id).await?;
        let txn = self.pending(facts.txn, now).await?;
        if !txn.expected_devices.contains(device.id()) {
            let hostname = facts.device.map(|(d, _)| d.hostname).unwrap_or_default();
            self.fail_txn(
                &txn,
                Some(device.id()),
                DeviceAuthFailure::OtherUser { device: hostname },
                now,
            )
            .await?;
            return Err(CoreError::FailedPrecondition(
                "this device is not one the sign-in expects (it belongs to another user)".into(),
            ));
        }
        let user = facts
            .user
            .ok_or_else(|| CoreError::NotFound("user".into()))?;
        let app_name = facts
            .app_name
            .ok_or_else(|| CoreError::NotFound("app".into()))?;
        Ok(DeviceChallenge {
            txn_id: txn.id,
            nonce: txn.nonce,
            audience: self.issuer().to_owned(),
            app_name,
            user_email: user.email,
            mode: txn.mode,
            expires_at: txn.expires_at,
            browser_ip: txn.browser_ip,
            browser_user_agent: txn.browser_ua,
            started_at: txn.created_at,
        })
    }

    /// Authenticates a device by the certificate it presented and reads,
    /// in the same statement, what its call about `txn_id` is decided on.
    async fn device_auth_facts(
        &self,
        leaf: latchkey_certs::CertificateInfo,
        txn_id: &str,
    ) -> Result<(AuthenticatedDevice, DeviceAuthFacts), CoreError> {
        // An id of another shape matches no transaction.
        let txn_id = if txn_id.len() == 32 { txn_id } else { "" };
        let facts = self
            .store
            .device_auth_facts(&leaf.serial_hex, txn_id)
            .await?;
        let state = facts
            .as_ref()
            .and_then(|f| f.device.as_ref())
            .map(|(d, _)| d.state);
        let device = auth::admit(
            leaf,
            facts.as_ref().map(|f| &f.certificate),
            state,
            DeviceChannel::DeviceApi,
        )?;
        let facts = facts.ok_or(DeviceAuthError::Refused(DeviceRefusal::UnknownCertificate))?;
        Ok((device, facts))
    }

    /// The transaction, if it can still be answered; an expired one is
    /// recorded as not answered.
    async fn pending(
        &self,
        txn: Option<DeviceAuthTxn>,
        now: DateTime<Utc>,
    ) -> Result<DeviceAuthTxn, CoreError> {
        let txn = txn.ok_or_else(|| {
            CoreError::NotFound("no such sign-in (device-auth transaction)".into())
        })?;
        if txn.outcome != TxnOutcome::Pending {
            return Err(CoreError::FailedPrecondition(
                "this sign-in was answered already".into(),
            ));
        }
        if txn.expires_at <= now {
            self.fail_txn(&txn, None, DeviceAuthFailure::NotAnswered, now)
                .await?;
            return Err(CoreError::FailedPrecondition(
                "this sign-in has expired".into(),
            ));
        }
        Ok(txn)
    }

    /// A device's signed answer, verified with the key of the certificate
    /// it presented (its current one); `peer_ip` is where the answer came
    /// from. Returns the outcome the agent reports.
    pub async fn answer_device_auth(
        &self,
        leaf_der: Option<&[u8]>,
        peer_ip: Option<&str>,
        signed: &str,
        now: DateTime<Utc>,
    ) -> Result<AnswerOutcome, CoreError> {
        let leaf = auth::read_leaf(leaf_der, now)?;
        let verified = self.verified_statement(&leaf.public_key, signed, now);
        if let Some(statement) = &verified
            && let Some(handoff) = self.confirm_if_fit(&leaf, statement, peer_ip, now).await?
        {
            return Ok(AnswerOutcome {
                outcome: TxnOutcome::Confirmed,
                handoff,
            });
        }
        // The full check, which finds and records why the answer does not
        // count (or confirms it when only the stored verdict was out of
        // date). The transaction id is read from the payload before the
        // signature is checked, only to find the transaction; nothing else
        // is trusted unless the signature verified.
        let claimed = (signed.len() <= MAX_STATEMENT)
            .then(|| signed.split('.').nth(1))
            .flatten()
            .and_then(base64_url)
            .and_then(|p| serde_json::from_slice::<DeviceStatement>(&p).ok());
        let txn_id = claimed.as_ref().map_or("", |s| s.txn.as_str());
        let (device, facts) = self.device_auth_facts(leaf, txn_id).await?;
        if claimed.is_none() {
            return Err(CoreError::InvalidArgument(format!(
                "the answer is not a signed statement (or is longer than {MAX_STATEMENT} bytes)"
            )));
        }
        let txn = self.pending(facts.txn, now).await?;
        let verified = verified.filter(|s| {
            s.txn == txn.id
                && constant_eq(&s.nonce, &txn.nonce)
                && s.device_id == device.id().as_str()
        });
        let number_matches = verified.as_ref().is_some_and(|s| {
            txn.mode != DevicePolicy::Confirm || constant_eq(&s.number, &txn.short_code)
        });
        let answer = Answer {
            device: &device,
            subject: facts.device,
            user: facts.user,
            verified: verified.is_some(),
            number_matches,
            peer_ip,
            delivered: None,
        };
        self.settle_answer(&txn, answer, now).await
    }

    /// The statement in `signed` if it is a device-auth statement signed
    /// with `public_key` (ES256), for this issuer, made within the allowed
    /// clock skew. The transaction, nonce and device it names are the
    /// caller's to check.
    fn verified_statement(
        &self,
        public_key: &[u8],
        signed: &str,
        now: DateTime<Utc>,
    ) -> Option<DeviceStatement> {
        if signed.len() > MAX_STATEMENT {
            return None;
        }
        let (header, payload) = latchkey_certs::jose::verify_compact_p256(public_key, signed)?;
        let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
        let typ_ok = header.get("alg")?.as_str()? == "ES256"
            && header.get("typ")?.as_str()? == DEVICE_AUTH_TYP;
        let statement: DeviceStatement = serde_json::from_slice(&payload).ok()?;
        let signed_at = DateTime::from_timestamp(statement.iat, 0)?;
        (typ_ok && statement.aud == self.issuer() && (now - signed_at).abs() <= DEVICE_CLOCK_SKEW)
            .then_some(statement)
    }

    /// Confirms a verified answer in one statement when the device was fit
    /// when its posture last arrived and nothing the decision rests on has
    /// changed since (`store::sso::CONFIRM_FIT_ANSWER`): `Some` with, for a
    /// `bound` transaction, what the agent brings to the browser; `None`
    /// otherwise, with nothing written.
    async fn confirm_if_fit(
        &self,
        leaf: &latchkey_certs::CertificateInfo,
        statement: &DeviceStatement,
        peer_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Option<ProofHandoff>>, CoreError> {
        let Some(device_id) = leaf
            .device_id
            .as_deref()
            .and_then(DeviceId::parse)
            .filter(|id| id.as_str() == statement.device_id)
        else {
            return Ok(None);
        };
        let required_ip = if self.settings.sso.bound_requires_same_ip {
            match peer_ip {
                Some(ip) => Some(ip),
                // Only the full check can tell whether it matters.
                None => return Ok(None),
            }
        } else {
            None
        };
        let proof: NewProof = proof::new_proof(self.issuer(), &statement.txn)?;
        let spki = hex::encode(leaf.spki_sha256);
        let basis_prefix = crate::domain::policy::verdict_basis("");
        let answer = FitAnswer {
            txn_id: &statement.txn,
            nonce: &statement.nonce,
            device_id: &device_id,
            serial_hex: &leaf.serial_hex,
            spki_sha256_hex: &spki,
            required_ip,
            basis_prefix: &basis_prefix,
            number: &statement.number,
            proof: proof.hashes(),
        };
        let Some(mode) = self.store.confirm_fit_answer(&answer, now).await? else {
            return Ok(None);
        };
        self.device_auth_waiters.wake(&statement.txn);
        Ok(Some((mode == DevicePolicy::Bound).then_some(proof.handoff)))
    }

    /// The mobile path: a browser on a managed phone or tablet opened the
    /// device listener, presenting the certificate its MDM profile
    /// installed. The TLS handshake proved the key, so no statement is
    /// signed; the transaction must be this browser session's own.
    pub async fn answer_with_certificate(
        &self,
        session: &SsoSession,
        leaf_der: &[u8],
        txn_id: &str,
        peer_ip: &str,
        now: DateTime<Utc>,
    ) -> Result<(TxnOutcome, String), CoreError> {
        let leaf = auth::read_leaf(Some(leaf_der), now)?;
        let (device, facts) = self.device_auth_facts(leaf, txn_id).await?;
        let txn = self.pending(facts.txn, now).await?;
        if txn.session_id != session.id {
            return Err(CoreError::NotFound(
                "no such sign-in in this browser".into(),
            ));
        }
        let answer = Answer {
            device: &device,
            subject: facts.device,
            user: facts.user,
            verified: true,
            // The browser on the device answered: it saw the number itself.
            number_matches: true,
            peer_ip: Some(peer_ip),
            // The browser that presented the certificate holds the session.
            delivered: Some(Delivery::Certificate),
        };
        let answered = self.settle_answer(&txn, answer, now).await?;
        Ok((answered.outcome, txn.request_id))
    }

    /// The checks after the device proved its key: expected device, its
    /// user, fitness, network; then the outcome is recorded once.
    async fn settle_answer(
        &self,
        txn: &DeviceAuthTxn,
        answer: Answer<'_>,
        now: DateTime<Utc>,
    ) -> Result<AnswerOutcome, CoreError> {
        let device = answer.device;
        let Some((subject, policy)) = answer.subject else {
            return Err(DeviceAuthError::Refused(DeviceRefusal::UnknownDevice).into());
        };
        let hostname = subject.hostname.clone();
        let failure = if !answer.verified {
            Some(DeviceAuthFailure::BadSignature {
                device: hostname.clone(),
            })
        } else if !txn.expected_devices.contains(device.id()) {
            Some(DeviceAuthFailure::OtherUser {
                device: hostname.clone(),
            })
        } else if !answer.number_matches {
            Some(DeviceAuthFailure::WrongNumber {
                device: hostname.clone(),
            })
        } else {
            match answer.user.filter(|u| u.status == UserStatus::Active) {
                None => Some(DeviceAuthFailure::OtherUser {
                    device: hostname.clone(),
                }),
                Some(user) => {
                    let policy = policy
                        .as_ref()
                        .map(|p| (p.name.as_str(), p.document.as_str()));
                    let view = Core::view_under(subject, policy, now);
                    device_fitness(&view.device, &view.compliance, &user.email)
                }
            }
        };
        let failure = failure.or_else(|| {
            let same_ip = answer.peer_ip.is_some_and(|ip| ip == txn.browser_ip);
            (txn.mode == DevicePolicy::Bound
                && self.settings.sso.bound_requires_same_ip
                && !same_ip)
                .then(|| DeviceAuthFailure::WrongNetwork {
                    device: hostname.clone(),
                })
        });
        if let Some(failure) = failure {
            self.fail_txn(txn, Some(device.id()), failure.clone(), now)
                .await?;
            return Ok(AnswerOutcome {
                outcome: TxnOutcome::Failed(failure),
                handoff: None,
            });
        }
        // A `bound` answer becomes a sign-in only when its proof comes back
        // from the browser session (unless the answer arrived through that
        // browser itself, as on the mobile path).
        let proof = (txn.mode == DevicePolicy::Bound && answer.delivered.is_none())
            .then(|| proof::new_proof(self.issuer(), &txn.id))
            .transpose()?;
        let confirmed = self
            .store
            .answer_txn(
                &txn.id,
                TxnUpdate {
                    device_id: Some(device.id()),
                    outcome: &TxnOutcome::Confirmed,
                    proof: proof.as_ref().map(NewProof::hashes),
                    delivered: answer.delivered,
                },
                now,
            )
            .await?;
        if !confirmed {
            return Err(CoreError::FailedPrecondition(
                "this sign-in was answered already".into(),
            ));
        }
        self.device_auth_waiters.wake(&txn.id);
        Ok(AnswerOutcome {
            outcome: TxnOutcome::Confirmed,
            handoff: proof.map(|p| p.handoff),
        })
    }

    /// The state of a transaction as its own session sees it (`None` for
    /// any other session). A pending transaction past its expiry reads as
    /// failed: nobody answered.
    pub async fn device_auth_state(
        &self,
        session: &SsoSession,
        txn_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TxnOutcome>, CoreError> {
        if txn_id.len() != 32 {
            return Ok(None);
        }
        let Some(txn) = self
            .store
            .txn(txn_id)
            .await?
            .filter(|t| t.session_id == session.id)
        else {
            return Ok(None);
        };
        if txn.outcome == TxnOutcome::Pending && txn.expires_at <= now {
            return Ok(Some(TxnOutcome::Failed(DeviceAuthFailure::NotAnswered)));
        }
        if txn.awaiting_proof() {
            // The page waits for the link or the code; once the time for
            // them has passed, the sign-in page says so.
            return Ok(Some(match proof::delivery_state(&txn, now) {
                DeliveryState::Over => TxnOutcome::Failed(DeviceAuthFailure::NotDelivered {
                    device: String::new(),
                }),
                _ => TxnOutcome::Pending,
            }));
        }
        Ok(Some(txn.outcome))
    }

    /// Woken when an answer to `txn_id` is taken in this process. Register
    /// (enable the `notified` future) before reading the state, so an
    /// answer in between is not missed.
    pub fn device_auth_waiter(&self, txn_id: &str) -> std::sync::Arc<tokio::sync::Notify> {
        self.device_auth_waiters.waiter(txn_id)
    }

    /// Forgets a transaction's waiter once nobody holds it.
    pub fn release_device_auth_waiter(&self, txn_id: &str) {
        self.device_auth_waiters.prune(txn_id);
    }

    /// Apps the session's user may open from the home page.
    pub async fn apps_for_home(&self) -> Result<Vec<App>, CoreError> {
        Ok(self.store.list_apps().await?)
    }
}

fn base64_url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn choice(device: &Device) -> DeviceChoice {
    DeviceChoice {
        id: device.id.clone(),
        hostname: device.hostname.clone(),
        platform: device.platform.clone(),
        model: device.model.clone(),
        state: device.state,
    }
}

/// Whether a device confirmation a session holds satisfies an app's device
/// policy for a browser at `ip`: a `bound` app takes only a `bound` (or
/// certificate) confirmation made from the same address; a `confirm` app
/// takes any.
pub fn confirmation_counts(held: &DeviceConfirmation, policy: DevicePolicy, ip: &str) -> bool {
    match policy {
        DevicePolicy::None | DevicePolicy::Confirm => true,
        DevicePolicy::Bound => held.proof.is_bound() && held.ip == ip,
    }
}

/// Why a device may not confirm a login for `user` now, if it may not.
pub(crate) fn device_fitness(
    device: &Device,
    compliance: &Compliance,
    user_email: &str,
) -> Option<DeviceAuthFailure> {
    let name = device.hostname.clone();
    if device.user.as_deref() != Some(user_email) {
        return Some(DeviceAuthFailure::OtherUser { device: name });
    }
    match device.state {
        DeviceState::Active => {}
        DeviceState::Locked | DeviceState::WipePending => {
            return Some(DeviceAuthFailure::DeviceLocked { device: name });
        }
        DeviceState::Retired | DeviceState::Wiped => {
            return Some(DeviceAuthFailure::DeviceRetired { device: name });
        }
    }
    match compliance {
        Compliance::Compliant => None,
        Compliance::NonCompliant(failed) => Some(DeviceAuthFailure::NotCompliant {
            device: name,
            checks: failed
                .iter()
                .map(|f| FailedCheckView {
                    check: f.check.to_owned(),
                    detail: f.detail.clone(),
                })
                .collect(),
        }),
        Compliance::Unknown => Some(DeviceAuthFailure::NotCompliant {
            device: name,
            checks: vec![FailedCheckView {
                check: "posture".into(),
                detail: "the device has not reported its posture yet".into(),
            }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_need_twelve_characters_and_a_match() {
        assert_eq!(validate_new_password("short", "short"), Err("too_short"));
        assert_eq!(
            validate_new_password("long enough pass", "long enough pas"),
            Err("mismatch")
        );
        assert_eq!(
            validate_new_password(
                "パスワードは十二文字以上です",
                "パスワードは十二文字以上です"
            ),
            Ok(())
        );
    }

    #[test]
    fn redirects_keep_the_registered_query() {
        assert_eq!(
            redirect_with(
                "https://rp.example/cb?x=1",
                &[("code", "a b"), ("state", "s&t")]
            ),
            "https://rp.example/cb?x=1&code=a+b&state=s%26t"
        );
    }
}
