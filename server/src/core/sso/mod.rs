//! The OpenID Connect provider's core: sign-in steps, device-auth
//! transactions and the authorization codes and tokens they lead to.
//!
//! A login moves through steps that [`SignIn::next_step`] works out afresh on
//! every page load from what the database holds (session, request,
//! transaction), so any replica can serve any step and a reload never
//! skips a check. Device checks run again on every authorization and every
//! refresh: locking a device ends its sessions and grants in the locking
//! transaction, and a device that is no longer fit fails the next check.
//!
//! This file owns the provider's settings ([`SsoSettings`] and what the
//! core reads from them), the lifetimes and bounds every part keeps, the
//! types the parts share ([`BrowserContext`], [`Step`], [`LoginFailure`])
//! and the re-exports through which the rest of the server names
//! everything here (`crate::core::sso::X`). The work is in the submodules:
//!
//! - `authorize.rs`: `/authorize`, a request checked and sealed into the
//!   handle the pages carry, and the open request a page names.
//! - `sessions.rs`: browser sessions, their cookie secrets (replaced on
//!   every sign-in) and CSRF tokens, sign-out, the sign-in history rows,
//!   and the purge of state nobody can use any more.
//! - `steps.rs`: the sign-in steps: `next_step`, the password form, a
//!   temporary password replaced, and the code handed to the client.
//! - `device_auth.rs`: the device step as the browser sees it: the
//!   chooser, starting a transaction, its state, and whether a device is
//!   fit to confirm a sign-in.
//! - `device_answer.rs`: the device's side: the challenge it signs, its
//!   signed answer and the checks on it, and the mobile certificate path.
//! - `first_party.rs`: the server's own client, ADE's sign-in before a
//!   device enrolls: built in, its codes redeemed only by its callback.
//! - `proof.rs` how a confirmation reaches the browser, `mfa.rs` second
//!   factors, `step_up.rs` the account page's step-up, `tokens.rs` the
//!   token endpoint and what reads tokens back, `waiters.rs` browsers
//!   waiting on a transaction in this process.
//!
//! Nothing here answers a browser or a device directly: pages, forms and
//! status codes are `api/`'s, and every row is read and written through
//! the store.

mod authorize;
mod device_answer;
mod device_auth;
mod first_party;
mod mfa;
mod proof;
mod sessions;
mod step_up;
mod steps;
mod tokens;
mod waiters;

use std::sync::Arc;

use chrono::Duration;

use super::CoreError;
// `steps.rs` and `sessions.rs` reach these as `super::email` and
// `super::limits`.
use super::Audit;
use super::passwords::Passwords;
use super::policies::Policies;
use super::signing_keys::SigningKeys;
use super::{email, limits};
use crate::ca::CertificateAuthority;
use crate::domain::app::App;
use crate::domain::networks::{self, Cidr};
use crate::domain::sign_in::DeviceAuthFailure;
use crate::domain::sign_in::DeviceAuthTxn;
use crate::mail::Mailer;
use crate::push::Push;
use crate::store::Store;
pub use authorize::{
    AuthorizeParams, AuthorizeRefusal, ValidAuthorize, redirect_with, request_key,
};
pub use device_answer::{AnswerOutcome, DeviceChallenge};
pub(crate) use device_auth::device_fitness;
pub use device_auth::{DeviceChoice, confirmation_counts};
pub use mfa::{
    CodeOutcome, HistoryRow, MfaChange, MfaSetting, SecondFactorView, TotpEnrollment, mask_email,
};
pub use proof::{
    CODE_ATTEMPTS, DeliveryState, DeviceCodeOutcome, ProofHandoff, RedeemOutcome, SignInContext,
    normalize_code,
};
pub use step_up::{PasswordChange, STEP_UP_WINDOW, StepUpFactor, StepUpOutcome};
pub use steps::{NewPasswordProblem, PasswordOutcome, validate_new_password};
pub use tokens::{
    ActiveToken, ClientAuth, IdTokenHint, IntrospectedKind, Introspection, TokenError, TokenSet,
    UserClaims, UserInfo,
};
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
    /// Where the built-in client of Automated Device Enrollment's sign-in
    /// receives its codes (`/apple/dep/callback`) when `[apple]
    /// dep_sign_in` is on; `None`: there is no such client.
    pub dep_callback: Option<String>,
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
            dep_callback: None,
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

/// The members of a compact JWS's header (RFC 7515 §4.1) that reading a
/// token or a device's statement looks at; any other member is ignored.
#[derive(Debug, serde::Deserialize)]
struct JwsHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
}

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

/// The sign-in service: everything from `/authorize` to the tokens an app
/// holds, in the files listed above.
pub struct SignIn {
    pub(super) store: Store,
    pub(super) audit: Audit,
    /// Seals sign-in requests and second-factor secrets at rest.
    pub(super) ca: Arc<CertificateAuthority>,
    pub(super) settings: SsoSettings,
    pub(super) passwords: Passwords,
    /// Wakes browsers waiting on a device-auth transaction in this process.
    pub(super) device_auth_waiters: Waiters,
    /// Sends emailed sign-in codes; `None` without `[smtp]`.
    pub(super) mail: Option<Mailer>,
    /// Signs ID tokens and publishes the JWKS.
    pub(super) signing_keys: SigningKeys,
    /// Sends a device-auth challenge to an agent over MQTT.
    pub(super) push: Push,
    /// A device's compliance, checked at every step that relies on it.
    pub(super) policies: Policies,
}

impl SignIn {
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub fn device_url(&self) -> &str {
        &self.settings.device_url
    }

    pub fn support_contact(&self) -> &str {
        &self.settings.support_contact
    }

    /// The browser's address for a request from `peer` carrying these
    /// `X-Forwarded-For` fields (see [`networks::client_address`]).
    pub fn client_address(
        &self,
        peer: std::net::IpAddr,
        forwarded_for: &[&str],
    ) -> std::net::IpAddr {
        networks::client_address(peer, forwarded_for, &self.settings.trusted_proxies)
    }

    /// Whether a browser at `ip` may sign in (to `app`, when known).
    pub fn network_allows(&self, ip: &str, app: Option<&App>) -> bool {
        networks::allowed(&self.settings.allowed_networks, ip)
            && app.is_none_or(|a| networks::allowed(&a.allowed_networks, ip))
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
