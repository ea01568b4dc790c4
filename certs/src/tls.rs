//! rustls configurations built from Latchkey PEM material, shared by the
//! server, the agent and latchctl so every TLS endpoint uses the same
//! provider (ring) and the same trust rules.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{CertError, PrivateKeyPem};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    Ok(crate::pem_certificates(pem)?
        .into_iter()
        .map(CertificateDer::from)
        .collect())
}

fn key(pem: &PrivateKeyPem) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(pem.expose().as_bytes())
        .map_err(|e| CertError::MalformedKey(e.to_string()))
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, CertError> {
    let mut store = RootCertStore::empty();
    for cert in certs(ca_pem)? {
        store
            .add(cert)
            .map_err(|e| CertError::MalformedCertificate(e.to_string()))?;
    }
    Ok(Arc::new(store))
}

fn tls_error(e: rustls::Error) -> CertError {
    CertError::Signing(e.to_string())
}

/// A client that trusts only `ca_pem` and, with `identity`, presents a
/// client certificate chain.
pub fn client_config(
    ca_pem: &str,
    identity: Option<(&str, &PrivateKeyPem)>,
) -> Result<Arc<rustls::ClientConfig>, CertError> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()
        .map_err(|e| CertError::MalformedCertificate(e.to_string()))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_webpki_verifier(verifier);
    let config = match identity {
        Some((chain_pem, key_pem)) => builder
            .with_client_auth_cert(certs(chain_pem)?, key(key_pem)?)
            .map_err(tls_error)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A server presenting `chain_pem` that requires a client certificate
/// chaining to `client_ca_pem` (mTLS); expired certificates and other CAs
/// fail the handshake.
pub fn mtls_server_config(
    chain_pem: &str,
    key_pem: &PrivateKeyPem,
    client_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, CertError> {
    client_cert_server_config(chain_pem, key_pem, client_ca_pem, true)
}

/// A server that asks for a client certificate chaining to `client_ca_pem`
/// but also serves clients without one (which then see a page saying so);
/// a certificate that does not verify still fails the handshake.
pub fn optional_mtls_server_config(
    chain_pem: &str,
    key_pem: &PrivateKeyPem,
    client_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, CertError> {
    client_cert_server_config(chain_pem, key_pem, client_ca_pem, false)
}

fn client_cert_server_config(
    chain_pem: &str,
    key_pem: &PrivateKeyPem,
    client_ca_pem: &str,
    required: bool,
) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let builder = WebPkiClientVerifier::builder_with_provider(roots(client_ca_pem)?, provider());
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    let verifier = builder
        .build()
        .map_err(|e| CertError::MalformedCertificate(e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(chain_pem)?, key(key_pem)?)
        .map_err(tls_error)?;
    Ok(Arc::new(config))
}

/// A server presenting `chain_pem` without client authentication.
pub fn server_config(
    chain_pem: &str,
    key_pem: &PrivateKeyPem,
) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(certs(chain_pem)?, key(key_pem)?)
        .map_err(tls_error)?;
    Ok(Arc::new(config))
}
