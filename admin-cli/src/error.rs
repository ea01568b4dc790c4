//! What can go wrong in one latchctl invocation, each as the one line
//! `main` prints, and how a gRPC status from the server becomes one.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the server at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("{0}")]
    Server(String),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The server's answer lacks a value latchctl needs to print, or holds
    /// one this latchctl does not know (a server newer than latchctl).
    #[error("the server's answer {0}")]
    Answer(String),
}

/// Awaits an admin API call and unwraps its answer, or says what failed.
pub async fn call<T>(
    response: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CliError> {
    Ok(response.await.map_err(server_error)?.into_inner())
}

pub(crate) fn server_error(status: tonic::Status) -> CliError {
    use tonic::Code;
    let what = match status.code() {
        Code::PermissionDenied => "permission denied",
        Code::Unauthenticated => "not authenticated",
        Code::NotFound => "not found",
        Code::InvalidArgument => "invalid argument",
        Code::FailedPrecondition => "not possible now",
        Code::AlreadyExists => "already exists",
        Code::Unavailable => "server unavailable",
        Code::DeadlineExceeded => "timed out",
        _ => "server error",
    };
    CliError::Server(format!("{what}: {}", status.message()))
}
