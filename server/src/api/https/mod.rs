//! The HTTPS listener: the OpenID Connect provider (discovery, authorize,
//! token, userinfo, revoke, introspect, logout, JWKS), the sign-in pages,
//! and what outside parties fetch: the CA certificate, the CRL (for an
//! external broker or a reverse proxy) and a health check; and Apple
//! devices' SCEP, check-in and command channel. A second
//! listener asks for a device certificate: the mobile path of device-auth.
//!
//! This module holds the two route tables and the state handlers share;
//! no handler lives here. Each file beside it owns one concern (see
//! `ARCHITECTURE.md`, the code map).

mod account;
mod apple;
mod assets;
mod authorize;
mod client;
mod connection;
mod cookies;
mod csrf;
mod errors;
mod frame;
mod home;
mod i18n;
mod language;
mod login;
mod oidc;
mod pages;
mod published;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::connection::accept;
use crate::config::HttpsLimits;

#[derive(Clone)]
struct Web {
    ca_pem: Arc<str>,
    crl_path: PathBuf,
    core: Arc<crate::core::Core>,
}

/// The TCP peer of a request (the browser's or client's address).
#[derive(Debug, Clone, Copy)]
struct Peer(std::net::SocketAddr);

/// The client certificate (DER) the TLS handshake verified, if any.
#[derive(Debug, Clone)]
struct PeerCertificate(Option<Arc<[u8]>>);

pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ca_pem: String,
    crl_path: PathBuf,
    core: Arc<crate::core::Core>,
    limits: HttpsLimits,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/healthz", get(published::health))
        .route("/ca.pem", get(published::ca))
        .route("/crl.pem", get(published::crl))
        .route("/jwks.json", get(published::jwks))
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route("/authorize", get(authorize::authorize))
        .route("/token", post(oidc::token))
        .route("/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route("/revoke", post(oidc::revoke))
        .route("/introspect", post(oidc::introspect))
        .route("/logout", get(login::logout).post(login::logout))
        .route(
            "/login",
            get(login::login_page).post(login::submit_password),
        )
        .route("/login/password", post(login::change_password))
        .route("/login/device", post(login::choose_device))
        .route("/login/wait", get(login::wait))
        .route("/login/device/code", post(login::submit_device_code))
        .route("/login/device/redeem", get(login::redeem_device_link))
        .route("/login/code", post(login::submit_code))
        .route("/login/code/resend", post(login::resend_code))
        .route("/account", get(account::account))
        .route("/account/mfa", post(account::set_mfa))
        .route("/account/totp", post(account::start_totp))
        .route("/account/totp/confirm", post(account::confirm_totp))
        .route("/account/totp/remove", post(account::remove_totp))
        .route("/account/language", post(account::set_language))
        .route("/account/verify", post(account::verify))
        .route("/account/verify/send", post(account::send_verify_code))
        .route("/account/password", post(account::change_password))
        .route("/", get(home::home))
        .route("/static/latchkey.css", get(assets::stylesheet))
        .route("/static/device-auth.js", get(assets::device_auth_script))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .merge(
            Router::new()
                .route("/apple/scep", get(apple::scep_get).post(apple::scep_post))
                .route("/apple/mdm/checkin", put(apple::checkin))
                .route("/apple/mdm/connect", put(apple::connect))
                .route("/apple/enroll", get(apple::enrollment_page))
                .route(
                    "/apple/dep/enroll",
                    get(apple::dep_enroll_get).post(apple::dep_enroll_post),
                )
                .route("/apple/dep/callback", get(apple::dep_callback))
                .layer(axum::extract::DefaultBodyLimit::max(apple::MAX_BODY)),
        )
        .with_state(Web {
            ca_pem: ca_pem.into(),
            crl_path,
            core,
        });
    accept("HTTPS", listener, tls, app, limits, shutdown).await;
}

/// The listener phones and tablets reach from "authenticate with this
/// device": it asks for a client certificate (the one the MDM profile
/// installed) and serves only the certificate answer.
pub async fn serve_device(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    core: Arc<crate::core::Core>,
    limits: HttpsLimits,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/device-auth", get(login::device_certificate))
        .route("/static/latchkey.css", get(assets::stylesheet))
        .with_state(Web {
            ca_pem: Arc::from(""),
            crl_path: PathBuf::new(),
            core,
        });
    accept("device HTTPS", listener, tls, app, limits, shutdown).await;
}
