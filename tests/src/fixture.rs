//! The core and the store without listeners: a freshly migrated database
//! (SQLite, or PostgreSQL when `LATCHKEY_TEST_DATABASE_URL` is set), a CA
//! in a temporary directory, a fixed clock, and recording channels in
//! place of MQTT. For tests of one operation's effect on the database; the
//! user stories run on the whole [`crate::System`].

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use latchkeyd::ca::CertificateAuthority;
use latchkeyd::core::auth::AuthenticatedAdmin;
use latchkeyd::core::sso::{MfaSetting, SsoSettings};
use latchkeyd::core::{Core, CoreSettings, Enrolled};
use latchkeyd::domain::device::{Channel, DeviceFacts};
use latchkeyd::push::port::{Ports, RecordingPort, WorkPort};
use latchkeyd::push::{Published, Push};
use latchkeyd::store::Store;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use crate::{Db, pick_database};

pub struct CoreFixture {
    pub core: Arc<Core>,
    pub store: Store,
    /// The agent's channel: records each wake-up and reports every command
    /// delivered, as MQTT does.
    pub agent: Arc<RecordingPort>,
    /// What the core published to agents besides commands (policies).
    pub published: Published,
    /// The fixed time the fixture started at.
    pub now: DateTime<Utc>,
    shutdown: CancellationToken,
    db: Db,
    _dir: TempDir,
}

impl CoreFixture {
    /// A fixture whose only channel is the agent's.
    pub async fn start() -> Result<Self> {
        Self::with_ports(Vec::new()).await
    }

    /// A fixture with these channels registered beside the agent's.
    pub async fn with_ports(extra: Vec<Arc<dyn WorkPort>>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let now = Utc
            .with_ymd_and_hms(2026, 4, 1, 9, 0, 0)
            .single()
            .context("a valid time")?;
        let db = pick_database();
        let url = db.create(dir.path()).await?;
        let store = Store::connect(&url).await?;
        let ca = Arc::new(CertificateAuthority::load_or_create(dir.path(), now)?);
        let (push, published) = Push::detached();
        let agent = Arc::new(RecordingPort::delivering(Channel::AGENT));
        let mut ports = Ports::default();
        ports.register(agent.clone());
        for port in extra {
            ports.register(port);
        }
        let settings = CoreSettings {
            device_certificate_validity: chrono::Duration::days(30),
            mqtt_url: "mqtts://localhost:8883".into(),
            apple: latchkeyd::core::apple::AppleSettings {
                identity_validity: chrono::Duration::days(365),
                identity_renewal_window: chrono::Duration::days(30),
                base_url: "https://mdm.example.test".into(),
                organization: "Example".into(),
                enrollment_page: true,
                dep_base_url: "https://mdmenrollment.example.test".into(),
                inventory_interval: chrono::Duration::hours(4),
                dep_sign_in: false,
            },
            sso: SsoSettings {
                issuer: "https://id.example.test".into(),
                access_token_ttl: chrono::Duration::minutes(5),
                bound_requires_same_ip: false,
                user_mfa_minimum: MfaSetting::Off,
                allowed_networks: Vec::new(),
                device_url: "https://id.example.test:8444".into(),
                support_contact: String::new(),
                trusted_proxies: Vec::new(),
                dep_callback: None,
            },
        };
        let (core, writer) = Core::new(
            store.clone(),
            ca.clone(),
            push,
            ports,
            latchkeyd::core::apple::ApplePlatform {
                apns: Arc::new(latchkeyd::push::apns::RecordingApns::default()),
                enrollment_authority: Arc::new(ca.enrollment_authority(now)?),
                dep_http: latchkeyd::http_client::HttpClient::new(
                    latchkeyd::http_client::HttpClientConfig::new("Latchkey tests"),
                )?,
            },
            None,
            settings,
        );
        let shutdown = CancellationToken::new();
        tokio::spawn(writer.run(shutdown.clone()));
        Ok(CoreFixture {
            core: Arc::new(core),
            store,
            agent,
            published,
            now,
            shutdown,
            db,
            _dir: dir,
        })
    }

    /// The first owner, created at the fixture's time.
    pub async fn owner(&self) -> Result<AuthenticatedAdmin> {
        let token = self
            .core
            .admins
            .bootstrap_owner("owner@example.test", self.now)
            .await?
            .context("the first owner is created once")?;
        self.core
            .admins
            .authenticate_admin(&token)
            .await?
            .context("the owner's token authenticates")
    }

    /// A new enrollment token's secret, made by `admin` at the fixture's
    /// time, valid for a day.
    pub async fn enrollment_token(
        &self,
        admin: &AuthenticatedAdmin,
        group: Option<&str>,
        uses: u32,
    ) -> Result<String> {
        let (_, secret) = self
            .core
            .enrollment
            .create_enrollment_token(
                admin,
                None,
                group.map(str::to_owned),
                chrono::Duration::days(1),
                uses,
                self.now,
            )
            .await?;
        Ok(secret)
    }

    /// Enrolls a device with `secret` at the fixture's time, as an agent
    /// would (a new P-256 key and its CSR).
    pub async fn enroll(&self, secret: &str, hostname: &str) -> Result<Enrolled> {
        let (_, csr) = latchkey_certs::new_key_and_csr(hostname)?;
        let facts = DeviceFacts {
            hostname: hostname.to_owned(),
            platform: "linux".into(),
            os_version: "12".into(),
            ..DeviceFacts::default()
        };
        Ok(self
            .core
            .enrollment
            .enroll(secret, &csr, facts, self.now)
            .await?)
    }

    /// Stops the enrollment writer and drops the fixture's database.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.store.close().await;
        self.db.drop_database().await
    }
}

/// An empty database, not migrated (a SQLite file in a temporary directory,
/// or a new PostgreSQL database when `LATCHKEY_TEST_DATABASE_URL` is set),
/// for tests of the schema's upgrades.
pub struct EmptyDatabase {
    pub url: String,
    db: Db,
    _dir: TempDir,
}

impl EmptyDatabase {
    pub async fn create() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let db = pick_database();
        let url = db.create(dir.path()).await?;
        Ok(EmptyDatabase { url, db, _dir: dir })
    }

    /// Drops the PostgreSQL database; a SQLite file goes with its directory.
    pub async fn drop_database(self) -> Result<()> {
        self.db.drop_database().await
    }
}
