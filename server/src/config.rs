//! Configuration: the TOML file (`FileConfig`, unknown keys refused) and
//! command-line overrides, validated into the `Config` the server runs on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::sso::MfaSetting;
use crate::domain::networks::Cidr;
use crate::mail::{SmtpSettings, SmtpTls};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub listen: FileListen,
    #[serde(default)]
    pub database: FileDatabase,
    #[serde(default)]
    pub mqtt: FileMqtt,
    #[serde(default)]
    pub tls: FileTls,
    #[serde(default)]
    pub devices: FileDevices,
    #[serde(default)]
    pub admin: FileAdmin,
    #[serde(default)]
    pub sso: FileSso,
    #[serde(default)]
    pub https: FileHttps,
    /// Outgoing mail for emailed sign-in codes; none without it.
    pub smtp: Option<FileSmtp>,
    #[serde(default)]
    pub apple: FileApple,
}

/// `[apple]`: Apple device management.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileApple {
    /// `production` (default) or `sandbox`: which APNs environment pushes
    /// go to. APNs is reached through the `a2` crate, whose two endpoints
    /// are fixed.
    pub apns: Option<String>,
    /// Where Apple devices reach the server (`https://host[:port]`): the
    /// enrollment profile's check-in, command and SCEP URLs start with it.
    /// Default: the SSO issuer.
    pub base_url: Option<String>,
    /// The organization enrollment profiles name. Default: `Latchkey`.
    pub organization: Option<String>,
    /// Whether signed-in users may download an enrollment profile for
    /// their own device at `/apple/enroll` (after a second factor).
    /// Default: true.
    pub enrollment_page: Option<bool>,
    /// Apple's Automated Device Enrollment service. Default:
    /// `https://mdmenrollment.apple.com`; plain http only on loopback (a
    /// fake in tests).
    pub dep_base_url: Option<String>,
    /// How often every ADE token's device list is synced, e.g. `5m`.
    /// Default: 5 minutes.
    pub dep_sync_interval: Option<String>,
    /// How old an Apple device's reported facts (OS version, passcode,
    /// FileVault or Data Protection) may grow before it is asked again,
    /// e.g. `4h`; keep it below the policies' `max_posture_age`. Default:
    /// 4 hours.
    pub inventory_interval: Option<String>,
    /// Whether a device enrolling through Automated Device Enrollment
    /// first has its user sign in to Latchkey (password and second
    /// factor) in Setup Assistant, and enrolls as that user's. Default:
    /// false.
    pub dep_sign_in: Option<bool>,
    /// Renew a device's MDM identity certificate when it expires within
    /// this many days. Default: 30.
    pub identity_renewal_days: Option<u32>,
    /// How often the server looks for identities to renew, e.g. `1h`.
    /// Default: 1 hour.
    pub identity_renewal_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSmtp {
    pub host: String,
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    pub tls: Option<String>,
    /// The From address, e.g. `Latchkey <no-reply@example.com>`.
    pub sender: String,
    pub username: Option<String>,
    /// A file holding the password (the configuration never does).
    pub password_file: Option<PathBuf>,
    /// A PEM file with the CA of a server whose certificate is private.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSso {
    /// The issuer URL relying parties see, e.g. `https://id.example.com`.
    pub issuer: Option<String>,
    pub access_token_ttl: Option<String>,
    /// In `bound` mode, require the agent's answer to come from the
    /// browser's IP address (default true; turn off behind proxies that
    /// hide it).
    pub bound_requires_same_ip: Option<bool>,
    /// The least second factor users may choose: `off` (default), `risk`
    /// or `always`.
    pub user_mfa_minimum: Option<String>,
    /// CIDR blocks browsers may sign in from, for every app; empty: any.
    pub allowed_networks: Option<Vec<String>>,
    /// The URL phones and tablets reach the device-certificate listener at;
    /// default: the issuer's host on that listener's port.
    pub device_url: Option<String>,
    /// Whom users are told to contact when a sign-in was not theirs, e.g.
    /// `helpdesk@example.co.jp / 03-1234-5678`; default: "your IT
    /// department".
    pub support_contact: Option<String>,
}

/// How long the HTTPS listeners wait for a client, and how many clients
/// they serve at once. Durations such as `10s`, `1m` or `300ms`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHttps {
    /// Time to receive a request's header block once the server waits for
    /// one (default 10s).
    pub header_timeout: Option<String>,
    /// Time a connection may stay open with no request in flight (default
    /// 60s).
    pub idle_timeout: Option<String>,
    /// Time to receive a request's body, from its header on (default 30s).
    pub body_timeout: Option<String>,
    /// Connections served at once per listener (default 10000).
    pub max_connections: Option<usize>,
    /// CIDR blocks of the load balancers or reverse proxies in front of
    /// the HTTPS listener whose `X-Forwarded-For` is believed; with none,
    /// forwarded headers are ignored and the TCP peer is the client.
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileListen {
    pub grpc: Option<String>,
    pub mqtt: Option<String>,
    pub https: Option<String>,
    /// The HTTPS listener that asks for a device certificate (the mobile
    /// path of device-bound login).
    pub https_device: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDatabase {
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMqtt {
    /// `mqtts://host:port` of an external broker; the embedded one otherwise.
    pub external: Option<String>,
    /// The URL agents are told to connect to.
    pub advertise: Option<String>,
    /// Most device sessions the embedded broker's gateway holds at once;
    /// default: as many as the descriptor limit allows.
    pub max_sessions: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    /// Names in the server certificate.
    pub names: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDevices {
    pub certificate_validity: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    /// Email of the owner created at first start.
    pub bootstrap_email: Option<String>,
}

/// Command-line overrides.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen_grpc: Option<String>,
    pub listen_mqtt: Option<String>,
    pub listen_https: Option<String>,
    pub listen_https_device: Option<String>,
}

pub const DEFAULT_GRPC: &str = "127.0.0.1:7443";
pub const DEFAULT_MQTT: &str = "127.0.0.1:8883";
pub const DEFAULT_HTTPS: &str = "127.0.0.1:8443";
pub const DEFAULT_HTTPS_DEVICE: &str = "127.0.0.1:8444";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttMode {
    Embedded { listen: SocketAddr },
    External { url: String },
}

/// A database URL; `Debug` hides its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = &self.0;
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = url.get(scheme + 3..at).unwrap_or("");
                let user = userinfo.split(':').next().unwrap_or("");
                let (head, tail) = (
                    url.get(..scheme + 3).unwrap_or(""),
                    url.get(at..).unwrap_or(""),
                );
                write!(f, "{head}{user}:[redacted]{tail}")
            }
            _ => f.write_str(url),
        }
    }
}

/// Longest device certificate lifetime: well inside the issuing CA's.
const MAX_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(397 * 86400);

/// Timeouts and the connection cap of the HTTPS listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpsLimits {
    /// A browser sends its request head in one go; 10 s covers a slow
    /// mobile link, and a client that trickles its header (slowloris) is
    /// cut off after it.
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this, also
    /// one whose client stopped reading an answer; browsers reopen one in
    /// a round trip. (Between HTTP/1.1 requests the header timeout runs
    /// too, and is usually the shorter.)
    pub idle_timeout: Duration,
    /// A body shorter than its Content-Length, or a chunk that never ends,
    /// holds a request until this runs out (bodies here are at most 64 KiB).
    pub body_timeout: Duration,
    /// Connections served at once per listener; more wait in the backlog.
    pub max_connections: usize,
}

impl HttpsLimits {
    /// What a listener uses unless `[https]` says otherwise.
    pub const DEFAULT: HttpsLimits = HttpsLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(30),
        max_connections: 10_000,
    };
}

/// A timeout from the configuration: a duration (`10s`, `1m`) or a number
/// of milliseconds (`300ms`), from 1 ms to 1 hour.
fn timeout(key: &str, text: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let parsed = match text.trim().strip_suffix("ms") {
        Some(ms) => ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{text:?} must be a whole number of ms")),
        None => latchkey_proto::text::parse_duration(text).map_err(|e| e.to_string()),
    }
    .map_err(|e| ConfigError::Invalid(format!("{key}: {e}")))?;
    if parsed < Duration::from_millis(1) || parsed > Duration::from_secs(3600) {
        return Err(ConfigError::Invalid(format!(
            "{key} must be between 1ms and 1h"
        )));
    }
    Ok(parsed)
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub listen_grpc: SocketAddr,
    pub listen_https: SocketAddr,
    pub listen_https_device: SocketAddr,
    pub mqtt: MqttMode,
    pub mqtt_advertise: Option<String>,
    /// `None`: as many as the descriptor limit allows.
    pub mqtt_max_sessions: Option<usize>,
    pub https: HttpsLimits,
    pub tls_names: Vec<String>,
    pub device_certificate_validity: Duration,
    pub bootstrap_email: String,
    /// `None`: `https://localhost:<HTTPS port>`.
    pub sso_issuer: Option<String>,
    /// `None`: the issuer's host on the device listener's port.
    pub sso_device_url: Option<String>,
    pub access_token_ttl: Duration,
    pub bound_requires_same_ip: bool,
    pub user_mfa_minimum: MfaSetting,
    pub allowed_networks: Vec<Cidr>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<Cidr>,
    pub support_contact: String,
    pub smtp: Option<SmtpSettings>,
    pub apns: crate::push::apns::ApnsEnvironment,
    pub apple_base_url: Option<String>,
    pub apple_organization: String,
    pub apple_enrollment_page: bool,
    pub apple_dep_base_url: String,
    pub apple_dep_sync_interval: Duration,
    pub apple_inventory_interval: Duration,
    /// `[apple] dep_sign_in`.
    pub apple_dep_sign_in: bool,
    /// Renew an Apple identity certificate that expires within this.
    pub apple_identity_renewal_window: Duration,
    pub apple_identity_renewal_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn addr(what: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "{what}: {text:?} is not an address such as 127.0.0.1:8883"
        ))
    })
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim().to_owned(),
        })
    }

    pub fn validate(self, overrides: Overrides) -> Result<Config, ConfigError> {
        let data_dir = overrides
            .data_dir
            .or(self.data_dir)
            .unwrap_or_else(|| PathBuf::from("./latchkey-data"));
        let database_url = match self.database.url {
            Some(url)
                if url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.starts_with("sqlite:") =>
            {
                url
            }
            Some(url) => {
                return Err(ConfigError::Invalid(format!(
                    "database.url {url:?} must start with postgres:// or sqlite:"
                )));
            }
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("latchkey.db").display()
            ),
        };
        let listen_grpc = addr(
            "listen.grpc",
            overrides
                .listen_grpc
                .as_deref()
                .or(self.listen.grpc.as_deref())
                .unwrap_or(DEFAULT_GRPC),
        )?;
        let listen_https = addr(
            "listen.https",
            overrides
                .listen_https
                .as_deref()
                .or(self.listen.https.as_deref())
                .unwrap_or(DEFAULT_HTTPS),
        )?;
        let listen_https_device = addr(
            "listen.https_device",
            overrides
                .listen_https_device
                .as_deref()
                .or(self.listen.https_device.as_deref())
                .unwrap_or(DEFAULT_HTTPS_DEVICE),
        )?;
        let sso_device_url = match self.sso.device_url {
            Some(url) => {
                let parsed = url::Url::parse(&url)
                    .map_err(|e| ConfigError::Invalid(format!("sso.device_url {url:?}: {e}")))?;
                if parsed.scheme() != "https" || parsed.query().is_some() {
                    return Err(ConfigError::Invalid(format!(
                        "sso.device_url {url:?} must be an https URL without query"
                    )));
                }
                Some(url.trim_end_matches('/').to_owned())
            }
            None => None,
        };
        let mqtt = match self.mqtt.external {
            Some(url) => {
                latchkey_proto::text::parse_mqtts_url(&url)
                    .map_err(|e| ConfigError::Invalid(e.to_string()))?;
                MqttMode::External { url }
            }
            None => MqttMode::Embedded {
                listen: addr(
                    "listen.mqtt",
                    overrides
                        .listen_mqtt
                        .as_deref()
                        .or(self.listen.mqtt.as_deref())
                        .unwrap_or(DEFAULT_MQTT),
                )?,
            },
        };
        let device_certificate_validity = match self.devices.certificate_validity {
            Some(text) => latchkey_proto::text::parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("devices.certificate_validity: {e}")))?,
            None => Duration::from_secs(30 * 86400),
        };
        if device_certificate_validity < Duration::from_secs(3600)
            || device_certificate_validity > MAX_CERTIFICATE_VALIDITY
        {
            return Err(ConfigError::Invalid(
                "devices.certificate_validity must be between 1h and 397d".into(),
            ));
        }
        let sso_issuer = match self.sso.issuer {
            Some(issuer) => {
                let url = url::Url::parse(&issuer)
                    .map_err(|e| ConfigError::Invalid(format!("sso.issuer {issuer:?}: {e}")))?;
                if url.scheme() != "https" || url.query().is_some() || url.fragment().is_some() {
                    return Err(ConfigError::Invalid(format!(
                        "sso.issuer {issuer:?} must be an https URL without query or fragment"
                    )));
                }
                Some(issuer.trim_end_matches('/').to_owned())
            }
            None => None,
        };
        let access_token_ttl = match self.sso.access_token_ttl {
            Some(text) => latchkey_proto::text::parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("sso.access_token_ttl: {e}")))?,
            None => Duration::from_secs(15 * 60),
        };
        if access_token_ttl < Duration::from_secs(60)
            || access_token_ttl > Duration::from_secs(86400)
        {
            return Err(ConfigError::Invalid(
                "sso.access_token_ttl must be between 1m and 24h".into(),
            ));
        }
        let user_mfa_minimum = match self.sso.user_mfa_minimum.as_deref() {
            None => MfaSetting::Off,
            Some(text) => MfaSetting::parse(text).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "sso.user_mfa_minimum {text:?}: use off, risk or always"
                ))
            })?,
        };
        let allowed_networks =
            crate::domain::networks::parse_all(&self.sso.allowed_networks.unwrap_or_default())
                .map_err(|e| ConfigError::Invalid(format!("sso.allowed_networks: {e}")))?;
        let smtp = self.smtp.map(FileSmtp::validate).transpose()?;
        let apple_base_url = match self.apple.base_url.as_deref() {
            None => None,
            Some(text) => match url::Url::parse(text) {
                Ok(url)
                    if url.scheme() == "https"
                        && url.host_str().is_some()
                        && url.query().is_none() =>
                {
                    Some(text.trim_end_matches('/').to_owned())
                }
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "apple.base_url {text:?}: give an https URL such as https://mdm.example.com"
                    )));
                }
            },
        };
        let apple_dep_base_url = match self.apple.dep_base_url.as_deref() {
            None => crate::dep::APPLE_DEP_BASE_URL.to_owned(),
            Some(text) => match url::Url::parse(text) {
                Ok(url) if url.query().is_none() && crate::http_client::check_url(&url).is_ok() => {
                    text.trim_end_matches('/').to_owned()
                }
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "apple.dep_base_url {text:?}: give an https URL (http only on loopback)"
                    )));
                }
            },
        };
        let apple_dep_sync_interval = match self.apple.dep_sync_interval.as_deref() {
            None => Duration::from_secs(300),
            Some(text) => match latchkey_proto::text::parse_duration(text) {
                Ok(d) if d >= Duration::from_secs(10) => d,
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "apple.dep_sync_interval {text:?}: give a duration of 10s or more, e.g. 5m"
                    )));
                }
            },
        };
        let apple_inventory_interval = match self.apple.inventory_interval.as_deref() {
            None => Duration::from_secs(4 * 3600),
            Some(text) => match latchkey_proto::text::parse_duration(text) {
                Ok(d) if d >= Duration::from_secs(300) => d,
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "apple.inventory_interval {text:?}: give a duration of 5m or more, e.g. 4h"
                    )));
                }
            },
        };
        let apple_identity_renewal_window = match self.apple.identity_renewal_days {
            None => Duration::from_secs(30 * 24 * 3600),
            Some(days @ 1..=180) => Duration::from_secs(u64::from(days) * 24 * 3600),
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "apple.identity_renewal_days {other}: give 1 to 180 days (identity \
                     certificates are valid for a year)"
                )));
            }
        };
        let apple_identity_renewal_interval = match self.apple.identity_renewal_interval.as_deref()
        {
            None => Duration::from_secs(3600),
            Some(text) => match latchkey_proto::text::parse_duration(text) {
                Ok(d) if d >= Duration::from_secs(1) => d,
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "apple.identity_renewal_interval {text:?}: give a duration of 1s or \
                             more, e.g. 1h"
                    )));
                }
            },
        };
        let apns = match self.apple.apns.as_deref() {
            None | Some("production") => crate::push::apns::ApnsEnvironment::Production,
            Some("sandbox") => crate::push::apns::ApnsEnvironment::Sandbox,
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "apple.apns {other:?}: use production or sandbox"
                )));
            }
        };
        let trusted_proxies =
            crate::domain::networks::parse_all(&self.https.trusted_proxies.unwrap_or_default())
                .map_err(|e| ConfigError::Invalid(format!("https.trusted_proxies: {e}")))?;
        let support_contact = self.sso.support_contact.unwrap_or_default();
        if support_contact.chars().count() > 200 || support_contact.chars().any(char::is_control) {
            return Err(ConfigError::Invalid(
                "sso.support_contact must be one line of at most 200 characters".into(),
            ));
        }
        let defaults = HttpsLimits::DEFAULT;
        let https = HttpsLimits {
            header_timeout: timeout(
                "https.header_timeout",
                self.https.header_timeout.as_deref(),
                defaults.header_timeout,
            )?,
            idle_timeout: timeout(
                "https.idle_timeout",
                self.https.idle_timeout.as_deref(),
                defaults.idle_timeout,
            )?,
            body_timeout: timeout(
                "https.body_timeout",
                self.https.body_timeout.as_deref(),
                defaults.body_timeout,
            )?,
            max_connections: match self.https.max_connections {
                Some(0) => {
                    return Err(ConfigError::Invalid(
                        "https.max_connections must be at least 1".into(),
                    ));
                }
                Some(n) => n,
                None => defaults.max_connections,
            },
        };
        Ok(Config {
            data_dir,
            database_url: DatabaseUrl(database_url),
            listen_grpc,
            listen_https,
            listen_https_device,
            sso_device_url,
            mqtt,
            mqtt_advertise: self.mqtt.advertise,
            mqtt_max_sessions: self.mqtt.max_sessions,
            https,
            tls_names: self
                .tls
                .names
                .unwrap_or_else(|| vec!["localhost".into(), "127.0.0.1".into()]),
            device_certificate_validity,
            bootstrap_email: self
                .admin
                .bootstrap_email
                .unwrap_or_else(|| "owner@localhost".into()),
            sso_issuer,
            access_token_ttl,
            bound_requires_same_ip: self.sso.bound_requires_same_ip.unwrap_or(true),
            user_mfa_minimum,
            allowed_networks,
            trusted_proxies,
            support_contact,
            smtp,
            apns,
            apple_base_url,
            apple_enrollment_page: self.apple.enrollment_page.unwrap_or(true),
            apple_organization: self
                .apple
                .organization
                .filter(|o| !o.trim().is_empty())
                .unwrap_or_else(|| "Latchkey".into()),
            apple_dep_base_url,
            apple_dep_sync_interval,
            apple_inventory_interval,
            apple_dep_sign_in: self.apple.dep_sign_in.unwrap_or(false),
            apple_identity_renewal_window,
            apple_identity_renewal_interval,
        })
    }
}

impl FileSmtp {
    fn validate(self) -> Result<SmtpSettings, ConfigError> {
        let tls = match self.tls.as_deref() {
            None => SmtpTls::StartTls,
            Some(text) => SmtpTls::parse(text).ok_or_else(|| {
                ConfigError::Invalid(format!("smtp.tls {text:?}: use starttls, tls or none"))
            })?,
        };
        if self.host.trim().is_empty() {
            return Err(ConfigError::Invalid("smtp.host is empty".into()));
        }
        let password = match &self.password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read {
                        path: path.clone(),
                        source,
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            None => None,
        };
        if password.is_some() != self.username.is_some() {
            return Err(ConfigError::Invalid(
                "smtp.username and smtp.password_file go together".into(),
            ));
        }
        if password.is_some() && tls == SmtpTls::None {
            return Err(ConfigError::Invalid(
                "smtp: a password is never sent without TLS; set smtp.tls".into(),
            ));
        }
        Ok(SmtpSettings {
            port: self.port.unwrap_or(tls.default_port()),
            host: self.host,
            tls,
            sender: self.sender,
            username: self.username,
            password,
            ca_file: self.ca_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_local_and_embedded() {
        let config = FileConfig::default()
            .validate(Overrides::default())
            .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./latchkey-data"));
        assert!(
            config
                .database_url
                .expose()
                .starts_with("sqlite://./latchkey-data/latchkey.db")
        );
        assert_eq!(
            config.mqtt,
            MqttMode::Embedded {
                listen: DEFAULT_MQTT.parse().unwrap()
            }
        );
    }

    #[test]
    fn database_passwords_do_not_print() {
        let file: FileConfig =
            toml::from_str("[database]\nurl = \"postgres://lk:s3cret@db:5432/lk\"").unwrap();
        let config = file.validate(Overrides::default()).unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("postgres://lk:[redacted]@db:5432/lk"),
            "{printed}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<FileConfig>("[listen]\ngrcp = \"x\"").is_err());
        let bad: FileConfig = toml::from_str("[listen]\ngrpc = \"nowhere\"").unwrap();
        assert!(
            bad.validate(Overrides::default())
                .unwrap_err()
                .to_string()
                .contains("listen.grpc")
        );
        let bad: FileConfig = toml::from_str("[mqtt]\nexternal = \"tcp://x:1\"").unwrap();
        assert!(bad.validate(Overrides::default()).is_err());
        let bad: FileConfig =
            toml::from_str("[devices]\ncertificate_validity = \"100000000d\"").unwrap();
        assert!(bad.validate(Overrides::default()).is_err());
        let bad: FileConfig = toml::from_str("[https]\nheader_timeout = \"0ms\"").unwrap();
        assert!(bad.validate(Overrides::default()).is_err());
    }

    #[test]
    fn https_timeouts_take_milliseconds_or_durations() {
        let file: FileConfig = toml::from_str(
            "[https]\nheader_timeout = \"300ms\"\nidle_timeout = \"2m\"\nmax_connections = 5",
        )
        .unwrap();
        let https = file.validate(Overrides::default()).unwrap().https;
        assert_eq!(https.header_timeout, Duration::from_millis(300));
        assert_eq!(https.idle_timeout, Duration::from_secs(120));
        assert_eq!(https.body_timeout, HttpsLimits::DEFAULT.body_timeout);
        assert_eq!(https.max_connections, 5);
    }

    #[test]
    fn apple_identity_renewal_has_defaults_and_bounds() {
        let config = FileConfig::default()
            .validate(Overrides::default())
            .unwrap();
        assert_eq!(
            config.apple_identity_renewal_window,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert_eq!(
            config.apple_identity_renewal_interval,
            Duration::from_secs(3600)
        );
        let file: FileConfig = toml::from_str(
            "[apple]\nidentity_renewal_days = 45\nidentity_renewal_interval = \"10m\"",
        )
        .unwrap();
        let config = file.validate(Overrides::default()).unwrap();
        assert_eq!(
            config.apple_identity_renewal_window,
            Duration::from_secs(45 * 24 * 3600)
        );
        assert_eq!(
            config.apple_identity_renewal_interval,
            Duration::from_secs(600)
        );
        for bad in [
            "[apple]\nidentity_renewal_days = 0",
            "[apple]\nidentity_renewal_days = 400",
            "[apple]\nidentity_renewal_interval = \"0s\"",
            "[apple]\nidentity_renewal_interval = \"soon\"",
        ] {
            let file: FileConfig = toml::from_str(bad).unwrap();
            let refused = file.validate(Overrides::default()).unwrap_err().to_string();
            assert!(
                refused.contains("apple.identity_renewal"),
                "{bad}: {refused}"
            );
        }
    }
}
