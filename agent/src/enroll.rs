//! Enrollment and certificate renewal over the gRPC `DeviceService`.

use std::time::Duration;

use chrono::Utc;
use latchkey_certs::PrivateKeyPem;
use latchkey_proto::v1::{self, device_service_client::DeviceServiceClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::keystore;
use crate::platform::facts;
use crate::state::{Enrollment, StateDir, StateError};

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{0}")]
    State(#[from] StateError),
    #[error("cannot reach the server at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("key or certificate error: {0}")]
    Cert(#[from] latchkey_certs::CertError),
    #[error("{0}")]
    Usage(String),
}

fn refused(status: tonic::Status) -> EnrollError {
    EnrollError::Refused(status.message().to_owned())
}

/// A TLS channel to the server trusting only `ca_pem`, with the device
/// identity when given.
pub async fn channel(
    server_url: &str,
    ca_pem: &str,
    identity: Option<(&str, &PrivateKeyPem)>,
) -> Result<Channel, EnrollError> {
    let connect_error = |detail: String| EnrollError::Connect {
        url: server_url.to_owned(),
        detail,
    };
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    if let Some((chain, key)) = identity {
        tls = tls.identity(Identity::from_pem(chain, key.expose()));
    }
    Channel::from_shared(server_url.to_owned())
        .map_err(|e| connect_error(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| connect_error(e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| connect_error(latchkey_proto::text::error_chain(&e)))
}

/// Accepts `https://host:port` and bare `host:port`.
pub fn normalize_server_url(url: &str) -> Result<String, EnrollError> {
    let url = url.trim().trim_end_matches('/');
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("https://{url}")
    };
    if !url.starts_with("https://") {
        return Err(EnrollError::Usage(format!(
            "{url:?}: the server URL must use https://"
        )));
    }
    Ok(url)
}

/// Generates the device key, sends a CSR with the device facts and stores
/// the returned certificate chain, CA and device id.
pub async fn enroll(
    state: &StateDir,
    server_url: &str,
    token: &str,
    ca_pem: &str,
) -> Result<Enrollment, EnrollError> {
    let server_url = normalize_server_url(server_url)?;
    if state.enrollment().is_ok() {
        return Err(EnrollError::Usage(format!(
            "{} already holds an enrollment; remove it or use another --state-dir",
            state.path().display()
        )));
    }
    latchkey_certs::pem_certificates(ca_pem)?;
    let facts = facts::collect();
    let (key, csr) = latchkey_certs::new_key_and_csr(&facts.hostname)?;
    let mut client = DeviceServiceClient::new(channel(&server_url, ca_pem, None).await?);
    let response = client
        .enroll(v1::EnrollRequest {
            token: token.trim().to_owned(),
            csr_der: csr,
            facts: Some(v1::DeviceFacts {
                hostname: facts.hostname,
                platform: facts.platform,
                os_version: facts.os_version,
                machine_id: facts.machine_id,
                serial: facts.serial,
                model: facts.model,
            }),
        })
        .await
        .map_err(refused)?
        .into_inner();
    keystore::store(state, &key)?;
    state.save_certificate_chain(&response.certificate_chain_pem)?;
    state.save_ca(if response.ca_pem.is_empty() {
        ca_pem
    } else {
        &response.ca_pem
    })?;
    let enrollment = Enrollment {
        device_id: response.device_id,
        server_url,
        mqtt_url: response.mqtt_url,
        enrolled_at: Utc::now().timestamp(),
    };
    state.save_enrollment(&enrollment)?;
    Ok(enrollment)
}

/// Renews the device certificate for the same key over mTLS.
pub async fn renew(state: &StateDir) -> Result<String, EnrollError> {
    let enrollment = state.enrollment()?;
    let key = keystore::load(state)?;
    let chain = state.certificate_chain()?;
    let ca = state.ca()?.ok_or(StateError::NotEnrolled)?;
    let csr = latchkey_certs::csr_for_key(&key, &enrollment.device_id)?;
    let mut client = DeviceServiceClient::new(
        channel(&enrollment.server_url, &ca, Some((chain.as_str(), &key))).await?,
    );
    let response = client
        .renew(v1::RenewRequest { csr_der: csr })
        .await
        .map_err(refused)?
        .into_inner();
    latchkey_certs::inspect_pem(&response.certificate_chain_pem)?;
    state.save_certificate_chain(&response.certificate_chain_pem)?;
    Ok(response.certificate_chain_pem)
}
