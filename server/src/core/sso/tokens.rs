//! The token endpoint's grants (authorization code with PKCE, refresh with
//! rotation), client authentication, and the endpoints that read tokens
//! back: userinfo, revocation (RFC 7009) and introspection (RFC 7662).
//!
//! Access tokens are RFC 9068 JWTs naming their grant (`sid`); a grant that
//! ended (sign-out, device locked, user suspended, code or refresh token
//! replayed) makes them inactive at once for userinfo and introspection,
//! and relying parties that verify them offline see them expire within the
//! access-token lifetime.
//!
//! What the endpoints answer is returned as typed values ([`TokenSet`],
//! [`UserInfo`], [`Introspection`]); their JSON bodies are built in
//! `api/https/oidc.rs`. The claims of the tokens signed here are token
//! content and stay here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{JwsHeader, REFRESH_TTL, constant_eq, device_fitness, random_hex};
use crate::core::auth::secret_hash;
use crate::core::sso::SignIn;
use crate::core::{CoreError, InternalError};
use crate::domain::app::App;
use crate::domain::audit::{Actor, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::ids::{ClientId, DeviceId, GrantId, SsoSessionId, UserId};
use crate::domain::sign_in::Grant;
use crate::domain::user::{User, UserStatus};

/// How a client authenticated at the token, revocation or introspection
/// endpoint, as the HTTP layer read it.
#[derive(Debug, Clone, Default)]
pub struct ClientAuth {
    pub client_id: Option<String>,
    pub secret: Option<String>,
    /// Both an Authorization header and form credentials were sent.
    pub conflicting: bool,
}

/// An OAuth 2.0 error response (RFC 6749 §5.2).
#[derive(Debug)]
pub enum TokenError {
    InvalidRequest(&'static str),
    InvalidClient,
    InvalidGrant(&'static str),
    UnsupportedGrantType,
    InvalidToken,
    Internal(CoreError),
}

impl From<CoreError> for TokenError {
    fn from(e: CoreError) -> Self {
        TokenError::Internal(e)
    }
}

impl From<crate::store::StoreError> for TokenError {
    fn from(e: crate::store::StoreError) -> Self {
        TokenError::Internal(e.into())
    }
}

/// A successful token response.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: String,
    pub expires_in: i64,
    /// Only when the app may hold refresh tokens and asked for
    /// `offline_access`.
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub scope: String,
}

/// The claims about the user that the granted scope allows (OIDC Core
/// §5.4), as the ID token and `/userinfo` carry them; each is absent when
/// the scope does not ask for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserClaims {
    /// `email` scope: the address.
    pub email: Option<String>,
    /// `email` scope: whether the address is verified (always: addresses
    /// are set by an admin, not self-asserted).
    pub email_verified: Option<bool>,
    /// `profile` scope: the display name.
    pub name: Option<String>,
    /// `profile` scope: the user's language, if they chose one.
    pub locale: Option<String>,
    /// `groups` scope (Latchkey's own claim): the user's group names.
    pub groups: Option<Vec<String>>,
}

/// What `/userinfo` answers for a live access token (OIDC Core §5.3.2):
/// the subject and the claims the token's scope allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub sub: UserId,
    pub claims: UserClaims,
}

/// What introspection found out about a token (RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspection {
    /// Unknown, expired, revoked, used, or another client's: nothing more
    /// is said about it.
    Inactive,
    /// A live token of the asking client.
    Active(ActiveToken),
}

/// Which of our tokens an active introspected token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectedKind {
    /// A refresh token.
    Refresh,
    /// An access token (a bearer token, RFC 6750).
    Access,
}

/// An active token as introspection describes it (RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveToken {
    pub kind: IntrospectedKind,
    /// The client the token was issued to.
    pub client_id: ClientId,
    /// The user the token is about.
    pub sub: UserId,
    pub scope: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// When the token was issued (access tokens, from their `iat`).
    pub issued_at: Option<DateTime<Utc>>,
    pub issuer: String,
    /// The audience (access tokens: the client).
    pub audience: Option<ClientId>,
    /// The managed device that confirmed the sign-in, if one did.
    pub device_id: Option<DeviceId>,
}

/// The claims of an access token this server signs (RFC 9068 §2.2, with
/// `sid` naming the grant). Members are in the order of their names, the
/// order of a JSON object with sorted keys, as tokens have always been
/// written.
#[derive(Debug, Serialize)]
struct AccessTokenClaims<'a> {
    acr: &'a str,
    amr: Vec<&'a str>,
    aud: &'a str,
    auth_time: i64,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
    exp: i64,
    iat: i64,
    iss: &'a str,
    jti: String,
    scope: &'a str,
    sid: &'a str,
    sub: &'a str,
}

/// The claims of an ID token this server signs (OIDC Core §2, §5.1, and
/// Latchkey's `device_id` and `groups`), in the order of their names like
/// [`AccessTokenClaims`]; the user's claims are those the scope allows.
#[derive(Debug, Serialize)]
struct IdTokenClaims<'a> {
    acr: &'a str,
    amr: Vec<&'a str>,
    aud: &'a str,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<&'a [String]>,
    iat: i64,
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    locale: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    sid: &'a str,
    sub: &'a str,
}

/// The claims of one of our access tokens that reading it back relies on.
#[derive(Debug, Deserialize)]
struct AccessClaims {
    iss: String,
    sub: String,
    client_id: String,
    exp: i64,
    iat: i64,
    sid: String,
    scope: String,
}

/// The claims of an ID token that a logout's `id_token_hint` is read for.
#[derive(Debug, Deserialize)]
struct HintClaims {
    iss: Option<String>,
    aud: Option<String>,
    sid: Option<String>,
    sub: Option<String>,
}

/// The header of a compact JWS `token`, if it has one that reads as JSON.
fn jws_header(token: &str) -> Option<JwsHeader> {
    token
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice::<JwsHeader>(&h).ok())
}

fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split_whitespace().any(|s| s == wanted)
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let shape = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    shape
        && constant_eq(
            &URL_SAFE_NO_PAD.encode(latchkey_certs::sha256(verifier.as_bytes())),
            challenge,
        )
}

impl SignIn {
    /// Authenticates a client: a confidential client by its secret (basic
    /// or post), a public client by its id alone.
    pub async fn authenticate_client(&self, auth: &ClientAuth) -> Result<App, TokenError> {
        if auth.conflicting {
            return Err(TokenError::InvalidRequest(
                "use one client authentication method, not several",
            ));
        }
        let client_id = auth
            .client_id
            .as_deref()
            .and_then(ClientId::parse)
            .ok_or(TokenError::InvalidClient)?;
        let (app, stored_hash) = self
            .store
            .app_by_client_id(&client_id)
            .await?
            .ok_or(TokenError::InvalidClient)?;
        match (app.public, &auth.secret, stored_hash) {
            (true, None, _) => Ok(app),
            (false, Some(secret), Some(hash))
                if secret.len() <= 256 && constant_eq(&secret_hash(secret), &hash) =>
            {
                Ok(app)
            }
            _ => Err(TokenError::InvalidClient),
        }
    }

    /// The authorization-code grant. A code works once; presenting it again
    /// ends the grant, so the tokens the first use issued stop working.
    pub async fn exchange_code(
        &self,
        auth: &ClientAuth,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<TokenSet, TokenError> {
        let app = self.authenticate_client(auth).await?;
        let (grant, user) = self
            .redeem_code(&app, code, redirect_uri, code_verifier, now)
            .await?;
        self.issue_tokens(&app, &grant, &user, now).await
    }

    /// Uses `app`'s authorization code once, with the checks RFC 6749
    /// §4.1.3 and RFC 7636 §4.6 ask for: the grant and its user.
    pub(super) async fn redeem_code(
        &self,
        app: &App,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(Grant, User), TokenError> {
        if code.len() > 256 {
            return Err(TokenError::InvalidGrant("unknown authorization code"));
        }
        let grant = self
            .store
            .grant_by_code_hash(&secret_hash(code))
            .await?
            .filter(|g| g.client_id == app.client_id)
            .ok_or(TokenError::InvalidGrant("unknown authorization code"))?;
        if !self.store.use_code(&grant.id, now).await? {
            self.store
                .end_grant(&grant.id, "authorization code reused", now)
                .await?;
            return Err(TokenError::InvalidGrant(
                "the authorization code was used before; the tokens it gave are revoked",
            ));
        }
        if grant.code_expires_at <= now || grant.ended_at.is_some() {
            return Err(TokenError::InvalidGrant(
                "the authorization code has expired",
            ));
        }
        if redirect_uri != Some(grant.redirect_uri.as_str()) {
            return Err(TokenError::InvalidGrant(
                "redirect_uri does not match the authorization request",
            ));
        }
        match (&grant.code_challenge, code_verifier) {
            (Some(challenge), Some(verifier)) if pkce_matches(verifier, challenge) => {}
            (None, None) => {}
            (Some(_), _) => {
                return Err(TokenError::InvalidGrant(
                    "code_verifier does not match (PKCE)",
                ));
            }
            (None, Some(_)) => {
                return Err(TokenError::InvalidGrant(
                    "code_verifier sent for a request without code_challenge",
                ));
            }
        }
        let user = self.grant_still_valid(&grant, now).await?;
        Ok((grant, user))
    }

    /// The refresh-token grant: a refresh token works once and is replaced;
    /// presenting a used one ends the whole session (it was copied).
    pub async fn refresh_tokens(
        &self,
        auth: &ClientAuth,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenSet, TokenError> {
        let app = self.authenticate_client(auth).await?;
        let hash = secret_hash(refresh_token);
        let record = self
            .store
            .refresh_token(&hash)
            .await?
            .ok_or(TokenError::InvalidGrant("unknown refresh token"))?;
        let grant = self
            .store
            .grant(&record.grant_id)
            .await?
            .filter(|g| g.client_id == app.client_id)
            .ok_or(TokenError::InvalidGrant("unknown refresh token"))?;
        if record.used_at.is_some() || !self.store.use_refresh_token(&hash, now).await? {
            self.store
                .end_session(&grant.session_id, "refresh token reused", now)
                .await?;
            self.audit_sso(
                &grant,
                AuditAction::SsoRefreshReuse,
                "a used refresh token was presented again; the session was ended",
                now,
            )
            .await?;
            return Err(TokenError::InvalidGrant(
                "the refresh token was used before; the session has been ended",
            ));
        }
        if record.expires_at <= now {
            return Err(TokenError::InvalidGrant("the refresh token has expired"));
        }
        if grant.created_at + app.refresh_lifetime <= now {
            self.store
                .end_grant(&grant.id, "refresh lifetime reached", now)
                .await?;
            return Err(TokenError::InvalidGrant(
                "the sign-in is older than the app's refresh token lifetime; sign in again",
            ));
        }
        let user = self.grant_still_valid(&grant, now).await?;
        self.issue_tokens(&app, &grant, &user, now).await
    }

    async fn audit_sso(
        &self,
        grant: &Grant,
        action: AuditAction,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        self.audit
            .record(AuditEntry {
                at: now,
                actor: Actor::Client(grant.client_id.clone()),
                action,
                target: grant.user_id.to_string(),
                outcome: AuditOutcome::Denied,
                detail: detail.to_owned(),
            })
            .await
    }

    /// Re-evaluates a grant: live, its user active, its device (if a device
    /// confirmed it) still active, bound to the user and compliant. A grant
    /// that fails is ended.
    async fn grant_still_valid(
        &self,
        grant: &Grant,
        now: DateTime<Utc>,
    ) -> Result<User, TokenError> {
        if grant.ended_at.is_some() {
            return Err(TokenError::InvalidGrant("the grant has been revoked"));
        }
        let user = self
            .store
            .user_by_id(&grant.user_id)
            .await?
            .filter(|u| u.status == UserStatus::Active);
        let Some(user) = user else {
            self.store
                .end_grant(&grant.id, "user not active", now)
                .await?;
            return Err(TokenError::InvalidGrant("the user can no longer sign in"));
        };
        if let Some(device) = &grant.device_id {
            let view = self.policies.compliance_of(device, now).await?;
            if let Some(failure) = device_fitness(&view.device, &view.compliance, &user.email) {
                self.store
                    .end_grant(&grant.id, &format!("device check: {}", failure.code()), now)
                    .await?;
                return Err(TokenError::InvalidGrant(
                    "the device that confirmed this sign-in no longer passes its checks",
                ));
            }
        }
        Ok(user)
    }

    async fn issue_tokens(
        &self,
        app: &App,
        grant: &Grant,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<TokenSet, TokenError> {
        let ttl = self.settings.access_token_ttl;
        let exp = (now + ttl).timestamp();
        let issuer = self.issuer();
        let amr = || grant.amr.iter().map(|m| m.as_str()).collect::<Vec<_>>();
        let device_id = grant.device_id.as_ref().map(DeviceId::as_str);
        let access = AccessTokenClaims {
            acr: grant.acr.as_str(),
            amr: amr(),
            aud: app.client_id.as_str(),
            auth_time: grant.auth_time.timestamp(),
            client_id: app.client_id.as_str(),
            device_id,
            exp,
            iat: now.timestamp(),
            iss: issuer,
            jti: random_hex::<16>()?,
            scope: &grant.scope,
            sid: grant.id.as_str(),
            sub: user.id.as_str(),
        };
        let claims = user_claims(user, &grant.scope);
        let id = IdTokenClaims {
            acr: grant.acr.as_str(),
            amr: amr(),
            aud: app.client_id.as_str(),
            auth_time: grant.auth_time.timestamp(),
            device_id,
            email: claims.email.as_deref(),
            email_verified: claims.email_verified,
            exp,
            groups: claims.groups.as_deref(),
            iat: now.timestamp(),
            iss: issuer,
            locale: claims.locale.as_deref(),
            name: claims.name.as_deref(),
            nonce: grant.nonce.as_deref(),
            sid: grant.session_id.as_str(),
            sub: user.id.as_str(),
        };
        let access = serde_json::to_vec(&access)
            .map_err(|e| CoreError::Internal(InternalError::Claims(e)))?;
        let access_token = self.signing_keys.sign_jws("at+jwt", &access, now).await?;
        let id_token = if has_scope(&grant.scope, "openid") {
            let id = serde_json::to_vec(&id)
                .map_err(|e| CoreError::Internal(InternalError::Claims(e)))?;
            Some(self.signing_keys.sign_jws("JWT", &id, now).await?)
        } else {
            None
        };
        // Refresh tokens only for an app allowed to hold them that asked
        // for them, and never past the app's absolute lifetime.
        let refresh_token = if app.offline_access && has_scope(&grant.scope, "offline_access") {
            let token = format!("lkr_{}", random_hex::<32>()?);
            let expires = (now + REFRESH_TTL).min(grant.created_at + app.refresh_lifetime);
            self.store
                .insert_refresh_token(&secret_hash(&token), &grant.id, now, expires)
                .await?;
            Some(token)
        } else {
            None
        };
        Ok(TokenSet {
            access_token,
            expires_in: ttl.num_seconds(),
            refresh_token,
            id_token,
            scope: grant.scope.clone(),
        })
    }

    /// Verifies one of our access tokens and finds its live grant.
    async fn access_grant(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(AccessClaims, Grant)>, CoreError> {
        let Some(header) = jws_header(token) else {
            return Ok(None);
        };
        if header.typ.as_deref() != Some("at+jwt") {
            return Ok(None);
        }
        let kid = header.kid.as_deref().unwrap_or("");
        let keys = self.signing_keys.jwks(now).await?;
        let Some(key) = keys.iter().find(|k| k.kid == kid) else {
            return Ok(None);
        };
        let Some((_, payload)) = latchkey_certs::jose::verify_compact(key, token) else {
            return Ok(None);
        };
        let Ok(claims) = serde_json::from_slice::<AccessClaims>(&payload) else {
            return Ok(None);
        };
        if claims.iss != self.issuer() || claims.exp <= now.timestamp() {
            return Ok(None);
        }
        let Some(grant_id) = GrantId::parse(&claims.sid) else {
            return Ok(None);
        };
        let Some(grant) = self.store.grant(&grant_id).await? else {
            return Ok(None);
        };
        if grant.ended_at.is_some() || grant.user_id.as_str() != claims.sub {
            return Ok(None);
        }
        Ok(Some((claims, grant)))
    }

    /// `/userinfo`: the user's claims for a live access token, after the
    /// same checks as a refresh: the user is active, and the device that
    /// confirmed the sign-in (if one did) is still fit; a grant that fails
    /// them is ended.
    pub async fn userinfo(&self, token: &str, now: DateTime<Utc>) -> Result<UserInfo, TokenError> {
        let (claims, grant) = self
            .access_grant(token, now)
            .await?
            .ok_or(TokenError::InvalidToken)?;
        let user = match self.grant_still_valid(&grant, now).await {
            Ok(user) => user,
            Err(TokenError::Internal(e)) => return Err(TokenError::Internal(e)),
            Err(_) => return Err(TokenError::InvalidToken),
        };
        Ok(UserInfo {
            claims: user_claims(&user, &claims.scope),
            sub: user.id,
        })
    }

    /// RFC 7009: ends the grant behind a refresh or access token of this
    /// client. Unknown tokens are not an error.
    pub async fn revoke_token(
        &self,
        auth: &ClientAuth,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(), TokenError> {
        let app = self.authenticate_client(auth).await?;
        let grant = match self.store.refresh_token(&secret_hash(token)).await? {
            Some(record) => self.store.grant(&record.grant_id).await?,
            None => self.access_grant(token, now).await?.map(|(_, g)| g),
        };
        if let Some(grant) = grant.filter(|g| g.client_id == app.client_id) {
            self.store
                .end_grant(&grant.id, "revoked by the client", now)
                .await?;
        }
        Ok(())
    }

    /// RFC 7662: whether a token of this client is active, and its claims.
    /// Only a confidential client may ask (RFC 7662 §2.1: the endpoint must
    /// require authentication, which a public client cannot give).
    pub async fn introspect(
        &self,
        auth: &ClientAuth,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Introspection, TokenError> {
        let app = self.authenticate_client(auth).await?;
        if app.public {
            return Err(TokenError::InvalidClient);
        }
        let inactive = Introspection::Inactive;
        if let Some(record) = self.store.refresh_token(&secret_hash(token)).await? {
            let Some(grant) = self
                .store
                .grant(&record.grant_id)
                .await?
                .filter(|g| g.client_id == app.client_id)
            else {
                return Ok(inactive);
            };
            let active =
                record.used_at.is_none() && record.expires_at > now && grant.ended_at.is_none();
            if !active {
                return Ok(inactive);
            }
            return Ok(Introspection::Active(ActiveToken {
                kind: IntrospectedKind::Refresh,
                client_id: app.client_id,
                sub: grant.user_id,
                scope: grant.scope,
                expires_at: record.expires_at,
                issued_at: None,
                issuer: self.issuer().to_owned(),
                audience: None,
                device_id: grant.device_id,
            }));
        }
        let Some((claims, grant)) = self.access_grant(token, now).await? else {
            return Ok(inactive);
        };
        if claims.client_id != app.client_id.as_str() {
            return Ok(inactive);
        }
        // `access_grant` found the token's `sub` to be its grant's user.
        let (Some(expires_at), Some(issued_at)) = (
            DateTime::from_timestamp(claims.exp, 0),
            DateTime::from_timestamp(claims.iat, 0),
        ) else {
            return Ok(inactive);
        };
        Ok(Introspection::Active(ActiveToken {
            kind: IntrospectedKind::Access,
            client_id: app.client_id.clone(),
            sub: grant.user_id,
            scope: claims.scope,
            expires_at,
            issued_at: Some(issued_at),
            issuer: claims.iss,
            audience: Some(app.client_id),
            device_id: grant.device_id,
        }))
    }
}

/// What an `id_token_hint` at logout names.
#[derive(Debug, Clone)]
pub struct IdTokenHint {
    pub client_id: String,
    pub session_id: SsoSessionId,
    pub user_id: UserId,
}

impl SignIn {
    /// Reads an ID token we issued (its expiry does not matter here).
    pub async fn id_token_hint(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdTokenHint>, CoreError> {
        // Only an ID token (`typ` JWT), never an access token (`at+jwt`).
        let Some(kid) = jws_header(token)
            .filter(|h| h.typ.as_deref() == Some("JWT"))
            .and_then(|h| h.kid)
        else {
            return Ok(None);
        };
        let keys = self.signing_keys.jwks(now).await?;
        let Some((_, payload)) = keys
            .iter()
            .find(|k| k.kid == kid)
            .and_then(|k| latchkey_certs::jose::verify_compact(k, token))
        else {
            return Ok(None);
        };
        let Ok(claims) = serde_json::from_slice::<HintClaims>(&payload) else {
            return Ok(None);
        };
        if claims.iss.as_deref() != Some(self.issuer()) {
            return Ok(None);
        }
        let (Some(client_id), Some(session_id), Some(sub)) = (claims.aud, claims.sid, claims.sub)
        else {
            return Ok(None);
        };
        // Our ID tokens name a session and a user by their ids; a token
        // that does not names neither.
        let (Some(session_id), Some(user_id)) =
            (SsoSessionId::parse(&session_id), UserId::parse(&sub))
        else {
            return Ok(None);
        };
        Ok(Some(IdTokenHint {
            client_id,
            session_id,
            user_id,
        }))
    }

    /// `uri` if it is one of the client's registered sign-out addresses
    /// (`post_logout_redirect_uris`, kept apart from its sign-in redirect
    /// URIs: the only addresses a sign-out may send the browser to).
    pub async fn post_logout_redirect(
        &self,
        client_id: &str,
        uri: &str,
    ) -> Result<Option<String>, CoreError> {
        let Some(client_id) = ClientId::parse(client_id) else {
            return Ok(None);
        };
        Ok(self
            .store
            .app_by_client_id(&client_id)
            .await?
            .filter(|(app, _)| app.post_logout_redirect_uris.iter().any(|r| r == uri))
            .map(|_| uri.to_owned()))
    }
}

/// The user's claims the granted scope allows.
fn user_claims(user: &User, scope: &str) -> UserClaims {
    let email = has_scope(scope, "email");
    let profile = has_scope(scope, "profile");
    UserClaims {
        email: email.then(|| user.email.clone()),
        // Emails are set by an admin, not self-asserted.
        email_verified: email.then_some(true),
        name: profile.then(|| user.name.clone()),
        locale: user.locale.clone().filter(|_| profile),
        groups: has_scope(scope, "groups").then(|| user.groups.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token claims are written as a JSON object with sorted keys, with
    /// absent claims left out.
    #[test]
    fn token_claims_keep_their_written_form() -> Result<(), serde_json::Error> {
        let groups = vec!["staff".to_owned(), "営業部".to_owned()];
        let full = IdTokenClaims {
            acr: "urn:latchkey:acr:device-bound",
            amr: vec!["pwd", "swk"],
            aud: "c1",
            auth_time: 1,
            device_id: Some("d1"),
            email: Some("a@example.com"),
            email_verified: Some(true),
            exp: 3,
            groups: Some(&groups),
            iat: 2,
            iss: "https://id.example.com",
            locale: Some("ja"),
            name: Some("Alice"),
            nonce: Some("n"),
            sid: "s1",
            sub: "u1",
        };
        assert_eq!(
            serde_json::to_string(&full)?,
            r#"{"acr":"urn:latchkey:acr:device-bound","amr":["pwd","swk"],"aud":"c1","auth_time":1,"device_id":"d1","email":"a@example.com","email_verified":true,"exp":3,"groups":["staff","営業部"],"iat":2,"iss":"https://id.example.com","locale":"ja","name":"Alice","nonce":"n","sid":"s1","sub":"u1"}"#
        );
        let bare = IdTokenClaims {
            device_id: None,
            email: None,
            email_verified: None,
            groups: None,
            locale: None,
            name: None,
            nonce: None,
            ..full
        };
        assert_eq!(
            serde_json::to_string(&bare)?,
            r#"{"acr":"urn:latchkey:acr:device-bound","amr":["pwd","swk"],"aud":"c1","auth_time":1,"exp":3,"iat":2,"iss":"https://id.example.com","sid":"s1","sub":"u1"}"#
        );
        let access = AccessTokenClaims {
            acr: "urn:latchkey:acr:pwd",
            amr: vec!["pwd"],
            aud: "c1",
            auth_time: 1,
            client_id: "c1",
            device_id: Some("d1"),
            exp: 3,
            iat: 2,
            iss: "https://id.example.com",
            jti: "j".into(),
            scope: "openid email",
            sid: "g1",
            sub: "u1",
        };
        assert_eq!(
            serde_json::to_string(&access)?,
            r#"{"acr":"urn:latchkey:acr:pwd","amr":["pwd"],"aud":"c1","auth_time":1,"client_id":"c1","device_id":"d1","exp":3,"iat":2,"iss":"https://id.example.com","jti":"j","scope":"openid email","sid":"g1","sub":"u1"}"#
        );
        let access = AccessTokenClaims {
            device_id: None,
            ..access
        };
        assert!(!serde_json::to_string(&access)?.contains("device_id"));
        Ok(())
    }

    #[test]
    fn pkce_follows_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        assert!(!pkce_matches("short", challenge));
    }
}
