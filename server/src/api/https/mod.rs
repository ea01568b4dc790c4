//! The HTTPS listener: the OpenID Connect provider (discovery, authorize,
//! token, userinfo, revoke, introspect, logout, JWKS), the sign-in pages,
//! and what outside parties fetch: the CA certificate, the CRL (for an
//! external broker or a reverse proxy) and a health check. A second
//! listener asks for a device certificate: the mobile path of device-auth.

mod account;
mod connection;
mod i18n;
mod login;
mod oidc;
mod pages;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use self::connection::{Activity, TimedBody};
use crate::api::accept::Acceptor;
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

async fn ca(State(files): State<Web>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        files.ca_pem.to_string(),
    )
}

async fn crl(State(files): State<Web>) -> impl IntoResponse {
    match tokio::fs::read_to_string(&files.crl_path).await {
        Ok(pem) => ([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no CRL has been published yet\n").into_response(),
    }
}

/// RFC 7517 §5: the public keys ID tokens are signed with.
async fn jwks(State(files): State<Web>) -> axum::response::Response {
    match files.core.jwks(chrono::Utc::now()).await {
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

async fn health() -> &'static str {
    "ok\n"
}

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
        .route("/healthz", get(health))
        .route("/ca.pem", get(ca))
        .route("/crl.pem", get(crl))
        .route("/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route("/authorize", get(login::authorize))
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
        .route("/", get(login::home))
        .route("/static/latchkey.css", get(login::stylesheet))
        .route("/static/device-auth.js", get(login::device_auth_script))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
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
        .route("/static/latchkey.css", get(login::stylesheet))
        .with_state(Web {
            ca_pem: Arc::from(""),
            crl_path: PathBuf::new(),
            core,
        });
    accept("device HTTPS", listener, tls, app, limits, shutdown).await;
}

/// Accepts TLS connections and serves `app` on each, with the peer's
/// address and (when it presented one) its verified certificate, within
/// the limits of `connection`.
async fn accept(
    name: &'static str,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: HttpsLimits,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let mut accepting = Acceptor::new(name);
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let Some((stream, peer)) = accepting.accept(&listener, &shutdown).await else {
            break;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                _ => {
                    debug!(%peer, "HTTPS handshake failed");
                    return;
                }
            };
            let certificate = PeerCertificate(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| Arc::from(leaf.as_ref())),
            );
            let app = app
                .layer(axum::Extension(Peer(peer)))
                .layer(axum::Extension(certificate));
            let activity = Activity::new();
            let service = {
                let activity = activity.clone();
                hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let in_flight = activity.begin();
                    let request = request.map(|body| {
                        axum::body::Body::new(TimedBody::new(body, limits.body_timeout))
                    });
                    let mut app = app.clone();
                    async move {
                        let response = tower::Service::call(&mut app, request).await;
                        drop(in_flight);
                        response
                    }
                })
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(tls), service);
            tokio::select! {
                r = connection => if let Err(e) = r { debug!(%peer, error = %e, "HTTPS connection"); },
                () = activity.idle_for(limits.idle_timeout) => debug!(%peer, "HTTPS connection idle; closed"),
                () = shutdown.cancelled() => {}
            }
        });
    }
}
