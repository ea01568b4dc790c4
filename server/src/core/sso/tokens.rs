//! The token endpoint's grants (authorization code with PKCE, refresh with
//! rotation), client authentication, and the endpoints that read tokens
//! back: userinfo, revocation (RFC 7009) and introspection (RFC 7662).
//!
//! Access tokens are RFC 9068 JWTs naming their grant (`sid`); a grant that
//! ended (sign-out, device locked, user suspended, code or refresh token
//! replayed) makes them inactive at once for userinfo and introspection,
//! and relying parties that verify them offline see them expire within the
//! access-token lifetime.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{REFRESH_TTL, constant_eq, device_fitness, random_hex};
use crate::core::CoreError;
use crate::core::auth::secret_hash;
use crate::core::sso::SignIn;
use crate::domain::app::App;
use crate::domain::audit::{Actor, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::ids::ClientId;
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

/// The claims `/userinfo` returns.
#[derive(Debug, Clone)]
pub struct UserInfo(pub Value);

/// RFC 7662 introspection response members.
#[derive(Debug, Clone)]
pub struct IntrospectedToken(pub Value);

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

/// Sets a member of a JSON object (a no-op on anything else).
pub fn put(value: &mut Value, key: &str, item: Value) {
    if let Value::Object(map) = value {
        map.insert(key.to_owned(), item);
    }
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
        self.issue_tokens(&app, &grant, &user, now).await
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
        let mut access = json!({
            "iss": issuer,
            "sub": user.id.as_str(),
            "aud": app.client_id.as_str(),
            "client_id": app.client_id.as_str(),
            "exp": exp,
            "iat": now.timestamp(),
            "auth_time": grant.auth_time.timestamp(),
            "jti": random_hex::<16>()?,
            "sid": grant.id,
            "scope": grant.scope,
            "amr": grant.amr.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "acr": grant.acr.as_str(),
        });
        let mut id = json!({
            "iss": issuer,
            "sub": user.id.as_str(),
            "aud": app.client_id.as_str(),
            "exp": exp,
            "iat": now.timestamp(),
            "auth_time": grant.auth_time.timestamp(),
            "amr": grant.amr.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "acr": grant.acr.as_str(),
            "sid": grant.session_id,
        });
        if let Some(nonce) = &grant.nonce {
            put(&mut id, "nonce", json!(nonce));
        }
        if let Some(device) = &grant.device_id {
            put(&mut id, "device_id", json!(device.as_str()));
            put(&mut access, "device_id", json!(device.as_str()));
        }
        if let Value::Object(claims) = user_claims(user, &grant.scope)
            && let Value::Object(id) = &mut id
        {
            id.extend(claims);
        }
        let access_token = self
            .signing_keys
            .sign_jws("at+jwt", access.to_string().as_bytes(), now)
            .await?;
        let id_token = if has_scope(&grant.scope, "openid") {
            Some(
                self.signing_keys
                    .sign_jws("JWT", id.to_string().as_bytes(), now)
                    .await?,
            )
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
        let Some(header) = token
            .split('.')
            .next()
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        else {
            return Ok(None);
        };
        if header.get("typ").and_then(Value::as_str) != Some("at+jwt") {
            return Ok(None);
        }
        let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
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
        let Some(grant) = self.store.grant(&claims.sid).await? else {
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
        let mut info = user_claims(&user, &claims.scope);
        put(&mut info, "sub", json!(user.id.as_str()));
        Ok(UserInfo(info))
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
    ) -> Result<IntrospectedToken, TokenError> {
        let app = self.authenticate_client(auth).await?;
        if app.public {
            return Err(TokenError::InvalidClient);
        }
        let inactive = IntrospectedToken(json!({ "active": false }));
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
            let mut out = json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": app.client_id.as_str(),
                "sub": grant.user_id.as_str(),
                "scope": grant.scope,
                "exp": record.expires_at.timestamp(),
                "iss": self.issuer(),
            });
            if let Some(device) = &grant.device_id {
                put(&mut out, "device_id", json!(device.as_str()));
            }
            return Ok(IntrospectedToken(out));
        }
        let Some((claims, grant)) = self.access_grant(token, now).await? else {
            return Ok(inactive);
        };
        if claims.client_id != app.client_id.as_str() {
            return Ok(inactive);
        }
        let mut out = json!({
            "active": true,
            "token_type": "Bearer",
            "client_id": claims.client_id,
            "sub": claims.sub,
            "scope": claims.scope,
            "exp": claims.exp,
            "iat": claims.iat,
            "iss": claims.iss,
            "aud": app.client_id.as_str(),
        });
        if let Some(device) = &grant.device_id {
            put(&mut out, "device_id", json!(device.as_str()));
        }
        Ok(IntrospectedToken(out))
    }
}

/// What an `id_token_hint` at logout names.
#[derive(Debug, Clone)]
pub struct IdTokenHint {
    pub client_id: String,
    pub session_id: String,
    pub user_id: crate::domain::ids::UserId,
}

impl SignIn {
    /// Reads an ID token we issued (its expiry does not matter here).
    pub async fn id_token_hint(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdTokenHint>, CoreError> {
        let header = token
            .split('.')
            .next()
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok());
        // Only an ID token (`typ` JWT), never an access token (`at+jwt`).
        let Some(kid) = header
            .filter(|h| h.get("typ").and_then(Value::as_str) == Some("JWT"))
            .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_owned))
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
        let Ok(claims) = serde_json::from_slice::<Value>(&payload) else {
            return Ok(None);
        };
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer()) {
            return Ok(None);
        }
        let field = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(client_id), Some(session_id), Some(sub)) =
            (field("aud"), field("sid"), field("sub"))
        else {
            return Ok(None);
        };
        Ok(
            crate::domain::ids::UserId::parse(&sub).map(|user_id| IdTokenHint {
                client_id,
                session_id,
                user_id,
            }),
        )
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
fn user_claims(user: &User, scope: &str) -> Value {
    let mut claims = json!({});
    if has_scope(scope, "email") {
        put(&mut claims, "email", json!(user.email));
        // Emails are set by an admin, not self-asserted.
        put(&mut claims, "email_verified", json!(true));
    }
    if has_scope(scope, "profile") {
        put(&mut claims, "name", json!(user.name));
        if let Some(locale) = &user.locale {
            put(&mut claims, "locale", json!(locale));
        }
    }
    if has_scope(scope, "groups") {
        put(&mut claims, "groups", json!(user.groups));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

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
