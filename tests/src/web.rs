//! A small HTTPS client for the tests: one request per connection, trusting
//! only the server's CA, with a cookie jar and no automatic redirects, so a
//! test sees every step a browser would. It also serves as the HTTP client
//! of the `openidconnect` relying party.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct WebResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as text (bytes that are not UTF-8 replaced).
    pub body: String,
    /// The body as sent (a signed profile is binary).
    pub bytes: Vec<u8>,
}

impl WebResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The value of `name="…"` in the first element that has it.
    pub fn attr(&self, name: &str) -> Option<String> {
        attr_in(&self.body, name)
    }

    /// The `value` of the hidden input named `name`.
    pub fn input(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')? + start;
        Some(unescape(&self.body[start..end]))
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.body)?)
    }
}

fn attr_in(body: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(unescape(&body[start..end]))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Sends one request to `addr` (TLS with SNI `localhost`).
pub async fn request(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<WebResponse> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let mut head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
        addr.port(),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    // The server may close without close_notify; what arrived is the answer.
    let _ = stream.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header")?;
    let head = std::str::from_utf8(raw.get(..split).context("no HTTP header")?)?;
    let rest = raw.get(split + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no status")?
        .parse()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let bytes = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(WebResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size = std::str::from_utf8(rest.get(..line_end).context("bad chunk")?)?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        let after = rest.get(line_end + 2..).context("short chunk")?;
        out.extend_from_slice(after.get(..size).context("short chunk")?);
        rest = after.get(size + 2..).context("short chunk")?;
    }
}

/// A browser: a cookie jar, a User-Agent and an Accept-Language.
pub struct Browser {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    pub cookies: BTreeMap<String, String>,
    pub accept_language: String,
    /// Sent with every request (e.g. an `X-Forwarded-For` a client forges).
    pub extra_headers: Vec<(String, String)>,
}

impl Browser {
    pub fn new(addr: SocketAddr, ca_pem: &str) -> Result<Browser> {
        Ok(Browser {
            addr,
            tls: latchkey_certs::tls::client_config(ca_pem, None)?,
            cookies: BTreeMap::new(),
            accept_language: "en-US,en;q=0.9".into(),
            extra_headers: Vec::new(),
        })
    }

    /// Takes a full URL of this server or a path.
    fn path(&self, url: &str) -> Result<String> {
        if url.starts_with('/') {
            return Ok(url.to_owned());
        }
        let parsed = url::Url::parse(url)?;
        if parsed.port() != Some(self.addr.port()) {
            bail!("{url} is not this server");
        }
        Ok(match parsed.query() {
            Some(q) => format!("{}?{q}", parsed.path()),
            None => parsed.path().to_owned(),
        })
    }

    async fn send(&mut self, method: &str, url: &str, body: Option<String>) -> Result<WebResponse> {
        let mut headers = vec![
            (
                "User-Agent".to_owned(),
                "LatchkeyTest/1.0 (X11; Linux x86_64)".to_owned(),
            ),
            ("Accept-Language".to_owned(), self.accept_language.clone()),
        ];
        headers.extend(self.extra_headers.iter().cloned());
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            headers.push(("Cookie".to_owned(), jar.join("; ")));
        }
        if body.is_some() {
            headers.push((
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ));
        }
        let path = self.path(url)?;
        let response = request(
            self.addr,
            self.tls.clone(),
            method,
            &path,
            &headers,
            body.unwrap_or_default().as_bytes(),
        )
        .await?;
        for (k, v) in &response.headers {
            if k.eq_ignore_ascii_case("set-cookie")
                && let Some((pair, attributes)) = v.split_once(';').or(Some((v.as_str(), "")))
                && let Some((name, value)) = pair.split_once('=')
            {
                assert!(
                    attributes.contains("HttpOnly"),
                    "cookie {name} must be HttpOnly"
                );
                assert!(
                    attributes.contains("Secure"),
                    "cookie {name} must be Secure"
                );
                assert!(
                    attributes.contains("SameSite=Lax"),
                    "cookie {name} must be SameSite=Lax"
                );
                if value.is_empty() || attributes.contains("Max-Age=0") {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies
                        .insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
        Ok(response)
    }

    /// Sends the following requests to `addr`, keeping the cookies, as a
    /// load balancer may send a browser to another replica.
    pub fn through(&mut self, addr: SocketAddr) {
        self.addr = addr;
    }

    pub async fn get(&mut self, url: &str) -> Result<WebResponse> {
        self.send("GET", url, None).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Result<WebResponse> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send("POST", url, Some(body)).await
    }

    /// Follows redirects within this server; stops at a page or at a
    /// redirect elsewhere (the relying party), which it returns.
    pub async fn follow(&mut self, mut response: WebResponse) -> Result<WebResponse> {
        for _ in 0..10 {
            let Some(location) = response.location().map(str::to_owned) else {
                return Ok(response);
            };
            if !(location.starts_with('/')
                || location.starts_with(&format!("https://localhost:{}", self.addr.port())))
            {
                return Ok(response);
            }
            response = self.get(&location).await?;
        }
        bail!("too many redirects")
    }
}
