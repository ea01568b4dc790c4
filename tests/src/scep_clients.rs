//! Debian's two SCEP clients, run as the separate programs they are
//! against the server's `/apple/scep`: micromdm's `scepclient` (package
//! `scep`) and certmonger (package `certmonger`: its daemon, `getcert`, and
//! the `scep-submit` helper the daemon runs for every SCEP request).
//!
//! What each needs, and why:
//! - `scepclient` 2.1.0 trusts the HTTPS listener through `SSL_CERT_FILE`
//!   (Go reads it). It encrypts its request to every certificate GetCACert
//!   returns unless `-ca-fingerprint` names one; Latchkey returns the RSA
//!   RA certificate followed by its ECDSA CA chain, and RSA key transport
//!   to an ECDSA key makes `scepclient` panic. So it is given the SHA-256
//!   of the RA certificate, the option it has for servers that answer
//!   GetCACert with more than one certificate.
//! - certmonger 0.79.17 takes the CA of an HTTPS SCEP server with
//!   `scep-submit -R FILE`, but `scep-submit` hands that file to libcurl
//!   only for the first of the two requests it makes per run; the second,
//!   PKIOperation, is checked against the system's trust store alone (and
//!   libcurl reads no environment variable for it). Against a server whose
//!   certificate comes from a private CA, GetCACaps and GetCACert work
//!   over HTTPS, but an enrollment cannot. The tests run those two over
//!   HTTPS and the enrollment through [`PlainHttpFront`], a loopback
//!   plain-HTTP front that forwards `/apple/scep` to the HTTPS listener
//!   unchanged; the server itself serves SCEP over HTTPS only.
//!
//! Every program runs with a deadline and is killed if the test ends
//! first; a missing program fails the test with the package to install.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use latchkey_certs::CertificateInfo;
use latchkey_certs::apns::self_signed_push_certificate;
use rustls_pki_types::{CertificateDer, UnixTime};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::apple::{EnrollmentProfile, https_exchange};
use crate::{DEADLINE, System, wait_until};

/// The topic of the push certificate the SCEP tests enroll under.
pub const TOPIC: &str = "com.apple.mgmt.External.5c0e2a61-8d3b-4f7e-a1c9-2b6d4e8f0a13";

/// `path`, an installed program, or an error naming the Debian package
/// that installs it.
pub fn program(path: &str, package: &str) -> Result<PathBuf> {
    let program = PathBuf::from(path);
    if !program.is_file() {
        bail!(
            "{path} is not installed: install the Debian package `{package}` \
             (scripts/install-test-deps does)"
        );
    }
    Ok(program)
}

/// How a program ended and what it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code (`None` when a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to its end, within [`DEADLINE`]; it is killed if the
/// deadline passes or the test ends first.
pub async fn run(command: &mut Command) -> Result<Finished> {
    let what = format!("{:?}", command.as_std());
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .with_context(|| format!("{what} did not finish within {DEADLINE:?}"))??;
    Ok(Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Imports a push certificate for [`TOPIC`], which `latchctl apple
/// profile` needs before it makes an enrollment profile.
pub async fn import_push_certificate(sys: &System, dir: &Path) -> Result<()> {
    let now = Utc::now();
    let (cert, key) =
        self_signed_push_certificate(TOPIC, now - Duration::days(1), now + Duration::days(365))?;
    let cert_path = dir.join("push.pem");
    let key_path = dir.join("push-key.pem");
    std::fs::write(&cert_path, cert)?;
    std::fs::write(&key_path, key.expose())?;
    sys.ctl(&[
        "apple",
        "push-cert",
        "import",
        "--cert",
        text(&cert_path)?,
        "--key",
        text(&key_path)?,
    ])
    .await?;
    Ok(())
}

/// A new enrollment profile for `user`, as `latchctl apple profile`
/// writes it: its SCEP URL and one-time challenge.
pub async fn enrollment_profile(sys: &System, user: &str) -> Result<EnrollmentProfile> {
    let profile = sys.ctl(&["apple", "profile", "--user", user]).await?;
    EnrollmentProfile::read(profile.as_bytes())
}

/// A path as a command-line argument.
pub fn text(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// The SCEP registration authority's certificate (DER), as the server
/// keeps it in its data directory: requests are encrypted to it.
pub fn ra_certificate(sys: &System) -> Result<Vec<u8>> {
    let pem = std::fs::read_to_string(sys.data_dir().join("scep-ra.pem"))?;
    latchkey_certs::pem_certificates(&pem)?
        .into_iter()
        .next()
        .context("scep-ra.pem holds no certificate")
}

/// Checks that the first certificate of `pem` chains, through the issuing
/// CA, to the deployment's root (the CA file clients are given) and may
/// authenticate a client; returns what it says.
pub fn issued_by_latchkey_ca(sys: &System, pem: &str) -> Result<CertificateInfo> {
    let leaf = latchkey_certs::pem_certificates(pem)?
        .into_iter()
        .next()
        .context("no certificate")?;
    let issuing = latchkey_certs::pem_certificates(&std::fs::read_to_string(
        sys.data_dir().join("issuing-ca.pem"),
    )?)?;
    let mut roots = rustls::RootCertStore::empty();
    for root in latchkey_certs::pem_certificates(&sys.ca_pem)? {
        roots.add(CertificateDer::from(root))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()?;
    let intermediates: Vec<CertificateDer<'_>> =
        issuing.into_iter().map(CertificateDer::from).collect();
    verifier
        .verify_client_cert(
            &CertificateDer::from(leaf.clone()),
            &intermediates,
            UnixTime::now(),
        )
        .context("the certificate does not chain to the Latchkey CA")?;
    Ok(latchkey_certs::inspect_certificate(&leaf)?)
}

/// `scepclient` (package `scep`), enrolling over HTTPS.
pub struct Scepclient {
    program: PathBuf,
    server_url: String,
    ca_file: PathBuf,
    ra_fingerprint: String,
}

/// What one `scepclient` run left behind.
pub struct ScepclientRun {
    pub finished: Finished,
    /// The certificate it wrote, if any.
    pub certificate_pem: Option<String>,
    pub command: String,
}

impl Scepclient {
    pub fn new(sys: &System, server_url: &str) -> Result<Self> {
        Ok(Scepclient {
            program: program("/usr/bin/scepclient", "scep")?,
            server_url: server_url.to_owned(),
            ca_file: sys.ca_path(),
            ra_fingerprint: hex::encode(latchkey_certs::sha256(&ra_certificate(sys)?)),
        })
    }

    /// One enrollment as a new device: a fresh directory (scepclient turns
    /// its request into a RenewalReq when it finds a certificate there),
    /// a new RSA-2048 key, the subject `CN=common_name`.
    pub async fn enroll(
        &self,
        dir: &Path,
        challenge: &str,
        common_name: &str,
    ) -> Result<ScepclientRun> {
        std::fs::create_dir(dir)?;
        let key = dir.join("device.key");
        let certificate = dir.join("device.pem");
        let mut command = Command::new(&self.program);
        command
            .env("SSL_CERT_FILE", &self.ca_file)
            .env_remove("SSL_CERT_DIR")
            .arg("-server-url")
            .arg(&self.server_url)
            .arg("-private-key")
            .arg(&key)
            .arg("-certificate")
            .arg(&certificate)
            .arg("-challenge")
            .arg(challenge)
            .arg("-cn")
            .arg(common_name)
            .arg("-ca-fingerprint")
            .arg(&self.ra_fingerprint);
        let shown = format!("{:?}", command.as_std());
        let finished = run(&mut command).await?;
        Ok(ScepclientRun {
            finished,
            certificate_pem: std::fs::read_to_string(&certificate).ok(),
            command: shown,
        })
    }
}

/// A certmonger daemon of its own: its requests, CAs, local CA and
/// temporary files in a temporary directory, reachable only on a private
/// socket there (no D-Bus), killed when dropped.
pub struct Certmonger {
    dir: TempDir,
    daemon: Child,
    getcert: PathBuf,
    scep_submit: PathBuf,
}

impl Certmonger {
    /// Starts the daemon and waits until `getcert` reaches it.
    pub async fn start() -> Result<Self> {
        let certmonger = program("/usr/sbin/certmonger", "certmonger")?;
        let getcert = program("/usr/bin/getcert", "certmonger")?;
        let scep_submit = program("/usr/lib/certmonger/scep-submit", "certmonger")?;
        let dir = tempfile::tempdir()?;
        for sub in ["requests", "cas", "local", "config", "tmp", "home"] {
            std::fs::create_dir(dir.path().join(sub))?;
        }
        let log = std::fs::File::create(dir.path().join("certmonger.log"))?;
        let mut command = Command::new(certmonger);
        Self::confine(&mut command, dir.path());
        // -L: only the private socket, no bus; -n: stay in the foreground.
        let daemon = command
            .arg("-L")
            .arg("-P")
            .arg(dir.path().join("socket"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start certmonger")?;
        let certmonger = Certmonger {
            dir,
            daemon,
            getcert,
            scep_submit,
        };
        wait_until("certmonger to answer getcert", DEADLINE, || async {
            certmonger
                .getcert(&["list-cas"])
                .await
                .ok()
                .filter(|listed| listed.status.success())
        })
        .await
        .with_context(|| certmonger.log())?;
        Ok(certmonger)
    }

    /// The environment that keeps certmonger's state in `dir` instead of
    /// /var/lib/certmonger and /run/certmonger.
    fn confine(command: &mut Command, dir: &Path) {
        command
            .env("CERTMONGER_REQUESTS_DIR", dir.join("requests"))
            .env("CERTMONGER_CAS_DIR", dir.join("cas"))
            .env("CERTMONGER_LOCAL_CA_DIR", dir.join("local"))
            .env("CERTMONGER_CONFIG_DIR", dir.join("config"))
            .env("CERTMONGER_TMPDIR", dir.join("tmp"))
            .env("HOME", dir.join("home"));
    }

    /// A path in the daemon's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `getcert ARGS` against this daemon.
    pub async fn getcert(&self, args: &[&str]) -> Result<Finished> {
        let mut command = Command::new(&self.getcert);
        Self::confine(&mut command, self.dir.path());
        command.env(
            "CERTMONGER_PVT_ADDRESS",
            format!("unix:path={}", self.path("socket").display()),
        );
        run(command.args(args)).await
    }

    /// Runs the `scep-submit` helper by hand, as `certmonger-scep-submit(8)`
    /// describes for troubleshooting.
    pub async fn scep_submit(&self, args: &[&str]) -> Result<Finished> {
        run(Command::new(&self.scep_submit).args(args)).await
    }

    /// What the daemon logged, for a failure message.
    pub fn log(&self) -> String {
        format!(
            "certmonger's log:\n{}",
            std::fs::read_to_string(self.path("certmonger.log")).unwrap_or_default()
        )
    }

    /// Kills the daemon and waits for it.
    pub async fn stop(mut self) -> Result<()> {
        self.daemon.kill().await?;
        Ok(())
    }
}

/// A plain-HTTP front on loopback for the server's HTTPS SCEP endpoint,
/// for a client that cannot trust a private CA for every request (see the
/// module header): each request to `/apple/scep` is sent on as it came
/// (method, query, body, content type) over HTTPS, trusting only the
/// deployment's CA, and the answer comes back with its status, content
/// type and body. Nothing else is served. Stops when dropped.
pub struct PlainHttpFront {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

struct Upstream {
    addr: SocketAddr,
    ca_pem: String,
}

impl PlainHttpFront {
    pub async fn start(sys: &System) -> Result<Self> {
        let upstream = Arc::new(Upstream {
            addr: sys.running().https_addr,
            ca_pem: sys.ca_pem.clone(),
        });
        let router = axum::Router::new()
            .route("/apple/scep", axum::routing::any(forward))
            .with_state(upstream);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(PlainHttpFront { addr, task })
    }

    /// The SCEP URL through this front.
    pub fn scep_url(&self) -> String {
        format!("http://{}/apple/scep", self.addr)
    }
}

impl Drop for PlainHttpFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    State(upstream): State<Arc<Upstream>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let content_type: Vec<(&str, String)> = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| ("Content-Type", v.to_owned()))
        .into_iter()
        .collect();
    match https_exchange(
        upstream.addr,
        &upstream.ca_pem,
        method.as_str(),
        path,
        &content_type,
        &body,
    )
    .await
    {
        Ok((status, answer_headers, answer)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = (status, answer).into_response();
            if let Some(value) = answer_headers
                .get("content-type")
                .and_then(|v| v.parse().ok())
            {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
