//! gRPC over TLS: `AdminService` for latchctl (bearer API token) and
//! `DeviceService` for agents (enrollment token, then mTLS). One listener;
//! client certificates are optional at the TLS layer and demanded per call.
//! `enums.rs` maps the domain's enums to the admin API's and back.

mod admin;
mod apple;
mod decode;
mod device;
mod device_commands;
mod enums;
mod messages;
mod short_status;

use std::sync::Arc;
use std::time::Duration;

use latchkey_proto::v1::admin_service_server::AdminServiceServer;
use latchkey_proto::v1::device_service_server::DeviceServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Code, Status};
use tracing::error;

use crate::api::accept::Acceptor;
use crate::ca::TlsIdentity;
use crate::core::auth::DeviceAuthError;
use crate::core::{Core, CoreError, EnrollError};

/// Largest request a device may send (CSR plus facts).
const MAX_DEVICE_MESSAGE: usize = 64 * 1024;
/// Largest admin request: a user import of the most rows an import takes
/// (latchctl encodes up to the same size and refuses larger files itself).
const MAX_ADMIN_MESSAGE: usize = latchkey_proto::limits::MAX_ADMIN_MESSAGE;

pub use admin::AdminApi;
pub use device::DeviceApi;

/// The one mapping from core errors to gRPC status codes.
pub fn status(error: CoreError) -> Status {
    match error {
        CoreError::PermissionDenied { .. } => Status::permission_denied(error.to_string()),
        CoreError::NotFound(_) => Status::not_found(error.to_string()),
        CoreError::InvalidArgument(_) => Status::invalid_argument(error.to_string()),
        CoreError::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
        CoreError::AlreadyExists(_) => Status::already_exists(error.to_string()),
        CoreError::Unavailable(_) => Status::unavailable(error.to_string()),
        CoreError::Enroll(ref e) => match e {
            EnrollError::TokenUnknown => Status::unauthenticated(error.to_string()),
            EnrollError::TokenExpired | EnrollError::TokenRevoked | EnrollError::TokenUsedUp => {
                Status::permission_denied(error.to_string())
            }
            EnrollError::InvalidCsr(_)
            | EnrollError::UnsupportedKey(_)
            | EnrollError::InvalidFacts(_) => Status::invalid_argument(error.to_string()),
        },
        CoreError::DeviceAuth(DeviceAuthError::Refused(ref r)) => {
            Status::unauthenticated(format!("device refused: {r}"))
        }
        CoreError::DeviceAuth(DeviceAuthError::Store(ref e)) => {
            error!(error = %e, "store failure while authenticating a device");
            Status::new(Code::Internal, "internal error")
        }
        CoreError::Internal(ref detail) => {
            error!(error = %detail, "internal error");
            Status::new(Code::Internal, "internal error")
        }
    }
}

pub async fn serve(
    listener: TcpListener,
    identity: &TlsIdentity,
    client_ca_pem: &str,
    core: Arc<Core>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            &identity.chain_pem,
            identity.key_pem.expose(),
        ))
        .client_ca_root(Certificate::from_pem(client_ca_pem))
        .client_auth_optional(true)
        .timeout(Duration::from_secs(10));
    Server::builder()
        .tls_config(tls)?
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .layer(short_status::ShortStatusMessages)
        .layer(decode::UndecodableIsInvalidArgument)
        .add_service(
            AdminServiceServer::new(AdminApi::new(core.clone()))
                .max_decoding_message_size(MAX_ADMIN_MESSAGE),
        )
        .add_service(
            DeviceServiceServer::new(DeviceApi::new(core))
                .max_decoding_message_size(MAX_DEVICE_MESSAGE),
        )
        .serve_with_incoming_shutdown(
            incoming(listener, shutdown.clone()),
            shutdown.cancelled_owned(),
        )
        .await
}

/// The listener's connections through [`Acceptor`], which pauses after a
/// failed accept instead of retrying at once (tonic's own incoming stream
/// hands each error to the server, which tries again straight away).
fn incoming(
    listener: TcpListener,
    shutdown: CancellationToken,
) -> impl futures_util::Stream<Item = Result<tokio::net::TcpStream, std::io::Error>> {
    let state = (listener, Acceptor::new("gRPC"), shutdown);
    futures_util::stream::unfold(state, |(listener, mut acceptor, shutdown)| async move {
        let (stream, _peer) = acceptor.accept(&listener, &shutdown).await?;
        let _ = stream.set_nodelay(true);
        Some((Ok(stream), (listener, acceptor, shutdown)))
    })
}
