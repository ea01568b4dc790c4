//! Outgoing mail: one-time sign-in codes, sent over SMTP (`[smtp]` in the
//! configuration) with STARTTLS, implicit TLS or, for a relay on the same
//! host, plain text.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How long one message may take to hand over.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `STARTTLS` on a plain connection (port 587), required.
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only for a relay on the loopback interface.
    None,
}

impl SmtpTls {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "starttls" => Some(SmtpTls::StartTls),
            "tls" => Some(SmtpTls::Implicit),
            "none" => Some(SmtpTls::None),
            _ => None,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }
    }
}

/// The validated `[smtp]` settings.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// `Latchkey <no-reply@example.com>`.
    pub sender: String,
    pub username: Option<String>,
    /// Read from `password_file`, never from the configuration itself.
    pub password: Option<String>,
    /// Extra trust anchor (PEM) for a server with a private CA.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("sender", &self.sender)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("smtp.sender {0:?} is not an address such as Latchkey <no-reply@example.com>")]
    Sender(String),
    #[error("not a deliverable address: {0}")]
    Recipient(String),
    #[error("smtp.ca_file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("SMTP: {0}")]
    Smtp(String),
}

/// Sends mail through the configured SMTP server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    sender: Mailbox,
}

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> Result<Self, MailError> {
        let sender: Mailbox = settings
            .sender
            .parse()
            .map_err(|_| MailError::Sender(settings.sender.clone()))?;
        let tls = match settings.tls {
            SmtpTls::None => Tls::None,
            mode => {
                let mut builder = TlsParameters::builder(settings.host.clone());
                if let Some(path) = &settings.ca_file {
                    let ca_error = |message: String| MailError::CaFile {
                        path: path.clone(),
                        message,
                    };
                    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
                    let certificate =
                        Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
                    builder = builder.add_root_certificate(certificate);
                }
                let parameters = builder
                    .build_rustls()
                    .map_err(|e| MailError::Smtp(e.to_string()))?;
                if mode == SmtpTls::Implicit {
                    Tls::Wrapper(parameters)
                } else {
                    Tls::Required(parameters)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(SEND_TIMEOUT));
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            sender,
        })
    }

    /// Sends a plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        let recipient: Mailbox = to
            .parse()
            .map_err(|_| MailError::Recipient(to.to_owned()))?;
        let message = Message::builder()
            .from(self.sender.clone())
            .to(recipient)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| MailError::Smtp(e.to_string()))?;
        // The transport's own timeout covers connecting only.
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(MailError::Smtp(e.to_string())),
            Err(_) => Err(MailError::Smtp(format!(
                "no answer within {} s",
                SEND_TIMEOUT.as_secs()
            ))),
        }
    }
}
