//! The relying parties' endpoints: discovery, token, userinfo, revocation
//! and introspection, and every JSON body they answer with: the core
//! returns typed values ([`TokenSet`], [`UserInfo`], [`Introspection`])
//! and this file names their members. Errors follow RFC 6749 §5.2 and
//! RFC 6750 §3.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::warn;

use super::Web;
use crate::core::sso::{
    ActiveToken, ClientAuth, IntrospectedKind, Introspection, TokenError, TokenSet, UserInfo,
};
use crate::domain::sign_in::Acr;

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn token_error(error: TokenError, basic: bool) -> Response {
    let (status, code, description) = match error {
        TokenError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
        TokenError::InvalidClient => (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        ),
        TokenError::InvalidGrant(d) => (StatusCode::BAD_REQUEST, "invalid_grant", d),
        TokenError::UnsupportedGrantType => (
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        ),
        TokenError::InvalidToken => (
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is not valid",
        ),
        TokenError::Internal(e) => {
            warn!(error = %e, "token endpoint failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again later",
            )
        }
    };
    let mut response = json_response(
        status,
        &json!({ "error": code, "error_description": description }),
    );
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if code == "invalid_token" {
            r#"Bearer error="invalid_token""#
        } else if basic {
            r#"Basic realm="latchkey""#
        } else {
            ""
        };
        if !challenge.is_empty() {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
    }
    response
}

/// `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0,
/// RFC 8414).
pub async fn discovery(State(web): State<Web>) -> Response {
    let issuer = web.core.sign_in.issuer();
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid", "profile", "email", "groups", "offline_access"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified",
            "name", "locale", "groups", "amr", "acr", "sid", "device_id"
        ],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login"],
        "acr_values_supported": Acr::ALL.map(Acr::as_str),
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "ui_locales_supported": ["en", "ja"],
    });
    let mut response = json_response(StatusCode::OK, &body);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token: Option<String>,
}

fn form_value(text: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("v={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each
/// part form-encoded) or the form.
fn client_auth(headers: &HeaderMap, form: &TokenForm) -> (ClientAuth, bool) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            Some((form_value(id)?, form_value(secret)?))
        });
    match basic {
        Some((id, secret)) => (
            ClientAuth {
                conflicting: form.client_secret.is_some()
                    || form.client_id.as_ref().is_some_and(|c| *c != id),
                client_id: Some(id),
                secret: Some(secret),
            },
            true,
        ),
        None => (
            ClientAuth {
                client_id: form.client_id.clone(),
                secret: form.client_secret.clone(),
                conflicting: false,
            },
            false,
        ),
    }
}

/// A successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
fn token_body(set: TokenSet) -> Value {
    let mut body = Map::new();
    body.insert("access_token".into(), json!(set.access_token));
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("expires_in".into(), json!(set.expires_in));
    body.insert("scope".into(), json!(set.scope));
    if let Some(refresh_token) = set.refresh_token {
        body.insert("refresh_token".into(), json!(refresh_token));
    }
    if let Some(id_token) = set.id_token {
        body.insert("id_token".into(), json!(id_token));
    }
    Value::Object(body)
}

/// A userinfo response (OIDC Core §5.3.2): `sub` and the claims the
/// token's scope allows, named as in OIDC Core §5.1 (`groups` is ours).
fn userinfo_body(info: UserInfo) -> Value {
    let claims = info.claims;
    let mut body = Map::new();
    body.insert("sub".into(), json!(info.sub.as_str()));
    if let Some(email) = claims.email {
        body.insert("email".into(), json!(email));
    }
    if let Some(verified) = claims.email_verified {
        body.insert("email_verified".into(), json!(verified));
    }
    if let Some(name) = claims.name {
        body.insert("name".into(), json!(name));
    }
    if let Some(locale) = claims.locale {
        body.insert("locale".into(), json!(locale));
    }
    if let Some(groups) = claims.groups {
        body.insert("groups".into(), json!(groups));
    }
    Value::Object(body)
}

/// An introspection response (RFC 7662 §2.2). An inactive token is
/// `{"active": false}` and nothing else; a refresh token's `token_type`
/// is `refresh_token`, an access token's `Bearer` (RFC 6750).
fn introspection_body(introspection: Introspection) -> Value {
    let token: ActiveToken = match introspection {
        Introspection::Inactive => return json!({ "active": false }),
        Introspection::Active(token) => token,
    };
    let token_type = match token.kind {
        IntrospectedKind::Refresh => "refresh_token",
        IntrospectedKind::Access => "Bearer",
    };
    let mut body = Map::new();
    body.insert("active".into(), json!(true));
    body.insert("token_type".into(), json!(token_type));
    body.insert("client_id".into(), json!(token.client_id.as_str()));
    body.insert("sub".into(), json!(token.sub.as_str()));
    body.insert("scope".into(), json!(token.scope));
    body.insert("exp".into(), json!(token.expires_at.timestamp()));
    if let Some(issued_at) = token.issued_at {
        body.insert("iat".into(), json!(issued_at.timestamp()));
    }
    body.insert("iss".into(), json!(token.issuer));
    if let Some(audience) = token.audience {
        body.insert("aud".into(), json!(audience.as_str()));
    }
    if let Some(device) = token.device_id {
        body.insert("device_id".into(), json!(device.as_str()));
    }
    Value::Object(body)
}

/// `POST /token`.
pub async fn token(
    State(web): State<Web>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return token_error(
            TokenError::InvalidRequest("send an application/x-www-form-urlencoded body"),
            false,
        );
    };
    let (auth, basic) = client_auth(&headers, &form);
    let now = Utc::now();
    let result = match form.grant_type.as_deref() {
        Some("authorization_code") => match &form.code {
            Some(code) => {
                web.core
                    .sign_in
                    .exchange_code(
                        &auth,
                        code,
                        form.redirect_uri.as_deref(),
                        form.code_verifier.as_deref(),
                        now,
                    )
                    .await
            }
            None => Err(TokenError::InvalidRequest("code is missing")),
        },
        Some("refresh_token") => match &form.refresh_token {
            Some(token) => web.core.sign_in.refresh_tokens(&auth, token, now).await,
            None => Err(TokenError::InvalidRequest("refresh_token is missing")),
        },
        Some(_) => Err(TokenError::UnsupportedGrantType),
        None => Err(TokenError::InvalidRequest("grant_type is missing")),
    };
    match result {
        Ok(set) => json_response(StatusCode::OK, &token_body(set)),
        Err(e) => token_error(e, basic),
    }
}

/// `GET|POST /userinfo` with `Authorization: Bearer`.
pub async fn userinfo(State(web): State<Web>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return token_error(TokenError::InvalidToken, false);
    };
    match web.core.sign_in.userinfo(token, Utc::now()).await {
        Ok(info) => json_response(StatusCode::OK, &userinfo_body(info)),
        Err(e) => token_error(e, false),
    }
}

/// The client credentials and the `token` of a revocation or
/// introspection request, or the error to answer with.
fn token_form(
    headers: &HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Result<(ClientAuth, bool, String), (TokenError, bool)> {
    let Ok(Form(form)) = form else {
        return Err((TokenError::InvalidRequest("send a form body"), false));
    };
    let (auth, basic) = client_auth(headers, &form);
    match form.token {
        Some(token) => Ok((auth, basic, token)),
        None => Err((TokenError::InvalidRequest("token is missing"), basic)),
    }
}

/// `POST /revoke` (RFC 7009): 200 whether or not the token was known.
pub async fn revoke(
    State(web): State<Web>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (auth, basic, token) = match token_form(&headers, form) {
        Ok(parts) => parts,
        Err((e, basic)) => return token_error(e, basic),
    };
    match web
        .core
        .sign_in
        .revoke_token(&auth, &token, Utc::now())
        .await
    {
        Ok(()) => json_response(StatusCode::OK, &json!({})),
        Err(e) => token_error(e, basic),
    }
}

/// `POST /introspect` (RFC 7662).
pub async fn introspect(
    State(web): State<Web>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (auth, basic, token) = match token_form(&headers, form) {
        Ok(parts) => parts,
        Err((e, basic)) => return token_error(e, basic),
    };
    match web.core.sign_in.introspect(&auth, &token, Utc::now()).await {
        Ok(result) => json_response(StatusCode::OK, &introspection_body(result)),
        Err(e) => token_error(e, basic),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::core::sso::UserClaims;
    use crate::domain::ids::{ClientId, DeviceId, UserId};

    const USER: &str = "0123456789abcdef0123456789abcdef";
    const CLIENT: &str = "fedcba9876543210fedcba9876543210";
    const DEVICE: &str = "00112233445566778899aabbccddeeff";

    fn ids() -> Option<(UserId, ClientId, DeviceId)> {
        Some((
            UserId::parse(USER)?,
            ClientId::parse(CLIENT)?,
            DeviceId::parse(DEVICE)?,
        ))
    }

    #[test]
    fn userinfo_names_the_scopes_claims() {
        let (sub, _, _) = ids().expect("canonical ids");
        let all = UserInfo {
            sub: sub.clone(),
            claims: UserClaims {
                email: Some("a@example.com".into()),
                email_verified: Some(true),
                name: Some("Alice".into()),
                locale: Some("ja".into()),
                groups: Some(vec!["staff".into(), "営業部".into()]),
            },
        };
        assert_eq!(
            userinfo_body(all).to_string(),
            format!(
                r#"{{"email":"a@example.com","email_verified":true,"groups":["staff","営業部"],"locale":"ja","name":"Alice","sub":"{USER}"}}"#
            )
        );
        let bare = UserInfo {
            sub,
            claims: UserClaims::default(),
        };
        assert_eq!(
            userinfo_body(bare).to_string(),
            format!(r#"{{"sub":"{USER}"}}"#)
        );
    }

    #[test]
    fn introspection_follows_rfc_7662() {
        let (sub, client, device) = ids().expect("canonical ids");
        assert_eq!(
            introspection_body(Introspection::Inactive).to_string(),
            r#"{"active":false}"#
        );
        let at = |s| DateTime::from_timestamp(s, 0).expect("a time");
        let refresh = ActiveToken {
            kind: IntrospectedKind::Refresh,
            client_id: client.clone(),
            sub: sub.clone(),
            scope: "openid offline_access".into(),
            expires_at: at(2000),
            issued_at: None,
            issuer: "https://id.example.com".into(),
            audience: None,
            device_id: None,
        };
        assert_eq!(
            introspection_body(Introspection::Active(refresh)).to_string(),
            format!(
                r#"{{"active":true,"client_id":"{CLIENT}","exp":2000,"iss":"https://id.example.com","scope":"openid offline_access","sub":"{USER}","token_type":"refresh_token"}}"#
            )
        );
        let access = ActiveToken {
            kind: IntrospectedKind::Access,
            client_id: client.clone(),
            sub,
            scope: "openid".into(),
            expires_at: at(2000),
            issued_at: Some(at(1000)),
            issuer: "https://id.example.com".into(),
            audience: Some(client),
            device_id: Some(device),
        };
        assert_eq!(
            introspection_body(Introspection::Active(access)).to_string(),
            format!(
                r#"{{"active":true,"aud":"{CLIENT}","client_id":"{CLIENT}","device_id":"{DEVICE}","exp":2000,"iat":1000,"iss":"https://id.example.com","scope":"openid","sub":"{USER}","token_type":"Bearer"}}"#
            )
        );
    }
}
