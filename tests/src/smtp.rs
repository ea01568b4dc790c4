//! A mail sink speaking enough SMTP (RFC 5321) for latchkeyd's mailer to
//! deliver to it over loopback: each message arrives decoded on a channel.

use anyhow::{Context, Result, bail};
use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A delivered message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The raw message (headers and body as sent).
    pub raw: String,
    /// The body, transfer-decoded.
    pub text: String,
}

pub struct SmtpSink {
    pub port: u16,
    messages: mpsc::UnboundedReceiver<Mail>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    pub async fn start() -> Result<SmtpSink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (tx, messages) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = session(stream, tx).await {
                        eprintln!("smtp sink session: {e}");
                    }
                });
            }
        });
        Ok(SmtpSink {
            port,
            messages,
            task,
        })
    }

    /// The next message, waiting up to 10 s.
    pub async fn next(&mut self) -> Result<Mail> {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.messages.recv())
            .await
            .context("no mail within 10 s")?
            .context("sink closed")
    }

    /// Whether a message is waiting now.
    pub fn try_next(&mut self) -> Option<Mail> {
        self.messages.try_recv().ok()
    }
}

async fn session(stream: tokio::net::TcpStream, tx: mpsc::UnboundedSender<Mail>) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-sink.test\r\n250 8BITMIME\r\n"
        } else if let Some(rest) = upper.strip_prefix("MAIL FROM:") {
            from = line.get(10..).unwrap_or(rest).trim().to_owned();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(line.get(8..).unwrap_or("").trim().to_owned());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut raw = String::new();
            loop {
                let Some(line) = lines.next_line().await? else {
                    bail!("connection closed in DATA");
                };
                if line == "." {
                    break;
                }
                // Dot-stuffing (RFC 5321 §4.5.2).
                raw.push_str(
                    line.strip_prefix('.')
                        .filter(|_| line.starts_with(".."))
                        .unwrap_or(&line),
                );
                raw.push('\n');
            }
            let text = decode_body(&raw);
            let _ = tx.send(Mail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                raw,
                text,
            });
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}

/// The body of a single-part message, undoing its transfer encoding.
fn decode_body(raw: &str) -> String {
    let (headers, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let encoding = headers
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-transfer-encoding")
                .then(|| value.trim().to_ascii_lowercase())
        })
        .unwrap_or_default();
    match encoding.as_str() {
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.to_owned(),
    }
}

fn quoted_printable(body: &str) -> String {
    let mut bytes = Vec::new();
    for line in body.lines() {
        let (line, soft) = match line.strip_suffix('=') {
            Some(l) => (l, true),
            None => (line, false),
        };
        let mut rest = line.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            if b == b'='
                && let Some(hex) = tail.get(..2)
                && let Ok(v) = u8::from_str_radix(&String::from_utf8_lossy(hex), 16)
            {
                bytes.push(v);
                rest = tail.get(2..).unwrap_or(&[]);
                continue;
            }
            bytes.push(b);
            rest = tail;
        }
        if !soft {
            bytes.push(b'\n');
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_encodings_decode() {
        assert_eq!(
            decode_body(
                "Content-Transfer-Encoding: quoted-printable\n\ncode: 12=\n3456 =E3=81=82\n"
            ),
            "code: 123456 あ\n"
        );
        assert_eq!(
            decode_body("Content-Transfer-Encoding: base64\n\nY29kZTogMTIz\nNDU2\n"),
            "code: 123456"
        );
    }
}
