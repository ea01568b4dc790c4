//! The HTTPS listener. For now it serves what outside parties fetch: the CA
//! certificate, the CRL (for an external broker or a reverse proxy) and a
//! health check. The login pages join it with the SSO layer.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

#[derive(Clone)]
struct Files {
    ca_pem: Arc<str>,
    crl_path: PathBuf,
}

async fn ca(State(files): State<Files>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        files.ca_pem.to_string(),
    )
}

async fn crl(State(files): State<Files>) -> impl IntoResponse {
    match tokio::fs::read_to_string(&files.crl_path).await {
        Ok(pem) => ([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no CRL has been published yet\n").into_response(),
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
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/healthz", get(health))
        .route("/ca.pem", get(ca))
        .route("/crl.pem", get(crl))
        .with_state(Files {
            ca_pem: ca_pem.into(),
            crl_path,
        });
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "HTTPS accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                _ => {
                    debug!(%peer, "HTTPS handshake failed");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            tokio::select! {
                r = connection => if let Err(e) = r { debug!(%peer, error = %e, "HTTPS connection"); },
                () = shutdown.cancelled() => {}
            }
        });
    }
}
