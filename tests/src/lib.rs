//! The whole-system test harness: the real latchkeyd, the real agent library
//! and the real latchctl library in one process, on port 0, with a fresh
//! SQLite database per system or, when `LATCHKEY_TEST_DATABASE_URL` is set,
//! a fresh PostgreSQL database created on that server and dropped at stop.

// A harness: a panic here is a failed test, which is what it should be.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cli::parse_cli;
use latchkey_agent::run::{RunOptions, RunOutcome};
use latchkey_agent::state::StateDir;
use latchkey_proto::v1::admin_service_client::AdminServiceClient;
use latchkeyd::push::apns::RecordingApns;
use latchkeyd::{Config, FileConfig, Listeners, Overrides, Running, Seams};
use sea_orm::{ConnectionTrait, Database};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub mod apple;
pub mod apple_attacker;
pub mod chrome;
pub mod fake_dep;
pub mod fixture;
pub mod login;
pub mod scep_clients;
pub mod smtp;
pub mod web;

/// Logs to the test output when `LATCHKEY_LOG` is set (e.g. `debug`).
pub fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("LATCHKEY_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// Polls `check` until it returns `Some`, failing after `deadline`.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() > end {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The default deadline for eventual state in tests.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Which database a system runs on.
#[derive(Debug, Clone)]
enum Db {
    Sqlite,
    /// (maintenance URL, database name)
    Postgres {
        base: String,
        name: String,
    },
}

fn pick_database() -> Db {
    match std::env::var("LATCHKEY_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => Db::Postgres {
            base,
            name: format!("latchkey_t_{}", uuid::Uuid::new_v4().simple()),
        },
        _ => Db::Sqlite,
    }
}

impl Db {
    /// Creates the database (PostgreSQL) and returns its URL; a SQLite
    /// database is a file in `dir`, created on first connection.
    async fn create(&self, dir: &Path) -> Result<String> {
        match self {
            Db::Sqlite => Ok(format!(
                "sqlite://{}?mode=rwc",
                dir.join("latchkey.db").display()
            )),
            Db::Postgres { base, name } => {
                let admin = Database::connect(base.as_str())
                    .await
                    .with_context(|| format!("connect to {base}"))?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await?;
                admin.close().await?;
                Ok(with_database(base, name))
            }
        }
    }

    /// Drops a PostgreSQL database; a SQLite file goes with its directory.
    async fn drop_database(&self) -> Result<()> {
        if let Db::Postgres { base, name } = self {
            let admin = Database::connect(base.as_str()).await?;
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
            admin.close().await?;
        }
        Ok(())
    }
}

fn with_database(base: &str, name: &str) -> String {
    match base.rfind('/') {
        Some(slash) if base[..slash].ends_with('/') || base[slash..].contains('@') => {
            format!("{base}/{name}")
        }
        Some(slash) => format!("{}/{name}", &base[..slash]),
        None => format!("{base}/{name}"),
    }
}

/// An admin API client that sends an API token with every request.
pub type AdminApi = AdminServiceClient<InterceptedService<Channel, Bearer>>;

/// The `authorization` header of every admin API request.
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// How the system reaches devices over MQTT.
#[derive(Debug, Clone)]
pub enum MqttSetup {
    Embedded,
    External { url: String },
}

pub struct System {
    pub dir: TempDir,
    pub running: Option<Running>,
    shutdown: CancellationToken,
    db: Db,
    mqtt: MqttSetup,
    pub owner_token: String,
    pub ca_pem: String,
    pub grpc_url: String,
    /// Changes to the configuration file every boot applies.
    configure: Option<Configure>,
    /// Where the server's Apple MDM pushes go (Apple cannot be reached
    /// from tests); kept across restarts.
    pub apns: Arc<RecordingApns>,
}

/// A change to the server's configuration file.
pub type Configure = std::sync::Arc<dyn Fn(&mut FileConfig) + Send + Sync>;

/// A second server started by [`System::replica`].
pub struct Replica {
    pub running: Running,
    shutdown: CancellationToken,
}

impl Replica {
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.running.wait().await;
    }
}

impl System {
    pub async fn start() -> Result<System> {
        Self::start_with(MqttSetup::Embedded).await
    }

    pub async fn start_with(mqtt: MqttSetup) -> Result<System> {
        Self::start_in(tempfile::tempdir()?, mqtt).await
    }

    /// Starts in `dir` (its `data` subdirectory may already hold a CA).
    pub async fn start_in(dir: TempDir, mqtt: MqttSetup) -> Result<System> {
        Self::start_full(dir, mqtt, None).await
    }

    /// Starts with changes to the configuration file (SMTP, SSO settings).
    pub async fn start_configured(configure: Configure) -> Result<System> {
        Self::start_full(tempfile::tempdir()?, MqttSetup::Embedded, Some(configure)).await
    }

    async fn start_full(
        dir: TempDir,
        mqtt: MqttSetup,
        configure: Option<Configure>,
    ) -> Result<System> {
        init_logging();
        let db = pick_database();
        if let Db::Postgres { .. } = &db {
            db.create(dir.path()).await?;
        }
        let mut system = System {
            dir,
            running: None,
            shutdown: CancellationToken::new(),
            db,
            mqtt,
            owner_token: String::new(),
            ca_pem: String::new(),
            grpc_url: String::new(),
            configure,
            apns: Arc::new(RecordingApns::default()),
        };
        system.boot().await?;
        system.owner_token = std::fs::read_to_string(system.data_dir().join("admin-token"))?
            .trim()
            .to_owned();
        system.ca_pem = std::fs::read_to_string(system.data_dir().join("ca.pem"))?;
        Ok(system)
    }

    /// A connection to the server's database, for tests that must change
    /// what time alone would (an attempt that has expired).
    pub async fn database(&self) -> Result<sea_orm::DatabaseConnection> {
        let url = self.config()?.database_url.expose().to_owned();
        Ok(Database::connect(url.as_str()).await?)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config(&self) -> Result<Config> {
        let mut file = FileConfig::default();
        file.database.url = match &self.db {
            Db::Sqlite => None,
            Db::Postgres { base, name } => Some(with_database(base, name)),
        };
        if let MqttSetup::External { url } = &self.mqtt {
            file.mqtt.external = Some(url.clone());
        }
        if let Some(configure) = &self.configure {
            configure(&mut file);
        }
        let config = file.validate(Overrides {
            data_dir: Some(self.data_dir()),
            listen_grpc: Some("127.0.0.1:0".into()),
            listen_mqtt: Some("127.0.0.1:0".into()),
            listen_https: Some("127.0.0.1:0".into()),
            listen_https_device: Some("127.0.0.1:0".into()),
        })?;
        Ok(config)
    }

    async fn boot(&mut self) -> Result<()> {
        let config = self.config()?;
        let listeners = Listeners::bind(&config).await?;
        self.shutdown = CancellationToken::new();
        let running =
            latchkeyd::start_with(config, listeners, self.shutdown.clone(), self.seams()).await?;
        self.grpc_url = format!("https://localhost:{}", running.grpc_addr.port());
        self.running = Some(running);
        Ok(())
    }

    /// A second server on the same database and data directory, with its
    /// own listeners and tasks, as a replica behind a load balancer runs.
    pub async fn replica(&self) -> Result<Replica> {
        let config = self.config()?;
        let listeners = Listeners::bind(&config).await?;
        let shutdown = CancellationToken::new();
        let running =
            latchkeyd::start_with(config, listeners, shutdown.clone(), self.seams()).await?;
        Ok(Replica { running, shutdown })
    }

    fn seams(&self) -> Seams {
        Seams {
            apns: self.apns.clone(),
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("system is running")
    }

    /// Stops the server and starts it again on the same data and database.
    pub async fn restart(&mut self) -> Result<()> {
        self.halt().await;
        self.boot().await
    }

    async fn halt(&mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.wait().await;
        }
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn stop(mut self) -> Result<()> {
        self.halt().await;
        self.db.drop_database().await
    }

    pub fn ca_path(&self) -> PathBuf {
        self.data_dir().join("ca.pem")
    }

    /// Runs latchctl as the owner; returns what it prints.
    pub async fn ctl(&self, args: &[&str]) -> Result<String, latchctl::CliError> {
        self.ctl_as(&self.owner_token, args).await
    }

    pub async fn ctl_as(&self, token: &str, args: &[&str]) -> Result<String, latchctl::CliError> {
        let cli = parse_cli(args);
        let env = latchctl::Environment {
            server: Some(self.grpc_url.clone()),
            ca: Some(self.ca_path()),
            token: Some(token.to_owned()),
            config_dir: Some(self.dir.path().join("latchctl")),
        };
        latchctl::run(cli, &env).await
    }

    /// The admin API as the owner, for requests latchctl never sends.
    pub async fn admin_api(&self) -> Result<AdminApi> {
        let channel = latchkey_agent::enroll::channel(&self.grpc_url, &self.ca_pem, None).await?;
        let header = format!("Bearer {}", self.owner_token).parse()?;
        Ok(AdminServiceClient::with_interceptor(
            channel,
            Bearer(header),
        ))
    }

    /// latchctl with `--json`, parsed.
    pub async fn ctl_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all).await?;
        Ok(serde_json::from_str(&out)?)
    }

    /// Creates an enrollment token and returns its secret.
    pub async fn enrollment_token(&self, extra: &[&str]) -> Result<String> {
        let mut args = vec!["token", "create"];
        args.extend_from_slice(extra);
        let created = self.ctl_json(&args).await?;
        Ok(created["secret"].as_str().context("secret")?.to_owned())
    }

    /// Enrolls a new agent (own state dir) with `token`.
    pub async fn enroll(&self, token: &str) -> Result<Agent, latchkey_agent::enroll::EnrollError> {
        let dir = tempfile::tempdir()
            .map_err(|e| latchkey_agent::enroll::EnrollError::Usage(e.to_string()))?;
        let state = StateDir::new(dir.path().join("agent"));
        let enrollment =
            latchkey_agent::enroll::enroll(&state, &self.grpc_url, token, &self.ca_pem).await?;
        Ok(Agent {
            _dir: dir,
            state,
            device_id: enrollment.device_id,
            task: None,
            shutdown: CancellationToken::new(),
        })
    }

    pub async fn device(&self, id: &str) -> Result<serde_json::Value> {
        self.ctl_json(&["device", "show", id]).await
    }

    pub async fn commands(&self, id: &str) -> Result<Vec<serde_json::Value>> {
        let list = self.ctl_json(&["command", "list", id]).await?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }

    /// Waits until command `command_id` of `device` has `status`.
    pub async fn wait_for_command(
        &self,
        device: &str,
        command_id: &str,
        status: &str,
    ) -> Result<serde_json::Value> {
        wait_until(
            &format!("command {command_id} to be {status}"),
            DEADLINE,
            || async {
                let commands = self.commands(device).await.ok()?;
                commands
                    .into_iter()
                    .find(|c| c["id"] == command_id && c["status"] == status)
            },
        )
        .await
    }

    /// `device lock ID`, then waits for the agent's acknowledgement; returns
    /// the acknowledged command as `command list --json` shows it.
    pub async fn lock_acknowledged(&self, device: &str) -> Result<serde_json::Value> {
        let lock = self.ctl_json(&["device", "lock", device]).await?;
        let id = lock["command"]["id"]
            .as_str()
            .context("command id")?
            .to_owned();
        self.wait_for_command(device, &id, "acknowledged").await
    }

    /// Waits until the device's agent has said hello (posture reported).
    pub async fn wait_for_posture(&self, device: &str) -> Result<serde_json::Value> {
        wait_until("the agent's first posture report", DEADLINE, || async {
            let d = self.device(device).await.ok()?;
            d["posture"]["reported_at"].is_string().then_some(d)
        })
        .await
    }
}

pub struct Agent {
    _dir: TempDir,
    pub state: StateDir,
    pub device_id: String,
    task: Option<JoinHandle<Result<RunOutcome, latchkey_agent::run::RunError>>>,
    shutdown: CancellationToken,
}

impl Agent {
    pub fn start(&mut self, options: RunOptions) {
        self.shutdown = CancellationToken::new();
        let state = self.state.clone();
        let shutdown = self.shutdown.clone();
        self.task = Some(tokio::spawn(async move {
            latchkey_agent::run::run(&state, &options, shutdown).await
        }));
    }

    /// `run --dry-run`.
    pub fn start_dry_run(&mut self) {
        self.start(RunOptions {
            dry_run: true,
            ..RunOptions::default()
        });
    }

    pub async fn stop(&mut self) -> Result<RunOutcome> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => Ok(task.await??),
            None => Ok(RunOutcome::Stopped),
        }
    }

    /// Waits for the agent's run loop to end on its own (a wipe).
    pub async fn finished(&mut self) -> Result<RunOutcome> {
        let task = self.task.take().context("agent not running")?;
        Ok(tokio::time::timeout(DEADLINE, task).await???)
    }

    pub fn connection_state(&self) -> String {
        self.state
            .status()
            .ok()
            .flatten()
            .map(|s| s.state)
            .unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        self.state.path()
    }
}

/// latchctl's argument parsing, as the binary does it.
mod cli {
    use clap::Parser;

    pub fn parse_cli(args: &[&str]) -> latchctl::Cli {
        let mut all = vec!["latchctl"];
        all.extend_from_slice(args);
        latchctl::Cli::parse_from(all)
    }
}

/// A raw MQTT client with an agent's credentials, for tests that misbehave.
pub fn device_mqtt_client(
    sys: &System,
    agent: &Agent,
    client_id: &str,
) -> Result<(rumqttc::AsyncClient, rumqttc::EventLoop)> {
    let key = latchkey_agent::keystore::load(&agent.state)?;
    let chain = agent.state.certificate_chain()?;
    mqtt_client_with(sys, Some((chain.as_str(), &key)), client_id)
}

/// A raw MQTT client presenting `identity` (or no certificate).
pub fn mqtt_client_with(
    sys: &System,
    identity: Option<(&str, &latchkey_certs::PrivateKeyPem)>,
    client_id: &str,
) -> Result<(rumqttc::AsyncClient, rumqttc::EventLoop)> {
    let (host, port) = latchkey_proto::text::parse_mqtts_url(&sys.running().mqtt_url)
        .map_err(anyhow::Error::msg)?;
    let tls = latchkey_certs::tls::client_config(&sys.ca_pem, identity)?;
    let mut options = rumqttc::MqttOptions::new(client_id, host, port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1024 * 1024, 1024 * 1024)
        .set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
            tls,
        )));
    Ok(rumqttc::AsyncClient::new(options, 16))
}

/// Polls an event loop until the connection ends; returns how it ended.
pub async fn until_disconnected(eventloop: &mut rumqttc::EventLoop) -> Result<String> {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(end, eventloop.poll()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Ok(e.to_string()),
            Err(_) => bail!("the connection stayed open"),
        }
    }
}

/// Polls an event loop until the broker accepts the connection.
pub async fn until_connected(eventloop: &mut rumqttc::EventLoop) -> Result<()> {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(end, eventloop.poll()).await {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("connection failed: {e}"),
            Err(_) => bail!("no CONNACK"),
        }
    }
}

/// A certificate and key from a CA that is not the server's.
pub fn foreign_identity() -> Result<(String, latchkey_certs::PrivateKeyPem)> {
    let now = chrono::Utc::now();
    let generated = latchkey_certs::generate_authority("Intruder", now)?;
    let authority = latchkey_certs::Authority::load(
        &generated.root_cert_pem,
        &generated.issuing_cert_pem,
        &generated.issuing_key_pem,
    )?;
    let (key, csr) = latchkey_certs::new_key_and_csr("intruder")?;
    let csr = latchkey_certs::verify_csr(&csr)?;
    let cert = authority.issue_device(
        &csr,
        "00000000000000000000000000000000",
        now,
        chrono::Duration::days(1),
    )?;
    Ok((authority.chain_pem(&cert.pem), key))
}

/// A certificate from the server's own CA for `agent`'s key that expired yesterday.
pub fn expired_identity(
    sys: &System,
    agent: &Agent,
) -> Result<(String, latchkey_certs::PrivateKeyPem)> {
    let dir = sys.data_dir();
    let authority = latchkey_certs::Authority::load(
        &std::fs::read_to_string(dir.join("ca.pem"))?,
        &std::fs::read_to_string(dir.join("issuing-ca.pem"))?,
        &latchkey_certs::PrivateKeyPem::new(std::fs::read_to_string(
            dir.join("issuing-ca-key.pem"),
        )?),
    )?;
    let key = latchkey_agent::keystore::load(&agent.state)?;
    let csr = latchkey_certs::verify_csr(&latchkey_certs::csr_for_key(&key, &agent.device_id)?)?;
    let past = chrono::Utc::now() - chrono::Duration::days(10);
    let cert = authority.issue_device(&csr, &agent.device_id, past, chrono::Duration::days(2))?;
    Ok((authority.chain_pem(&cert.pem), key))
}

/// A Mosquitto broker started for one test, with TLS and the Latchkey CA,
/// CRL and per-device ACL, on a free loopback port. Killed when dropped.
pub struct Mosquitto {
    pub port: u16,
    child: tokio::process::Child,
}

impl Mosquitto {
    /// Prepares the CA in `data_dir` (as latchkeyd would at first start),
    /// issues the broker's certificate and starts Mosquitto.
    pub async fn start(data_dir: &Path) -> Result<Mosquitto> {
        let now = chrono::Utc::now();
        std::fs::create_dir_all(data_dir)?;
        let ca = latchkeyd::ca::CertificateAuthority::load_or_create(data_dir, now)?;
        ca.tls_identity("mosquitto", &["localhost".into(), "127.0.0.1".into()], now)?;
        ca.write_crl(&[], now)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let d = data_dir.display();
        std::fs::write(
            data_dir.join("mosquitto.acl"),
            format!(
                "user {server}\ntopic readwrite latchkey/v1/#\n\npattern read latchkey/v1/d/%u/cmd\npattern read latchkey/v1/d/%u/auth\npattern write latchkey/v1/d/%u/up\n",
                server = latchkeyd::push::external::SERVER_CLIENT_NAME
            ),
        )?;
        let config = data_dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "per_listener_settings false\nuser root\nallow_anonymous false\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n\
                 acl_file {d}/mosquitto.acl\n\
                 listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/mosquitto.pem\nkeyfile {d}/mosquitto-key.pem\n\
                 require_certificate true\nuse_identity_as_username true\ncrlfile {d}/crl.pem\n"
            ),
        )?;
        let program = ["/usr/sbin/mosquitto", "mosquitto"]
            .into_iter()
            .find(|p| !p.starts_with('/') || Path::new(p).exists())
            .unwrap_or("mosquitto");
        let log = std::fs::File::create(data_dir.join("mosquitto.log"))?;
        let child = tokio::process::Command::new(program)
            .arg("-c")
            .arg(&config)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {program} (install the mosquitto package)"))?;
        let mut broker = Mosquitto { port, child };
        let end = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = broker.child.try_wait() {
                bail!(
                    "mosquitto exited at start ({status}): {}",
                    std::fs::read_to_string(data_dir.join("mosquitto.log")).unwrap_or_default()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(broker);
            }
            if tokio::time::Instant::now() > end {
                bail!("mosquitto did not listen on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("mqtts://localhost:{}", self.port)
    }

    /// The broker's process id, for measuring it.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl System {
    /// GET over HTTPS from the server's HTTPS listener, trusting only its
    /// CA; returns the status code and the body.
    pub async fn https_get(&self, path: &str) -> Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.running().https_addr;
        let tls = latchkey_certs::tls::client_config(&self.ca_pem, None)?;
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls_pki_types::ServerName::try_from("localhost")?;
        let mut stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        // The server may close without close_notify; what arrived is the answer.
        let _ = stream.read_to_end(&mut response).await;
        let text = String::from_utf8(response)?;
        let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header")?;
        let status = head
            .split_whitespace()
            .nth(1)
            .context("no status")?
            .parse()?;
        Ok((status, body.to_owned()))
    }
}
