//! Where latchctl connects and as whom: the server URL, its CA and the API
//! token, each from a flag, else the environment, else the profile `login`
//! saved; and the authenticated gRPC client built from them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey_proto::v1::admin_service_client::AdminServiceClient;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::CliError;
use crate::args::Cli;

/// Where connection settings come from besides flags.
#[derive(Clone, Default)]
pub struct Environment {
    pub server: Option<String>,
    pub ca: Option<PathBuf>,
    pub token: Option<String>,
    /// Holds the saved profile.
    pub config_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("server", &self.server)
            .field("ca", &self.ca)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("config_dir", &self.config_dir)
            .finish()
    }
}

impl Environment {
    /// LATCHKEY_SERVER, LATCHKEY_CA, LATCHKEY_TOKEN and the per-user config dir.
    pub fn from_process() -> Self {
        let config_dir = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("latchctl"));
        Environment {
            server: std::env::var("LATCHKEY_SERVER").ok(),
            ca: std::env::var_os("LATCHKEY_CA").map(PathBuf::from),
            token: std::env::var("LATCHKEY_TOKEN").ok(),
            config_dir,
        }
    }

    /// Where `login` saves the profile and every later call looks for it.
    pub(crate) fn profile_path(&self) -> Option<PathBuf> {
        self.config_dir.as_ref().map(|d| d.join("profile.toml"))
    }
}

/// The saved connection; written 0600, never printed.
#[derive(Serialize, Deserialize)]
struct Profile {
    server: String,
    ca_pem: String,
    token: String,
}

/// The connection one invocation uses, resolved from flags, environment
/// and profile.
pub(crate) struct Connection {
    pub server: String,
    pub ca_pem: String,
    pub token: String,
}

/// Reads a file the admin named, saying which one when it cannot.
pub(crate) fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::File {
        path: path.to_owned(),
        source,
    })
}

/// Each setting from its flag, else the environment, else the saved
/// profile; a server without a scheme is taken as `https://`.
pub(crate) fn resolve(cli: &Cli, env: &Environment) -> Result<Connection, CliError> {
    let profile: Option<Profile> = env
        .profile_path()
        .filter(|p| p.exists())
        .map(|p| {
            let text = read(&p)?;
            toml::from_str(&text).map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))
        })
        .transpose()?;
    let server = cli
        .server
        .clone()
        .or_else(|| env.server.clone())
        .or_else(|| profile.as_ref().map(|p| p.server.clone()))
        .ok_or_else(|| {
            CliError::Usage(
                "no server: pass --server URL, set LATCHKEY_SERVER, or run `latchctl login`".into(),
            )
        })?;
    let ca_pem = match cli.ca.as_ref().or(env.ca.as_ref()) {
        Some(path) => read(path)?,
        None => profile.as_ref().map(|p| p.ca_pem.clone()).ok_or_else(|| {
            CliError::Usage(
                "no CA: pass --ca FILE (the server's ca.pem), set LATCHKEY_CA, or run `latchctl login`"
                    .into(),
            )
        })?,
    };
    let token = match &cli.token_file {
        Some(path) => read(path)?.trim().to_owned(),
        None => env
            .token
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.token.clone()))
            .ok_or_else(|| {
                CliError::Usage(
                    "no API token: pass --token-file FILE, set LATCHKEY_TOKEN, or run `latchctl login`"
                        .into(),
                )
            })?,
    };
    let server = if server.contains("://") {
        server
    } else {
        format!("https://{server}")
    };
    Ok(Connection {
        server,
        ca_pem,
        token,
    })
}

type AuthInterceptor =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
pub(crate) type Client =
    AdminServiceClient<tonic::service::interceptor::InterceptedService<Channel, AuthInterceptor>>;

/// A TLS channel to the server, trusting only its CA, with every call
/// carrying the API token.
pub(crate) async fn connect(connection: &Connection) -> Result<Client, CliError> {
    let err = |detail: String| CliError::Connect {
        url: connection.server.clone(),
        detail,
    };
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&connection.ca_pem));
    let channel = Channel::from_shared(connection.server.clone())
        .map_err(|e| err(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| err(e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .connect()
        .await
        .map_err(|e| err(latchkey_proto::text::error_chain(&e)))?;
    let header: MetadataValue<_> =
        format!("Bearer {}", connection.token)
            .parse()
            .map_err(|_| {
                CliError::Usage("the API token contains characters a header cannot carry".into())
            })?;
    let interceptor: AuthInterceptor = Box::new(move |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", header.clone());
        Ok(request)
    });
    Ok(AdminServiceClient::with_interceptor(channel, interceptor)
        .max_encoding_message_size(latchkey_proto::limits::MAX_ADMIN_MESSAGE)
        .max_decoding_message_size(latchkey_proto::limits::MAX_ADMIN_ANSWER))
}

/// Saves `connection` as the profile at `path` (0600, replaced atomically).
pub(crate) fn save_profile(connection: &Connection, path: &Path) -> Result<(), CliError> {
    let profile = Profile {
        server: connection.server.clone(),
        ca_pem: connection.ca_pem.clone(),
        token: connection.token.clone(),
    };
    let text = toml::to_string(&profile).map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| CliError::File {
            path: dir.to_owned(),
            source,
        })?;
    }
    latchkey_certs::files::write_atomic(
        path,
        text.as_bytes(),
        latchkey_certs::files::Access::OwnerOnly,
    )
    .map_err(|source| CliError::File {
        path: path.to_owned(),
        source,
    })
}
