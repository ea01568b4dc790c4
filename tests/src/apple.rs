//! A simulated Apple device, as an iPhone or a Mac behaves toward an MDM
//! server: it reads the enrollment profile, gets its identity certificate
//! over real SCEP with the profile's challenge, signs every check-in and
//! command report (`Mdm-Signature`), and runs Apple's command state
//! machine: Idle, then each command answered Acknowledged, Error or NotNow
//! as the test tells it, until the server has nothing more. An
//! InstallProfile that carries an enrollment profile (an identity renewal)
//! is installed as a device does: SCEP again with the profile's challenge,
//! and from then on the new identity signs every message.
//!
//! Its property lists are written here with the `plist` crate from the
//! keys of Apple's schema, not with the server's codecs, so the server's
//! decoders are checked against an independent writer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use base64::Engine;
use chrono::Utc;
use latchkey_certs::PrivateKeyPem;
use latchkey_certs::scep::{
    CertRepStatus, ContentEncryption, DigestAlgorithm, Requester, decode_ca_cert_response,
};
use plist::{Dictionary, Value};

/// How the device answers a command of a given `RequestType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Acknowledged,
    NotNow,
    Error,
}

/// What the server sent the device, in order.
#[derive(Debug, Clone)]
pub struct Received {
    pub command_uuid: String,
    pub request_type: String,
    pub command: Dictionary,
}

/// What the enrollment profile told the device.
#[derive(Debug, Clone)]
pub struct EnrollmentProfile {
    pub server_url: String,
    pub check_in_url: String,
    pub topic: String,
    pub scep_url: String,
    pub scep_challenge: String,
    pub scep_name: Option<String>,
    pub sign_message: bool,
}

fn payloads(profile: &Value) -> Result<Vec<&Dictionary>> {
    Ok(profile
        .as_dictionary()
        .and_then(|d| d.get("PayloadContent"))
        .and_then(Value::as_array)
        .context("the profile has no PayloadContent")?
        .iter()
        .filter_map(Value::as_dictionary)
        .collect())
}

fn text(dict: &Dictionary, key: &str) -> Result<String> {
    dict.get(key)
        .and_then(Value::as_string)
        .map(str::to_owned)
        .with_context(|| format!("the payload has no {key}"))
}

impl EnrollmentProfile {
    /// Reads the `.mobileconfig` (XML) as the device's profile installer
    /// would.
    pub fn read(bytes: &[u8]) -> Result<Self> {
        let profile = Value::from_reader_xml(bytes).context("the profile is not a plist")?;
        let all = payloads(&profile)?;
        let of_type = |t: &str| {
            all.iter()
                .copied()
                .find(|p| p.get("PayloadType").and_then(Value::as_string) == Some(t))
                .with_context(|| format!("the profile has no {t} payload"))
        };
        let mdm = of_type("com.apple.mdm")?;
        let scep = of_type("com.apple.security.scep")?;
        let scep_content = scep
            .get("PayloadContent")
            .and_then(Value::as_dictionary)
            .context("the SCEP payload has no PayloadContent")?;
        let identity_uuid = text(mdm, "IdentityCertificateUUID")?;
        if identity_uuid != text(scep, "PayloadUUID")? {
            bail!("IdentityCertificateUUID does not name the SCEP payload");
        }
        let server_url = text(mdm, "ServerURL")?;
        Ok(EnrollmentProfile {
            check_in_url: text(mdm, "CheckInURL").unwrap_or_else(|_| server_url.clone()),
            server_url,
            topic: text(mdm, "Topic")?,
            scep_url: text(scep_content, "URL")?,
            scep_challenge: text(scep_content, "Challenge")?,
            scep_name: text(scep_content, "Name").ok(),
            sign_message: mdm
                .get("SignMessage")
                .and_then(Value::as_boolean)
                .unwrap_or(false),
        })
    }
}

/// One HTTPS exchange with the server (HTTP/1.1, one request per
/// connection): the status, the headers (lower-case names) and the body.
pub async fn https_exchange(
    addr: SocketAddr,
    ca_pem: &str,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<(u16, BTreeMap<String, String>, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tls = latchkey_certs::tls::client_config(ca_pem, None)?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let mut head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    // A server refusing a body too large may answer and close before the
    // body is through; its answer is what counts.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    // The server may close without close_notify; what arrived is the answer.
    let _ = stream.read_to_end(&mut response).await;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header")?;
    let head = String::from_utf8_lossy(response.get(..split).unwrap_or_default()).into_owned();
    let body = response.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no status")?
        .parse()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers, body))
}

fn path_of(url: &str) -> Result<String> {
    let url = url::Url::parse(url)?;
    Ok(url.path().to_owned())
}

fn pem_of(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

fn xml(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    value.to_writer_xml(&mut out)?;
    Ok(out)
}

/// An identity certificate SCEP issued, with its key.
#[derive(Clone)]
pub struct Identity {
    /// The certificate, PEM.
    pub pem: String,
    pub der: Vec<u8>,
    pub key: PrivateKeyPem,
    /// The certificate and the CA chain SCEP sent with it, PEM.
    pub chain: String,
    /// The certificate and key, read once: the device signs every message.
    pub signer: std::sync::Arc<latchkey_certs::cms::Signer>,
}

/// A simulated iPhone or Mac.
pub struct SimulatedAppleDevice {
    pub udid: String,
    pub serial: String,
    pub product_name: String,
    pub os_version: String,
    pub push_token: Vec<u8>,
    pub push_magic: String,
    pub profile: EnrollmentProfile,
    server: SocketAddr,
    ca_pem: String,
    /// Replaced when an enrollment profile is installed again.
    identity: Arc<Mutex<Option<Identity>>>,
    answers: Arc<Mutex<BTreeMap<String, Answer>>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// What SecurityInfo reports: passcode present, FileVault on.
    pub passcode_present: bool,
    /// Send the PKIOperation over GET with the base64 message unescaped in
    /// the query (as careless clients do), instead of POST.
    pub scep_over_get: bool,
    /// The RSA key SCEP certifies; a new one when absent (a simulated
    /// fleet brings keys it made earlier: making one takes tens of ms).
    pub scep_key: Option<PrivateKeyPem>,
}

impl SimulatedAppleDevice {
    /// An iPhone that has the enrollment profile in hand.
    pub fn iphone(profile: EnrollmentProfile, server: SocketAddr, ca_pem: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        SimulatedAppleDevice {
            udid: format!("00008110-{}", id.get(..16).unwrap_or_default()),
            serial: format!("F{}", id.get(..10).unwrap_or_default()),
            product_name: "iPhone15,2".into(),
            os_version: "18.1".into(),
            push_token: uuid::Uuid::new_v4().as_bytes().repeat(2),
            push_magic: uuid::Uuid::new_v4().to_string().to_uppercase(),
            profile,
            server,
            ca_pem: ca_pem.to_owned(),
            identity: Arc::default(),
            answers: Arc::default(),
            received: Arc::default(),
            passcode_present: true,
            scep_over_get: false,
            scep_key: None,
        }
    }

    /// A Mac.
    pub fn mac(profile: EnrollmentProfile, server: SocketAddr, ca_pem: &str) -> Self {
        SimulatedAppleDevice {
            product_name: "Mac14,2".into(),
            os_version: "15.1".into(),
            ..Self::iphone(profile, server, ca_pem)
        }
    }

    /// Answer commands of `request_type` so from now on (default:
    /// Acknowledged).
    pub fn answer(&self, request_type: &str, answer: Answer) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(request_type.to_owned(), answer);
        }
    }

    /// Every command received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The identity the device signs with now.
    pub fn identity(&self) -> Option<Identity> {
        self.identity.lock().ok().and_then(|i| i.clone())
    }

    /// Signs with `identity` from now on (a copied identity, or one the
    /// device held before).
    pub fn use_identity(&self, identity: Identity) {
        if let Ok(mut held) = self.identity.lock() {
            *held = Some(identity);
        }
    }

    /// The identity as a TLS client presents it: the certificate with the
    /// CA chain (PEM), and the key.
    pub fn tls_identity(&self) -> Option<(String, PrivateKeyPem)> {
        self.identity().map(|i| (i.chain, i.key))
    }

    /// The identity certificate SCEP issued (DER).
    pub fn identity_der(&self) -> Option<Vec<u8>> {
        self.identity().map(|i| i.der)
    }

    /// The identity certificate (PEM) and its key, as an attacker who
    /// copied them off the device would hold them.
    pub fn identity_pem(&self) -> Option<(String, PrivateKeyPem)> {
        self.identity().map(|i| (i.pem, i.key))
    }

    /// PUTs `bytes` to `url` with exactly `headers` (nothing added).
    pub async fn put_with_headers(
        &self,
        url: &str,
        headers: &[(&str, String)],
        bytes: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let (status, _, body) = self.exchange("PUT", &path_of(url)?, headers, bytes).await?;
        Ok((status, body))
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<(u16, BTreeMap<String, String>, Vec<u8>)> {
        https_exchange(self.server, &self.ca_pem, method, path, headers, body).await
    }

    /// Gets the identity certificate over SCEP, as the profile's SCEP
    /// payload says; returns the server's failInfo when refused.
    pub async fn scep_enroll(&mut self) -> Result<std::result::Result<(), String>> {
        let profile = self.profile.clone();
        self.install_identity(&profile).await
    }

    /// Installs an enrollment profile received as InstallProfile (XML), as
    /// a device replaces its installed one: SCEP with its challenge, then
    /// the new identity signs. Refused, the device keeps its identity.
    pub async fn install_enrollment_profile(
        &self,
        bytes: &[u8],
    ) -> Result<std::result::Result<(), String>> {
        let profile = EnrollmentProfile::read(bytes)?;
        if profile.topic != self.profile.topic || profile.server_url != self.profile.server_url {
            return Ok(Err("the profile is for another enrollment".into()));
        }
        self.install_identity(&profile).await
    }

    /// SCEP as `profile` says; on success the issued certificate becomes
    /// the device's identity.
    async fn install_identity(
        &self,
        profile: &EnrollmentProfile,
    ) -> Result<std::result::Result<(), String>> {
        let path = path_of(&profile.scep_url)?;
        let (status, _, caps) = self
            .exchange("GET", &format!("{path}?operation=GetCACaps"), &[], b"")
            .await?;
        if status != 200 {
            bail!("GetCACaps answered {status}");
        }
        let caps = String::from_utf8_lossy(&caps).into_owned();
        let (digest, encryption) = if caps.contains("SHA-256") && caps.contains("AES") {
            (DigestAlgorithm::Sha256, ContentEncryption::Aes128Cbc)
        } else {
            (DigestAlgorithm::Sha1, ContentEncryption::DesEde3Cbc)
        };
        let name = profile.scep_name.clone().unwrap_or_default();
        let (status, headers, certs) = self
            .exchange(
                "GET",
                &format!(
                    "{path}?operation=GetCACert&message={}",
                    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
                ),
                &[],
                b"",
            )
            .await?;
        if status != 200 {
            bail!("GetCACert answered {status}");
        }
        if headers.get("content-type").map(String::as_str) != Some("application/x-x509-ca-ra-cert")
        {
            bail!(
                "GetCACert's content type is {:?}",
                headers.get("content-type")
            );
        }
        let certs = decode_ca_cert_response(&certs)?;
        let ra = certs
            .first()
            .context("GetCACert sent no certificate")?
            .clone();
        let requester = match &self.scep_key {
            Some(key) => Requester::for_key(key, &self.udid, Utc::now())?,
            None => Requester::generate(&self.udid, Utc::now())?,
        };
        let csr = requester.csr("Latchkey device identity", &profile.scep_challenge, digest)?;
        let (message, transaction) =
            requester.pkcs_req(&csr, &ra, digest, encryption, Utc::now())?;
        let (status, headers, reply) = if self.scep_over_get {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&message);
            self.exchange(
                "GET",
                &format!("{path}?operation=PKIOperation&message={b64}"),
                &[],
                b"",
            )
            .await?
        } else {
            self.exchange(
                "POST",
                &format!("{path}?operation=PKIOperation"),
                &[("Content-Type", "application/x-pki-message".into())],
                &message,
            )
            .await?
        };
        if status != 200 {
            return Ok(Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&reply)
            )));
        }
        if headers.get("content-type").map(String::as_str) != Some("application/x-pki-message") {
            bail!(
                "PKIOperation's content type is {:?}",
                headers.get("content-type")
            );
        }
        let rep = requester.decode_cert_rep(&reply, &ra)?;
        if rep.transaction_id != transaction.transaction_id
            || rep.recipient_nonce != transaction.sender_nonce
        {
            bail!("the CertRep does not answer this transaction");
        }
        match rep.status {
            CertRepStatus::Success {
                issued_certificate_der,
                chain_der,
            } => {
                let mut chain = pem_of(&issued_certificate_der);
                for der in &chain_der {
                    chain.push_str(&pem_of(der));
                }
                let pem = pem_of(&issued_certificate_der);
                let key = requester.key_pem()?;
                self.use_identity(Identity {
                    signer: std::sync::Arc::new(latchkey_certs::cms::Signer::new(&pem, &key)?),
                    pem,
                    der: issued_certificate_der,
                    key,
                    chain,
                });
                Ok(Ok(()))
            }
            CertRepStatus::Failure(info) => Ok(Err(format!("{info:?}"))),
            CertRepStatus::Pending => Ok(Err("pending".into())),
        }
    }

    /// PUTs a signed plist to `url`; returns the status and body.
    pub async fn put_signed(&self, url: &str, body: &Value) -> Result<(u16, Vec<u8>)> {
        let bytes = xml(body)?;
        self.put_raw(url, &bytes).await
    }

    /// PUTs bytes as they are, signed with the identity.
    pub async fn put_raw(&self, url: &str, bytes: &[u8]) -> Result<(u16, Vec<u8>)> {
        let headers = self.signed_headers(bytes)?;
        let (status, _, body) = self
            .exchange("PUT", &path_of(url)?, &headers, bytes)
            .await?;
        Ok((status, body))
    }

    /// The headers a signed message goes with: `Mdm-Signature` (a detached
    /// CMS signature over `bytes` with the identity) and the content type.
    pub fn signed_headers(&self, bytes: &[u8]) -> Result<[(&'static str, String); 2]> {
        let identity = self.identity().context("no identity yet")?;
        let signature = identity.signer.sign_detached(bytes)?;
        Ok([
            (
                "Mdm-Signature",
                base64::engine::general_purpose::STANDARD.encode(signature),
            ),
            (
                "Content-Type",
                "application/x-apple-aspen-mdm-checkin".to_owned(),
            ),
        ])
    }

    fn message(&self, message_type: &str) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), Value::String(message_type.into()));
        d.insert("UDID".into(), Value::String(self.udid.clone()));
        d.insert("Topic".into(), Value::String(self.profile.topic.clone()));
        d
    }

    /// Authenticate (`mdm/checkin/authenticate.yaml`).
    pub async fn authenticate(&self) -> Result<u16> {
        let url = self.profile.check_in_url.clone();
        Ok(self.put_raw(&url, &self.authenticate_message()?).await?.0)
    }

    /// The Authenticate message's body.
    pub fn authenticate_message(&self) -> Result<Vec<u8>> {
        let mut d = self.message("Authenticate");
        d.insert(
            "DeviceName".into(),
            Value::String(format!("{}'s device", self.serial)),
        );
        d.insert("Model".into(), Value::String(self.product_name.clone()));
        d.insert("ModelName".into(), Value::String(self.model_name().into()));
        d.insert(
            "ProductName".into(),
            Value::String(self.product_name.clone()),
        );
        d.insert("SerialNumber".into(), Value::String(self.serial.clone()));
        d.insert("OSVersion".into(), Value::String(self.os_version.clone()));
        d.insert("BuildVersion".into(), Value::String("22B83".into()));
        xml(&Value::Dictionary(d))
    }

    fn model_name(&self) -> &'static str {
        if self.product_name.starts_with("Mac") {
            "MacBook Air"
        } else {
            "iPhone"
        }
    }

    /// TokenUpdate (`mdm/checkin/tokenupdate.yaml`).
    pub async fn token_update(&self) -> Result<u16> {
        let url = self.profile.check_in_url.clone();
        Ok(self.put_raw(&url, &self.token_update_message()?).await?.0)
    }

    /// The TokenUpdate message's body.
    pub fn token_update_message(&self) -> Result<Vec<u8>> {
        let mut d = self.message("TokenUpdate");
        d.insert("Token".into(), Value::Data(self.push_token.clone()));
        d.insert("PushMagic".into(), Value::String(self.push_magic.clone()));
        d.insert("UnlockToken".into(), Value::Data(vec![7; 32]));
        d.insert("AwaitingConfiguration".into(), Value::Boolean(false));
        xml(&Value::Dictionary(d))
    }

    /// CheckOut (`mdm/checkin/checkout.yaml`).
    pub async fn check_out(&self) -> Result<u16> {
        let d = self.message("CheckOut");
        let url = self.profile.check_in_url.clone();
        Ok(self.put_signed(&url, &Value::Dictionary(d)).await?.0)
    }

    /// Enrolls as a device does after installing the profile: SCEP, then
    /// Authenticate and TokenUpdate.
    pub async fn enroll(&mut self) -> Result<()> {
        if let Err(refused) = self.scep_enroll().await? {
            bail!("SCEP refused: {refused}");
        }
        let status = self.authenticate().await?;
        if status != 200 {
            bail!("Authenticate answered {status}");
        }
        let status = self.token_update().await?;
        if status != 200 {
            bail!("TokenUpdate answered {status}");
        }
        Ok(())
    }

    fn report(&self, status: &str, uuid: Option<&str>, result: Option<Dictionary>) -> Value {
        let mut d = Dictionary::new();
        d.insert("UDID".into(), Value::String(self.udid.clone()));
        d.insert("Status".into(), Value::String(status.into()));
        if let Some(uuid) = uuid {
            d.insert("CommandUUID".into(), Value::String(uuid.into()));
        }
        if status == "Error" {
            let mut item = Dictionary::new();
            item.insert("ErrorCode".into(), Value::Integer(12_021.into()));
            item.insert(
                "ErrorDomain".into(),
                Value::String("MCMDMErrorDomain".into()),
            );
            item.insert(
                "USEnglishDescription".into(),
                Value::String("The command failed on the device".into()),
            );
            d.insert(
                "ErrorChain".into(),
                Value::Array(vec![Value::Dictionary(item)]),
            );
        }
        for (k, v) in result.into_iter().flatten() {
            d.insert(k, v);
        }
        Value::Dictionary(d)
    }

    fn result_for(&self, request_type: &str) -> Option<Dictionary> {
        let mut d = Dictionary::new();
        match request_type {
            "DeviceInformation" => {
                let mut q = Dictionary::new();
                q.insert("UDID".into(), Value::String(self.udid.clone()));
                q.insert("SerialNumber".into(), Value::String(self.serial.clone()));
                q.insert("OSVersion".into(), Value::String(self.os_version.clone()));
                q.insert("Model".into(), Value::String(self.product_name.clone()));
                q.insert("ModelName".into(), Value::String(self.model_name().into()));
                q.insert(
                    "ProductName".into(),
                    Value::String(self.product_name.clone()),
                );
                q.insert(
                    "DeviceName".into(),
                    Value::String(format!("{}'s device", self.serial)),
                );
                q.insert("IsSupervised".into(), Value::Boolean(true));
                d.insert("QueryResponses".into(), Value::Dictionary(q));
            }
            "SecurityInfo" => {
                let mut s = Dictionary::new();
                s.insert(
                    "PasscodePresent".into(),
                    Value::Boolean(self.passcode_present),
                );
                s.insert("PasscodeCompliant".into(), Value::Boolean(true));
                if self.product_name.starts_with("Mac") {
                    s.insert("FDE_Enabled".into(), Value::Boolean(true));
                    let mut fw = Dictionary::new();
                    fw.insert("FirewallEnabled".into(), Value::Boolean(true));
                    s.insert("FirewallSettings".into(), Value::Dictionary(fw));
                } else {
                    s.insert("HardwareEncryptionCaps".into(), Value::Integer(3.into()));
                }
                d.insert("SecurityInfo".into(), Value::Dictionary(s));
            }
            "ProfileList" => {
                let mut p = Dictionary::new();
                p.insert(
                    "PayloadIdentifier".into(),
                    Value::String("com.example.mdm".into()),
                );
                p.insert(
                    "PayloadUUID".into(),
                    Value::String(uuid::Uuid::new_v4().to_string()),
                );
                p.insert(
                    "PayloadDisplayName".into(),
                    Value::String("Device management".into()),
                );
                p.insert("IsManaged".into(), Value::Boolean(true));
                d.insert(
                    "ProfileList".into(),
                    Value::Array(vec![Value::Dictionary(p)]),
                );
            }
            "DeviceLocation" => {
                d.insert("Latitude".into(), Value::Real(35.681_236));
                d.insert("Longitude".into(), Value::Real(139.767_125));
                d.insert("HorizontalAccuracy".into(), Value::Real(10.0));
            }
            "DeviceLock" => {
                d.insert("MessageResult".into(), Value::String("Success".into()));
            }
            _ => return None,
        }
        Some(d)
    }

    /// One connection to the command channel, as after a push: Idle, then
    /// each command answered, until the server sends nothing. Returns the
    /// commands received on it.
    pub async fn check_for_commands(&self) -> Result<Vec<Received>> {
        let url = self.profile.server_url.clone();
        let mut report = self.idle_report()?;
        let mut got = Vec::new();
        for _ in 0..64 {
            let (status, body) = self.put_raw(&url, &report).await?;
            match self.answer_reply(status, &body)? {
                None => return Ok(got),
                Some((received, next)) => {
                    // An enrollment profile acknowledged is installed: the
                    // device enrolls again with its challenge (a renewal),
                    // and answers Error when that fails.
                    let acknowledged = matches!(
                        self.answer_for(&received.request_type),
                        Answer::Acknowledged
                    );
                    report = match enrollment_profile_in(&received).filter(|_| acknowledged) {
                        Some(profile) => match self.install_enrollment_profile(&profile).await? {
                            Ok(()) => next,
                            Err(_) => {
                                xml(&self.report("Error", Some(&received.command_uuid), None))?
                            }
                        },
                        None => next,
                    };
                    got.push(received);
                }
            }
        }
        bail!("the server kept sending commands")
    }

    /// One Idle report on the command channel: the status and the body
    /// (a command, if one is queued, is left unanswered).
    pub async fn idle(&self) -> Result<(u16, Vec<u8>)> {
        let url = self.profile.server_url.clone();
        let report = self.report("Idle", None, None);
        self.put_signed(&url, &report).await
    }

    /// How the device answers commands of `request_type` (see
    /// [`SimulatedAppleDevice::answer`]).
    fn answer_for(&self, request_type: &str) -> Answer {
        self.answers
            .lock()
            .ok()
            .and_then(|a| a.get(request_type).cloned())
            .unwrap_or(Answer::Acknowledged)
    }

    /// The Idle report that opens a session on the command channel.
    pub fn idle_report(&self) -> Result<Vec<u8>> {
        xml(&self.report("Idle", None, None))
    }

    /// The device's step in its command state machine: given the command
    /// channel's reply, `None` when the server has nothing more, else the
    /// command received (recorded) and the report that answers it.
    pub fn answer_reply(&self, status: u16, body: &[u8]) -> Result<Option<(Received, Vec<u8>)>> {
        if status != 200 {
            bail!(
                "the command channel answered {status}: {}",
                String::from_utf8_lossy(body)
            );
        }
        if body.is_empty() {
            return Ok(None);
        }
        let value = Value::from_reader_xml(body).context("the command is not a plist")?;
        let outer = value
            .as_dictionary()
            .context("the command is not a dictionary")?;
        let uuid = text(outer, "CommandUUID")?;
        let command = outer
            .get("Command")
            .and_then(Value::as_dictionary)
            .context("no Command")?
            .clone();
        let request_type = text(&command, "RequestType")?;
        let received = Received {
            command_uuid: uuid.clone(),
            request_type: request_type.clone(),
            command,
        };
        if let Ok(mut all) = self.received.lock() {
            all.push(received.clone());
        }
        let report = match self.answer_for(&request_type) {
            Answer::Acknowledged => {
                self.report("Acknowledged", Some(&uuid), self.result_for(&request_type))
            }
            Answer::NotNow => self.report("NotNow", Some(&uuid), None),
            Answer::Error => self.report("Error", Some(&uuid), None),
        };
        Ok(Some((received, xml(&report)?)))
    }

    /// The body of this device's Acknowledged to the command `command_uuid`
    /// of `request_type`: what [`SimulatedAppleDevice::answer_reply`]
    /// sends for it, made ahead (a load generator signs it before it is
    /// needed, as a real device's own CPU would, away from the server's).
    pub fn acknowledgement(&self, command_uuid: &str, request_type: &str) -> Result<Vec<u8>> {
        xml(&self.report(
            "Acknowledged",
            Some(command_uuid),
            self.result_for(request_type),
        ))
    }

    /// Whether `push` would wake this device (its token and its magic).
    pub fn is_woken_by(&self, push: &latchkeyd::push::apns::RecordedPush) -> bool {
        push.target.token == self.push_token
            && push.body == format!(r#"{{"mdm":"{}"}}"#, self.push_magic)
            && push.target.topic == self.profile.topic
    }
}

/// The enrollment profile an InstallProfile carries, if it carries one
/// (a profile with an MDM payload).
pub fn enrollment_profile_in(received: &Received) -> Option<Vec<u8>> {
    if received.request_type != "InstallProfile" {
        return None;
    }
    let payload = received.command.get("Payload").and_then(Value::as_data)?;
    EnrollmentProfile::read(payload)
        .is_ok()
        .then(|| payload.to_vec())
}

/// One HTTPS connection kept open across requests (HTTP/1.1 keep-alive),
/// opened again when the server has closed it. A device behind a
/// TLS-terminating proxy, or one whose connection outlives a request,
/// sends its messages this way; its `Mdm-Signature` says who it is.
pub struct KeptAliveConnection {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    stream: Option<tokio::io::BufReader<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>,
}

impl KeptAliveConnection {
    pub fn new(addr: SocketAddr, ca_pem: &str) -> Result<Self> {
        Ok(KeptAliveConnection {
            addr,
            tls: tokio_rustls::TlsConnector::from(latchkey_certs::tls::client_config(
                ca_pem, None,
            )?),
            stream: None,
        })
    }

    /// `PUT path` with `headers` and `body`; the status and the body. A
    /// connection the server closed while idle is opened again once.
    pub async fn put(
        &mut self,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let reused = self.stream.is_some();
        match self.try_put(path, headers, body).await {
            Ok(answer) => Ok(answer),
            Err(_) if reused => {
                self.stream = None;
                self.try_put(path, headers, body).await
            }
            Err(e) => Err(e),
        }
    }

    async fn try_put(
        &mut self,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let stream = match self.stream.as_mut() {
            Some(stream) => stream,
            None => {
                let tcp = tokio::net::TcpStream::connect(self.addr).await?;
                tcp.set_nodelay(true)?;
                let name = rustls_pki_types::ServerName::try_from("localhost")?;
                let tls = self.tls.connect(name, tcp).await?;
                self.stream.insert(tokio::io::BufReader::new(tls))
            }
        };
        let mut request = format!(
            "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
            body.len()
        )
        .into_bytes();
        for (name, value) in headers {
            request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        let result = async {
            stream.get_mut().write_all(&request).await?;
            stream.get_mut().flush().await?;
            let mut line = String::new();
            if stream.read_line(&mut line).await? == 0 {
                bail!("the server closed the connection");
            }
            let status: u16 = line
                .split_whitespace()
                .nth(1)
                .context("no status")?
                .parse()?;
            let mut length = 0usize;
            let mut close = false;
            loop {
                line.clear();
                if stream.read_line(&mut line).await? == 0 {
                    bail!("the connection ended in the header");
                }
                let header = line.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    let (name, value) = (name.trim(), value.trim());
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.parse()?;
                    } else if name.eq_ignore_ascii_case("connection")
                        && value.eq_ignore_ascii_case("close")
                    {
                        close = true;
                    } else if name.eq_ignore_ascii_case("transfer-encoding") {
                        bail!("a chunked answer: this client reads Content-Length only");
                    }
                }
            }
            let mut answer = vec![0; length];
            stream.read_exact(&mut answer).await?;
            anyhow::Ok((status, answer, close))
        }
        .await;
        match result {
            Ok((status, answer, close)) => {
                if close {
                    self.stream = None;
                }
                Ok((status, answer))
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

/// A push certificate for `topic` valid for `days`, written into `dir`;
/// returns the certificate's and the key's paths as latchctl takes them.
pub fn push_certificate_files(
    dir: &std::path::Path,
    name: &str,
    topic: &str,
    days: i64,
) -> Result<(String, String)> {
    let now = Utc::now();
    let (cert, key) = latchkey_certs::apns::self_signed_push_certificate(
        topic,
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(days),
    )?;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert_path, cert)?;
    std::fs::write(&key_path, key.expose())?;
    let text = |p: std::path::PathBuf| {
        p.to_str()
            .map(str::to_owned)
            .context("a temporary path that is not UTF-8")
    };
    Ok((text(cert_path)?, text(key_path)?))
}

/// The topic of the push certificate [`enrolled_iphone`] imports.
pub const TEST_TOPIC: &str = "com.apple.mgmt.External.7d1f3a52-0b8e-4c1a-9f2d-3e4b5c6d7e8f";

/// Imports a push certificate into `sys`.
pub async fn import_push_certificate(sys: &crate::System, dir: &std::path::Path) -> Result<()> {
    let (cert, key) = push_certificate_files(dir, "push", TEST_TOPIC, 365)?;
    sys.ctl(&[
        "apple",
        "push-cert",
        "import",
        "--cert",
        &cert,
        "--key",
        &key,
    ])
    .await?;
    Ok(())
}

/// MachineInfo as Setup Assistant sends it (posted, or base64 in the web
/// view's `x-apple-aspen-deviceinfo`): a plist signed by a certificate of
/// the device's (here a self-signed one: the server must not take it as
/// proof of anything).
pub fn machine_info(serial: &str) -> Result<Vec<u8>> {
    let plist = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>LANGUAGE</key><string>en-US</string>
<key>PRODUCT</key><string>iPhone15,2</string>
<key>SERIAL</key><string>{serial}</string>
<key>UDID</key><string>00008110-000A1B2C3D4E5F60</string>
<key>VERSION</key><string>22B83</string>
</dict></plist>"#
    );
    let signer = rcgen::generate_simple_self_signed(vec!["iPhone Device".into()])?;
    Ok(latchkey_certs::cms::sign_attached(
        plist.as_bytes(),
        &signer.cert.pem(),
        &PrivateKeyPem::new(signer.signing_key.serialize_pem()),
        "",
    )?)
}

/// The device `latchctl device list` shows with this serial number.
pub async fn device_with_serial(sys: &crate::System, serial: &str) -> Result<serde_json::Value> {
    let devices = sys.ctl_json(&["device", "list"]).await?;
    devices
        .as_array()
        .and_then(|all| all.iter().find(|d| d["serial"] == serial).cloned())
        .with_context(|| format!("no device with serial {serial}: {devices}"))
}

/// Waits for the next push that wakes `device`.
pub async fn woken(
    pushes: &mut tokio::sync::broadcast::Receiver<latchkeyd::push::apns::RecordedPush>,
    device: &SimulatedAppleDevice,
) -> Result<()> {
    let wait = async {
        loop {
            let push = pushes.recv().await?;
            if device.is_woken_by(&push) {
                return anyhow::Ok(());
            }
        }
    };
    tokio::time::timeout(crate::DEADLINE, wait).await?
}

/// An Apple device enrolled with a profile for `user` (a push certificate
/// is imported first if none is), past its first inventory; returns it
/// with its device id.
pub async fn enrolled_device(
    sys: &crate::System,
    make: fn(EnrollmentProfile, SocketAddr, &str) -> SimulatedAppleDevice,
    user: Option<&str>,
) -> Result<(SimulatedAppleDevice, String)> {
    let status = sys.ctl_json(&["apple", "status"]).await?;
    if status["push_certificates"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        let dir = tempfile::tempdir()?;
        import_push_certificate(sys, dir.path()).await?;
    }
    let mut args = vec!["apple", "profile"];
    if let Some(user) = user {
        args.extend(["--user", user]);
    }
    let profile = EnrollmentProfile::read(sys.ctl(&args).await?.as_bytes())?;
    let mut device = make(profile, sys.running().https_addr, &sys.ca_pem);
    device.enroll().await?;
    device.check_for_commands().await?;
    let id = device_with_serial(sys, &device.serial).await?["id"]
        .as_str()
        .context("a device id")?
        .to_owned();
    Ok((device, id))
}
