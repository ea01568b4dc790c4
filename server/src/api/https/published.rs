//! What anyone may fetch from the main listener without signing in: the CA
//! certificate, the CRL (for an external broker or a reverse proxy), the
//! keys ID tokens are signed with (JWKS) and a health check.
//!
//! The OpenID Connect endpoints that name the JWKS are in `oidc.rs`; the
//! CRL file is written by `ca/`, the signing keys kept by the core.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tracing::warn;

use super::Web;

pub async fn ca(State(files): State<Web>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        files.ca_pem.to_string(),
    )
}

pub async fn crl(State(files): State<Web>) -> impl IntoResponse {
    match tokio::fs::read_to_string(&files.crl_path).await {
        Ok(pem) => ([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no CRL has been published yet\n").into_response(),
    }
}

/// RFC 7517 §5: the public keys ID tokens are signed with.
pub async fn jwks(State(files): State<Web>) -> axum::response::Response {
    match files.core.signing_keys.jwks(chrono::Utc::now()).await {
        Ok(keys) => {
            let body = format!(
                r#"{{"keys":[{}]}}"#,
                keys.iter()
                    .map(|k| k.to_json())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            (
                [
                    (header::CONTENT_TYPE, "application/jwk-set+json"),
                    (header::CACHE_CONTROL, "public, max-age=300"),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => {
            warn!(error = %e, "JWKS unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "signing keys unavailable\n",
            )
                .into_response()
        }
    }
}

pub async fn health() -> &'static str {
    "ok\n"
}
