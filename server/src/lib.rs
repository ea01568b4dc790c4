//! latchkeyd: the Latchkey server. `main.rs` parses arguments and calls
//! [`start`]; tests bind their own listeners on port 0 and do the same.

pub mod api;
pub mod apple_profiles;
pub mod ca;
pub mod config;
pub mod core;
pub mod dep;
pub mod descriptors;
pub mod domain;
pub mod http_client;
pub mod jobs;
pub mod mail;
pub mod push;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::{Config, FileConfig, MqttMode, Overrides};

use crate::ca::CertificateAuthority;
use crate::core::sso::SsoSettings;
use crate::core::{Core, CoreSettings};
use crate::store::Store;

/// The listening sockets, bound before start so tests can use port 0.
pub struct Listeners {
    pub grpc: TcpListener,
    pub https: TcpListener,
    /// The listener asking for device certificates (mobile device-auth).
    pub https_device: TcpListener,
    /// Absent in external-broker mode.
    pub mqtt: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let bind = |addr: SocketAddr, what: &'static str| async move {
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for {what} on {addr}"))
        };
        Ok(Listeners {
            grpc: bind(config.listen_grpc, "gRPC").await?,
            https: bind(config.listen_https, "HTTPS").await?,
            https_device: bind(config.listen_https_device, "device HTTPS").await?,
            mqtt: match &config.mqtt {
                MqttMode::Embedded { listen } => Some(bind(*listen, "MQTT").await?),
                MqttMode::External { .. } => None,
            },
        })
    }
}

/// A started server: its addresses and its tasks.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub https_device_addr: SocketAddr,
    pub mqtt_addr: Option<SocketAddr>,
    pub mqtt_url: String,
    pub ca_path: PathBuf,
    /// Set when this start created the first owner.
    pub admin_token_path: Option<PathBuf>,
    pub core: Arc<Core>,
    pub sessions: push::SessionRegistry,
    /// The database, for tests that look at what an operation stored.
    pub store: Store,
    tasks: JoinSet<()>,
}

impl Running {
    /// Waits until every task has stopped (after the shutdown token fires).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
        self.store.close().await;
    }
}

/// The issuer's scheme and host on the device listener's port.
fn device_url_beside(issuer: &str, port: u16) -> String {
    match url::Url::parse(issuer) {
        Ok(mut url) => {
            let _ = url.set_port(Some(port));
            url.set_path("");
            url.to_string().trim_end_matches('/').to_owned()
        }
        Err(_) => format!("https://localhost:{port}"),
    }
}

/// The parts of the server that talk to services tests cannot reach,
/// replaceable by fakes ([`start_with`]).
pub struct Seams {
    /// Where Apple MDM pushes go.
    pub apns: Arc<dyn push::apns::Apns>,
}

pub async fn start(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let seams = Seams {
        apns: Arc::new(push::apns::A2Apns::new(config.apns)),
    };
    start_with(config, listeners, shutdown, seams).await
}

/// [`start`] with the given seams (tests pass fakes of Apple's services).
pub async fn start_with(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    seams: Seams,
) -> anyhow::Result<Running> {
    let now = Utc::now();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let ca = Arc::new(
        CertificateAuthority::load_or_create(&config.data_dir, now)
            .context("cannot load the certificate authority")?,
    );
    let server_identity = ca
        .tls_identity("server", &config.tls_names, now)
        .context("cannot issue the server certificate")?;
    let store = Store::connect(config.database_url.expose())
        .await
        .with_context(|| format!("cannot open the database {:?}", config.database_url))?;

    let grpc_addr = listeners.grpc.local_addr()?;
    let https_addr = listeners.https.local_addr()?;
    let https_device_addr = listeners.https_device.local_addr()?;
    let mqtt_addr = listeners
        .mqtt
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let mut tasks = JoinSet::new();

    let (push, uplinks, internal) = match &config.mqtt {
        MqttMode::Embedded { .. } => {
            let (push, uplinks, internal) = push::embedded::start(shutdown.clone()).await?;
            (push, uplinks, Some(internal))
        }
        MqttMode::External { url } => {
            let identity = ca.broker_client_identity(push::external::SERVER_CLIENT_NAME, now)?;
            let (push, uplinks) =
                push::external::start(url, &identity, ca.root_pem(), shutdown.clone())?;
            (push, uplinks, None)
        }
    };
    let mqtt_url = match (&config.mqtt_advertise, &config.mqtt, mqtt_addr) {
        (Some(url), _, _) => url.clone(),
        (None, MqttMode::External { url }, _) => url.clone(),
        (None, MqttMode::Embedded { .. }, Some(addr)) => {
            format!("mqtts://localhost:{}", addr.port())
        }
        (None, MqttMode::Embedded { .. }, None) => anyhow::bail!("embedded MQTT needs a listener"),
    };
    let sessions = push.sessions().clone();
    let issuer = config
        .sso_issuer
        .clone()
        .unwrap_or_else(|| format!("https://localhost:{}", https_addr.port()));
    let mailer = config.smtp.as_ref().map(mail::Mailer::new).transpose()?;
    let mut ports = push::port::Ports::default();
    ports.register(Arc::new(push.clone()));
    ports.register(Arc::new(push::apple::AppleWake::new(
        store.clone(),
        seams.apns.clone(),
    )));
    let apple_settings = crate::core::apple::AppleSettings {
        identity_validity: chrono::Duration::days(365),
        identity_renewal_window: chrono::Duration::from_std(config.apple_identity_renewal_window)?,
        base_url: config
            .apple_base_url
            .clone()
            .unwrap_or_else(|| issuer.trim_end_matches('/').to_owned()),
        organization: config.apple_organization.clone(),
        enrollment_page: config.apple_enrollment_page,
        dep_base_url: config.apple_dep_base_url.clone(),
        dep_sign_in: config.apple_dep_sign_in,
        inventory_interval: chrono::Duration::from_std(config.apple_inventory_interval)?,
    };
    let (core, enrollment_writer) = Core::new(
        store.clone(),
        ca.clone(),
        push,
        ports,
        crate::core::apple::ApplePlatform {
            apns: seams.apns,
            enrollment_authority: Arc::new(
                ca.enrollment_authority(now)
                    .context("cannot load the SCEP registration authority")?,
            ),
            dep_http: http_client::HttpClient::new(http_client::HttpClientConfig::new(format!(
                "Latchkey/{}",
                env!("CARGO_PKG_VERSION")
            )))
            .context("cannot make the HTTPS client for Apple's services")?,
        },
        mailer,
        CoreSettings {
            device_certificate_validity: chrono::Duration::from_std(
                config.device_certificate_validity,
            )?,
            mqtt_url: mqtt_url.clone(),
            apple: apple_settings.clone(),
            sso: SsoSettings {
                dep_callback: apple_settings
                    .dep_sign_in
                    .then(|| apple_settings.dep_callback_url()),
                device_url: config
                    .sso_device_url
                    .clone()
                    .unwrap_or_else(|| device_url_beside(&issuer, https_device_addr.port())),
                issuer,
                access_token_ttl: chrono::Duration::from_std(config.access_token_ttl)?,
                bound_requires_same_ip: config.bound_requires_same_ip,
                user_mfa_minimum: config.user_mfa_minimum,
                allowed_networks: config.allowed_networks.clone(),
                support_contact: config.support_contact.clone(),
                trusted_proxies: config.trusted_proxies.clone(),
            },
        },
    );
    let core = Arc::new(core);
    tasks.spawn(enrollment_writer.run(shutdown.clone()));

    let admin_token_path = match core
        .admins
        .bootstrap_owner(&config.bootstrap_email, now)
        .await?
    {
        Some(token) => {
            let path = config.data_dir.join("admin-token");
            ca::write_file(&path, &format!("{token}\n"), true)?;
            Some(path)
        }
        None => None,
    };
    core.enrollment.publish_crl(now).await;
    core.signing_keys.ensure_signing_key(now).await?;
    core.apple.load_push_certificates().await;

    {
        let (core, identity, root, shutdown) = (
            core.clone(),
            server_identity.clone(),
            ca.root_pem().to_owned(),
            shutdown.clone(),
        );
        let listener = listeners.grpc;
        tasks.spawn(async move {
            if let Err(e) = api::grpc::serve(listener, &identity, &root, core, shutdown).await {
                warn!(error = %e, "gRPC server stopped");
            }
        });
    }
    {
        let tls = latchkey_certs::tls::server_config(
            &server_identity.chain_pem,
            &server_identity.key_pem,
        )?;
        tasks.spawn(api::https::serve(
            listeners.https,
            tls,
            ca.root_pem().to_owned(),
            ca.crl_path(),
            core.clone(),
            config.https,
            shutdown.clone(),
        ));
    }
    {
        let tls = latchkey_certs::tls::optional_mtls_server_config(
            &server_identity.chain_pem,
            &server_identity.key_pem,
            ca.root_pem(),
        )?;
        tasks.spawn(api::https::serve_device(
            listeners.https_device,
            tls,
            core.clone(),
            config.https,
            shutdown.clone(),
        ));
    }
    if let (Some(listener), Some(internal)) = (listeners.mqtt, internal) {
        let tls = latchkey_certs::tls::mtls_server_config(
            &server_identity.chain_pem,
            &server_identity.key_pem,
            ca.root_pem(),
        )?;
        let limit = descriptors::current();
        let max_sessions = config
            .mqtt_max_sessions
            .unwrap_or_else(|| descriptors::mqtt_sessions_within(limit.and_then(|l| l.soft)));
        info!(
            descriptor_limit = ?limit.and_then(|l| l.soft),
            max_sessions,
            "MQTT sessions allowed (three descriptors each, {} kept for the rest)",
            descriptors::RESERVED
        );
        let gateway = api::mqtt::gateway::Gateway {
            core: core.clone(),
            tls,
            broker: internal,
            sessions: sessions.clone(),
            max_sessions,
        };
        tasks.spawn(api::mqtt::gateway::serve(
            gateway,
            listener,
            shutdown.clone(),
        ));
    }
    tasks.spawn(api::mqtt::uplink::run(
        core.clone(),
        uplinks,
        shutdown.clone(),
    ));
    jobs::spawn(
        &mut tasks,
        &core,
        &shutdown,
        config.apple_dep_sync_interval,
        config.apple_identity_renewal_interval,
    );

    Ok(Running {
        grpc_addr,
        https_addr,
        https_device_addr,
        mqtt_addr,
        mqtt_url,
        ca_path: ca.root_path(),
        admin_token_path,
        core,
        sessions,
        tasks,
        store,
    })
}
