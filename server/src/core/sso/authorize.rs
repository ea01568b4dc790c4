//! `/authorize` (RFC 6749 §4.1.1, OIDC Core §3.1.2): checking a request,
//! sealing the checked request into the handle the sign-in pages carry,
//! and finding the open request a page names.
//!
//! A request is written to the store only once the user has submitted a
//! form (`persist_request`, called by the sign-in steps); until then it
//! lives in its handle, sealed with the server's key, and its store key
//! is the handle's digest ([`request_key`]). A page may also carry the key
//! itself as the handle.
//!
//! This file does not decide what the browser sees next (`steps.rs`) and
//! does not hold sessions (`sessions.rs`).

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::{KNOWN_SCOPES, MAX_PARAM, REQUEST_TTL};
use crate::core::sso::SignIn;
use crate::core::{CoreError, InternalError};
use crate::domain::app::App;
use crate::domain::ids::{AuthRequestId, ClientId, SsoSessionId};
use crate::domain::sign_in::AuthRequest;
use crate::domain::sign_in::SsoSession;

/// The key id a sealed authorization request is bound to.
const REQUEST_KID: &str = "latchkey-authorize-request";

/// The longest request handle a page may carry.
const MAX_HANDLE: usize = 16 * 1024;

/// The store key of a request handle: a sealed handle's digest, or a key
/// itself; `None` for a short handle that is no key.
pub fn request_key(handle: &str) -> Option<AuthRequestId> {
    if handle.len() <= 32 {
        return AuthRequestId::parse(handle);
    }
    Some(sealed_handle_key(handle))
}

/// The store key of a sealed handle: its digest.
fn sealed_handle_key(handle: &str) -> AuthRequestId {
    AuthRequestId::from_digest(&latchkey_certs::sha256(handle.as_bytes()))
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

/// The parameters of an `/authorize` request as the browser sent them,
/// each absent or its text; the HTTP layer reads them from the query
/// string (`api/https/authorize.rs`), and nothing here is checked yet.
#[derive(Debug, Clone, Default)]
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

impl SignIn {
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
        let app = self
            .sign_in_app(&client_id)
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
        // The built-in client's sign-in enrolls a device as the user's: it
        // is always a sign-in made now, whatever the URL asks, never an
        // existing session reused.
        let first_party = self.is_first_party(&app);
        if first_party && prompt_none {
            return Err(refuse(
                "login_required",
                "this sign-in is always made with the password and second factor",
            ));
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
            prompt_login: first_party || prompts.contains(&"login"),
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
        let expires_at = now + REQUEST_TTL;
        let sealed = SealedRequest {
            session_id: session.id.to_string(),
            client_id: valid.app.client_id.to_string(),
            redirect_uri: valid.redirect_uri.clone(),
            scope: valid.scope.clone(),
            state: valid.state.clone(),
            nonce: valid.nonce.clone(),
            code_challenge: valid.code_challenge.clone(),
            prompt_login: valid.prompt_login,
            max_age: valid.max_age,
            created_at: now.timestamp_millis(),
            expires_at: expires_at.timestamp_millis(),
        };
        let json = serde_json::to_string(&sealed).map_err(InternalError::Seal)?;
        let handle = self.ca.token_keys().seal(REQUEST_KID, &json)?;
        Ok(AuthRequest {
            id: sealed_handle_key(&handle),
            handle,
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
            expires_at,
            finished_at: None,
        })
    }

    /// The request a sealed handle carries, if this server sealed it.
    fn unseal_request(&self, handle: &str) -> Option<AuthRequest> {
        let json = self.ca.token_keys().open(REQUEST_KID, handle).ok()?;
        let sealed: SealedRequest = serde_json::from_str(&json).ok()?;
        Some(AuthRequest {
            id: sealed_handle_key(handle),
            handle: handle.to_owned(),
            session_id: SsoSessionId::parse(&sealed.session_id)?,
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
    pub(super) async fn persist_request(&self, request: &AuthRequest) -> Result<(), CoreError> {
        self.store.insert_auth_request(request).await?;
        Ok(())
    }

    /// The request a page names, if it belongs to this session and is open.
    pub(super) async fn open_request(
        &self,
        session: &SsoSession,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(AuthRequest, App)>, CoreError> {
        if request_id.len() > MAX_HANDLE {
            return Ok(None);
        }
        let Some(key) = request_key(request_id) else {
            return Ok(None);
        };
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
        let Some(app) = self.sign_in_app(&request.client_id).await? else {
            return Ok(None);
        };
        Ok(Some((request, app)))
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A sealed handle's key is the first 32 hex digits of its SHA-256; a
    /// short handle is a key itself, or names nothing.
    #[test]
    fn request_keys_are_handle_digests() {
        let handle = "h".repeat(100);
        let digest = hex::encode(latchkey_certs::sha256(handle.as_bytes()));
        assert_eq!(
            request_key(&handle).map(|k| k.to_string()),
            digest.get(..32).map(str::to_owned)
        );
        let key = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            request_key(key).map(|k| k.to_string()).as_deref(),
            Some(key)
        );
        assert_eq!(request_key("not-a-key"), None);
        assert_eq!(request_key(""), None);
    }
}
