//! The relying parties' endpoints: discovery, token, userinfo, revocation
//! and introspection. Errors follow RFC 6749 §5.2 and RFC 6750 §3.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use super::Web;
use crate::core::sso::{ClientAuth, TokenError, TokenSet, put};
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

fn token_set(set: TokenSet) -> Response {
    let mut body = json!({
        "access_token": set.access_token,
        "token_type": "Bearer",
        "expires_in": set.expires_in,
        "scope": set.scope,
    });
    if let Some(refresh_token) = set.refresh_token {
        put(&mut body, "refresh_token", json!(refresh_token));
    }
    if let Some(id_token) = set.id_token {
        put(&mut body, "id_token", json!(id_token));
    }
    json_response(StatusCode::OK, &body)
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
        Ok(set) => token_set(set),
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
        Ok(info) => json_response(StatusCode::OK, &info.0),
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
        Ok(result) => json_response(StatusCode::OK, &result.0),
        Err(e) => token_error(e, basic),
    }
}
