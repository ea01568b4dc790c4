//! The HTTPS client the server uses to call services on the Internet
//! (Apple's device enrollment API; Android's management API next).
//!
//! It is hyper-util's pooled client over rustls with the ring provider,
//! HTTP/1.1, and a small surface of its own: [`HttpRequest`] in,
//! [`HttpResponse`] out, every exchange bounded by a timeout and every
//! response body by a size limit, so a slow or hostile server can cost a
//! bounded amount of time and memory. Plain `http://` is refused except
//! to loopback addresses, where the tests' fakes listen. Redirects are not
//! followed: the APIs it calls answer in place.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use url::Url;

/// What went wrong with an HTTP exchange.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0:?} is not an http(s) URL")]
    InvalidUrl(String),
    #[error("{0} uses plain http, which is allowed only to loopback addresses: use https")]
    InsecureUrl(String),
    #[error("no trusted root certificates: {0}")]
    NoTrustRoots(String),
    #[error("the TLS configuration is unusable: {0}")]
    Tls(String),
    #[error("the request could not be built: {0}")]
    InvalidRequest(String),
    #[error("no answer from {host} within {timeout:?}")]
    Timeout { host: String, timeout: Duration },
    #[error("cannot reach {host}: {reason}")]
    Network { host: String, reason: String },
    #[error("the response from {host} is larger than {limit} bytes")]
    ResponseTooLarge { host: String, limit: usize },
    #[error("the response body is not the JSON expected: {0}")]
    MalformedJson(String),
}

/// Which certificate authorities the client trusts.
#[derive(Debug, Clone)]
pub enum TrustRoots {
    /// The operating system's store (needs `ca-certificates` on Linux).
    System,
    /// The Mozilla roots compiled into the binary.
    Bundled,
    /// Only the certificates in this PEM text (tests, private services).
    Pem(String),
}

/// How the client behaves. [`HttpClientConfig::new`] gives the defaults
/// for calls to public APIs.
#[derive(Debug, Clone)]
pub struct HttpClientConfig {
    /// Sent when a request sets no `User-Agent` of its own.
    pub user_agent: String,
    /// From sending the request to the last byte of the response body.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// A response body longer than this is an error, not a truncation.
    pub max_response_bytes: usize,
    pub roots: TrustRoots,
}

impl HttpClientConfig {
    /// 30 s per exchange, 10 s to connect, 16 MiB per body, the system's
    /// roots.
    pub fn new(user_agent: impl Into<String>) -> Self {
        HttpClientConfig {
            user_agent: user_agent.into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_response_bytes: 16 * 1024 * 1024,
            roots: TrustRoots::System,
        }
    }
}

/// A request to send. Its body is bytes; [`HttpRequest::json`] fills it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpRequest {
    pub fn new(method: Method, url: Url) -> Self {
        HttpRequest {
            method,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    pub fn get(url: Url) -> Self {
        Self::new(Method::GET, url)
    }

    pub fn post(url: Url) -> Self {
        Self::new(Method::POST, url)
    }

    pub fn put(url: Url) -> Self {
        Self::new(Method::PUT, url)
    }

    /// Sets a header, replacing any earlier value.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Serialises `value` as the body and, unless one is set already, sets
    /// `Content-Type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Result<Self, HttpError> {
        let body =
            serde_json::to_vec(value).map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
        self.body = Bytes::from(body);
        if !self.headers.contains_key(CONTENT_TYPE) {
            self.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Ok(self)
    }
}

/// A response read in full (within the size limit).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code (a number: status names are `api/`'s vocabulary,
    /// for answering clients).
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::MalformedJson(e.to_string()))
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// A header's value, when it is present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A pooled HTTPS client; cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    config: Arc<HttpClientConfig>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn root_store(roots: &TrustRoots) -> Result<RootCertStore, HttpError> {
    let mut store = RootCertStore::empty();
    match roots {
        TrustRoots::System => {
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
            if added == 0 {
                let why = loaded
                    .errors
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "the system store is empty".into());
                return Err(HttpError::NoTrustRoots(format!(
                    "{why} (install ca-certificates, or use the bundled roots)"
                )));
            }
        }
        TrustRoots::Bundled => {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        TrustRoots::Pem(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| HttpError::NoTrustRoots(e.to_string()))?;
                store
                    .add(cert)
                    .map_err(|e| HttpError::NoTrustRoots(e.to_string()))?;
            }
            if store.is_empty() {
                return Err(HttpError::NoTrustRoots(
                    "the PEM text holds no certificate".into(),
                ));
            }
        }
    }
    Ok(store)
}

/// Whether plain http may go to this URL's host: loopback only.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Refuses what the client will not send to: other schemes, and plain
/// http beyond loopback.
pub fn check_url(url: &Url) -> Result<(), HttpError> {
    if url.host().is_none() {
        return Err(HttpError::InvalidUrl(url.to_string()));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(HttpError::InsecureUrl(url.to_string())),
        _ => Err(HttpError::InvalidUrl(url.to_string())),
    }
}

/// An error and its causes, joined; hyper's outer error says only
/// "client error (Connect)".
fn reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

impl HttpClient {
    pub fn new(config: HttpClientConfig) -> Result<Self, HttpError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Tls(e.to_string()))?
            .with_root_certificates(root_store(&config.roots)?)
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(config.connect_timeout));
        tcp.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(HttpClient {
            client,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &HttpClientConfig {
        &self.config
    }

    /// Sends `request` and reads the whole response, whatever its status.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        check_url(&request.url)?;
        let host = request.url.host_str().unwrap_or_default().to_owned();
        let uri: http::Uri = request
            .url
            .as_str()
            .parse()
            .map_err(|_| HttpError::InvalidUrl(request.url.to_string()))?;
        let mut outgoing = http::Request::new(Full::new(request.body));
        *outgoing.method_mut() = request.method;
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = request.headers;
        if !outgoing.headers().contains_key(USER_AGENT) {
            let agent = HeaderValue::from_str(&self.config.user_agent)
                .map_err(|e| HttpError::InvalidRequest(format!("User-Agent: {e}")))?;
            outgoing.headers_mut().insert(USER_AGENT, agent);
        }
        let limit = self.config.max_response_bytes;
        let exchange = async {
            let response = self
                .client
                .request(outgoing)
                .await
                .map_err(|e| HttpError::Network {
                    host: host.clone(),
                    reason: reason(&e),
                })?;
            let (parts, body) = response.into_parts();
            let declared = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit as u64) {
                return Err(HttpError::ResponseTooLarge {
                    host: host.clone(),
                    limit,
                });
            }
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        HttpError::ResponseTooLarge {
                            host: host.clone(),
                            limit,
                        }
                    } else {
                        HttpError::Network {
                            host: host.clone(),
                            reason: reason(e.as_ref()),
                        }
                    }
                })?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.config.request_timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout {
                host: host.clone(),
                timeout: self.config.request_timeout,
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn plain_http_goes_to_loopback_only() {
        for ok in [
            "https://mdmenrollment.apple.com/session",
            "http://127.0.0.1:8080/x",
            "http://127.9.9.9/x",
            "http://localhost:1/",
            "http://[::1]:9/",
        ] {
            assert!(check_url(&url(ok)).is_ok(), "{ok}");
        }
        for insecure in [
            "http://mdmenrollment.apple.com/session",
            "http://10.0.0.1/",
            "http://localhost.example.com/",
            "http://[::2]/",
        ] {
            assert!(
                matches!(check_url(&url(insecure)), Err(HttpError::InsecureUrl(_))),
                "{insecure}"
            );
        }
        assert!(matches!(
            check_url(&url("ftp://127.0.0.1/")),
            Err(HttpError::InvalidUrl(_))
        ));
    }

    fn client(limit: usize, timeout: Duration) -> HttpClient {
        let mut config = HttpClientConfig::new("latchkey-test/1");
        config.max_response_bytes = limit;
        config.request_timeout = timeout;
        config.roots = TrustRoots::Bundled;
        HttpClient::new(config).unwrap()
    }

    /// A one-shot HTTP server on loopback answering `response` verbatim
    /// (or never, when it is `None`); returns its URL and the request it read.
    async fn one_shot(response: Option<Vec<u8>>) -> (Url, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            match response {
                Some(bytes) => {
                    let _ = socket.write_all(&bytes).await;
                    let _ = socket.shutdown().await;
                }
                None => tokio::time::sleep(Duration::from_secs(30)).await,
            }
            String::from_utf8_lossy(&request).into_owned()
        });
        (url(&format!("http://{addr}/path?q=1")), task)
    }

    #[tokio::test]
    async fn a_response_is_read_with_its_status_headers_and_body() {
        let (url, server) = one_shot(Some(
            b"HTTP/1.1 201 Created\r\nX-Thing: a\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"a\":[1,2]}"
                .to_vec(),
        ))
        .await;
        let response = client(1024, Duration::from_secs(10))
            .send(
                HttpRequest::post(url)
                    .json(&serde_json::json!({"k": "v"}))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status, 201);
        assert_eq!(response.header("x-thing"), Some("a"));
        let value: serde_json::Value = response.json().unwrap();
        assert_eq!(value["a"][1], 2);
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /path?q=1 HTTP/1.1"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("user-agent: latchkey-test/1"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_an_error_declared_or_not() {
        let big = "x".repeat(2048);
        let declared = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
            big.len()
        );
        let (url, _server) = one_shot(Some(declared.into_bytes())).await;
        let err = client(1024, Duration::from_secs(10))
            .send(HttpRequest::get(url))
            .await
            .unwrap_err();
        assert!(
            matches!(err, HttpError::ResponseTooLarge { limit: 1024, .. }),
            "{err}"
        );

        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n{big}\r\n0\r\n\r\n"
        );
        let (url, _server) = one_shot(Some(chunked.into_bytes())).await;
        let err = client(1024, Duration::from_secs(10))
            .send(HttpRequest::get(url))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::ResponseTooLarge { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let (url, server) = one_shot(None).await;
        let err = client(1024, Duration::from_millis(200))
            .send(HttpRequest::get(url))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Timeout { .. }), "{err}");
        server.abort();
    }

    #[tokio::test]
    async fn a_closed_port_is_a_network_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = client(1024, Duration::from_secs(10))
            .send(HttpRequest::get(url(&format!("http://{addr}/"))))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Network { .. }), "{err}");
    }

    #[tokio::test]
    async fn plain_http_to_a_remote_host_is_refused_before_connecting() {
        let err = client(1024, Duration::from_secs(10))
            .send(HttpRequest::get(url(
                "http://mdmenrollment.apple.com/session",
            )))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::InsecureUrl(_)), "{err}");
    }
}
