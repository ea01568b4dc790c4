//! latchctl: the admin command line over the gRPC `AdminService`.
//! [`run`] takes parsed arguments and an [`Environment`] and returns the
//! text to print, so tests drive exactly what an admin types.

mod import;
mod output;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use latchkey_proto::v1::{self, admin_service_client::AdminServiceClient};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use output::{Table, time};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the server at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("{0}")]
    Server(String),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Latchkey admin command line.
#[derive(Debug, Parser)]
#[command(name = "latchctl", version)]
pub struct Cli {
    /// gRPC URL of latchkeyd, e.g. https://localhost:7443 [env: LATCHKEY_SERVER]
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// The server's CA certificate (ca.pem) [env: LATCHKEY_CA]
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
    /// File holding the admin API token [env: LATCHKEY_TOKEN holds the token itself]
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Save the connection (server, CA, token) as the default profile.
    Login,
    /// Show who the token belongs to.
    Whoami,
    /// Enrollment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Commands sent to devices.
    #[command(subcommand)]
    Command(CommandCommand),
    /// Policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Users who log in through Latchkey.
    #[command(subcommand)]
    User(UserCommand),
    /// Groups of users (and of devices, through enrollment tokens).
    #[command(subcommand)]
    Group(GroupCommand),
    /// SSO apps (OpenID Connect clients) and their access policy.
    #[command(subcommand)]
    App(AppCommand),
    /// The SSO layer's token-signing keys (published at /jwks.json).
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
    /// Admins and their roles.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit log.
    Audit {
        /// How far back, e.g. 1h or 7d.
        #[arg(long, default_value = "24h")]
        since: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an enrollment token; its secret is shown once.
    Create {
        /// Bind devices enrolled with it to this user.
        #[arg(long)]
        user: Option<String>,
        /// Devices enrolled with it join this group.
        #[arg(long)]
        group: Option<String>,
        /// Lifetime, 1s to 365d, e.g. 24h or 7d.
        #[arg(long, default_value = "24h")]
        expires: String,
        /// How many devices may enroll with it, 1 to 1000000.
        #[arg(long, default_value_t = 1)]
        uses: u32,
    },
    List,
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    List,
    Show {
        id: String,
    },
    /// Lock the device; it is cut off at once, before the agent acknowledges.
    Lock {
        id: String,
        #[arg(long)]
        message: Option<String>,
    },
    Unlock {
        id: String,
    },
    /// Remove the agent's key, certificates and managed data; revokes the device.
    Wipe {
        id: String,
        /// Required: wiping cannot be undone.
        #[arg(long)]
        confirm: bool,
    },
    /// Revoke the device's certificates and end its membership.
    Retire {
        id: String,
    },
    /// Bind the device to the one user it belongs to.
    Assign {
        id: String,
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user.
    Add {
        email: String,
        #[arg(long)]
        name: String,
        /// A group to join; repeat for more.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A break-glass account: skips the device requirement, loudly audited.
        #[arg(long)]
        break_glass: bool,
    },
    /// Add users from a CSV file (header: email,name,groups,role).
    Import {
        file: PathBuf,
    },
    List,
    Show {
        email: String,
    },
    /// The user can no longer log in; `activate` undoes it.
    Suspend {
        email: String,
    },
    Activate {
        email: String,
    },
    /// The user can no longer log in; kept for the audit trail.
    Delete {
        email: String,
    },
    /// Set a temporary password (valid 7 days, changed at first sign-in).
    ResetPassword {
        email: String,
    },
    /// For a user who lost their authenticator app: removes it, ends their
    /// sessions and prints a temporary password, with which they set up a
    /// new one at the next sign-in. Confirm who is asking first.
    ResetMfa {
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Register an app; prints its client id (and secret, once).
    Add {
        name: String,
        /// An exact redirect URI; repeat for more.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (SPA, native app): no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// Which device a login must come from: none, confirm or bound.
        #[arg(long, default_value = "bound")]
        device: String,
        /// Second factor: none, totp or email.
        #[arg(long, default_value = "none")]
        mfa: String,
        /// Allow sign-ins only from this CIDR block (e.g. 203.0.113.0/24);
        /// repeat for more. Without it any address may sign in.
        #[arg(long = "allow-ip")]
        allow_ip: Vec<String>,
        /// Where the app's sign-out may send the browser (an exact URI);
        /// repeat for more. Without it a sign-out ends on Latchkey's page.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Let the app hold refresh tokens (when it asks for offline_access).
        #[arg(long)]
        offline_access: bool,
        /// How long refresh tokens may be renewed from the sign-in on, 1h to
        /// 365d (default 30d).
        #[arg(long)]
        refresh_lifetime: Option<String>,
    },
    List,
    /// Change an app; options left out keep their value.
    Update {
        name: String,
        /// Replaces all redirect URIs; repeat for more.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[arg(long)]
        device: Option<String>,
        #[arg(long)]
        mfa: Option<String>,
        /// Replaces the allowed CIDR blocks; repeat for more.
        #[arg(long = "allow-ip", conflicts_with = "any_ip")]
        allow_ip: Vec<String>,
        /// Removes every address rule: any address may sign in.
        #[arg(long)]
        any_ip: bool,
        /// Replaces the sign-out addresses; repeat for more.
        #[arg(
            long = "post-logout-redirect-uri",
            conflicts_with = "no_post_logout_redirect_uri"
        )]
        post_logout_redirect_uris: Vec<String>,
        /// Removes every sign-out address.
        #[arg(long)]
        no_post_logout_redirect_uri: bool,
        /// Whether the app may hold refresh tokens: true or false.
        #[arg(long)]
        offline_access: Option<bool>,
        /// Refresh tokens' absolute lifetime, 1h to 365d.
        #[arg(long)]
        refresh_lifetime: Option<String>,
        /// Issue a new client secret (shown once); the old one stops working.
        #[arg(long)]
        rotate_secret: bool,
    },
    Remove {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// Sign with a new key from now on; the old one stays published for 24h.
    Rotate,
    List,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    Add { name: String },
    List,
}

#[derive(Debug, Subcommand)]
pub enum CommandCommand {
    /// Commands of one device, oldest first.
    List { device_id: String },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a policy from a TOML file.
    Set {
        name: String,
        file: PathBuf,
    },
    /// Assign a policy to a group or a device.
    Assign(AssignArgs),
    Show {
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct AssignArgs {
    pub name: String,
    /// Every device in this group (set by the enrollment token).
    #[arg(long, conflicts_with = "device", required_unless_present = "device")]
    pub group: Option<String>,
    /// One device; a device assignment wins over its group's.
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add an admin; prints the new API token once.
    Add {
        email: String,
        #[arg(long)]
        role: String,
    },
    List,
}

/// Where connection settings come from besides flags.
#[derive(Clone, Default)]
pub struct Environment {
    pub server: Option<String>,
    pub ca: Option<PathBuf>,
    pub token: Option<String>,
    /// Holds the saved profile.
    pub config_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("server", &self.server)
            .field("ca", &self.ca)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("config_dir", &self.config_dir)
            .finish()
    }
}

impl Environment {
    /// LATCHKEY_SERVER, LATCHKEY_CA, LATCHKEY_TOKEN and the per-user config dir.
    pub fn from_process() -> Self {
        let config_dir = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("latchctl"));
        Environment {
            server: std::env::var("LATCHKEY_SERVER").ok(),
            ca: std::env::var_os("LATCHKEY_CA").map(PathBuf::from),
            token: std::env::var("LATCHKEY_TOKEN").ok(),
            config_dir,
        }
    }
}

/// The saved connection; written 0600, never printed.
#[derive(Serialize, Deserialize)]
struct Profile {
    server: String,
    ca_pem: String,
    token: String,
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::File {
        path: path.to_owned(),
        source,
    })
}

fn profile_path(env: &Environment) -> Option<PathBuf> {
    env.config_dir.as_ref().map(|d| d.join("profile.toml"))
}

struct Connection {
    server: String,
    ca_pem: String,
    token: String,
}

fn resolve(cli: &Cli, env: &Environment) -> Result<Connection, CliError> {
    let profile: Option<Profile> = profile_path(env)
        .filter(|p| p.exists())
        .map(|p| {
            let text = read(&p)?;
            toml::from_str(&text).map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))
        })
        .transpose()?;
    let server = cli
        .server
        .clone()
        .or_else(|| env.server.clone())
        .or_else(|| profile.as_ref().map(|p| p.server.clone()))
        .ok_or_else(|| {
            CliError::Usage(
                "no server: pass --server URL, set LATCHKEY_SERVER, or run `latchctl login`".into(),
            )
        })?;
    let ca_pem = match cli.ca.as_ref().or(env.ca.as_ref()) {
        Some(path) => read(path)?,
        None => profile.as_ref().map(|p| p.ca_pem.clone()).ok_or_else(|| {
            CliError::Usage(
                "no CA: pass --ca FILE (the server's ca.pem), set LATCHKEY_CA, or run `latchctl login`"
                    .into(),
            )
        })?,
    };
    let token = match &cli.token_file {
        Some(path) => read(path)?.trim().to_owned(),
        None => env
            .token
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.token.clone()))
            .ok_or_else(|| {
                CliError::Usage(
                    "no API token: pass --token-file FILE, set LATCHKEY_TOKEN, or run `latchctl login`"
                        .into(),
                )
            })?,
    };
    let server = if server.contains("://") {
        server
    } else {
        format!("https://{server}")
    };
    Ok(Connection {
        server,
        ca_pem,
        token,
    })
}

type AuthInterceptor =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
type Client =
    AdminServiceClient<tonic::service::interceptor::InterceptedService<Channel, AuthInterceptor>>;

async fn connect(connection: &Connection) -> Result<Client, CliError> {
    let err = |detail: String| CliError::Connect {
        url: connection.server.clone(),
        detail,
    };
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&connection.ca_pem));
    let channel = Channel::from_shared(connection.server.clone())
        .map_err(|e| err(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| err(e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .connect()
        .await
        .map_err(|e| err(latchkey_proto::text::error_chain(&e)))?;
    let header: MetadataValue<_> =
        format!("Bearer {}", connection.token)
            .parse()
            .map_err(|_| {
                CliError::Usage("the API token contains characters a header cannot carry".into())
            })?;
    let interceptor: AuthInterceptor = Box::new(move |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", header.clone());
        Ok(request)
    });
    Ok(AdminServiceClient::with_interceptor(channel, interceptor)
        .max_encoding_message_size(latchkey_proto::limits::MAX_ADMIN_MESSAGE)
        .max_decoding_message_size(latchkey_proto::limits::MAX_ADMIN_ANSWER))
}

/// Awaits an admin API call and unwraps its answer, or says what failed.
async fn call<T>(
    response: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CliError> {
    Ok(response.await.map_err(server_error)?.into_inner())
}

fn server_error(status: tonic::Status) -> CliError {
    use tonic::Code;
    let what = match status.code() {
        Code::PermissionDenied => "permission denied",
        Code::Unauthenticated => "not authenticated",
        Code::NotFound => "not found",
        Code::InvalidArgument => "invalid argument",
        Code::FailedPrecondition => "not possible now",
        Code::AlreadyExists => "already exists",
        Code::Unavailable => "server unavailable",
        Code::DeadlineExceeded => "timed out",
        _ => "server error",
    };
    CliError::Server(format!("{what}: {}", status.message()))
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn user_json(u: &v1::User) -> serde_json::Value {
    json!({
        "id": u.id, "email": u.email, "name": u.name, "kind": u.kind, "status": u.status,
        "groups": u.groups, "created_at": output::rfc3339(u.created_at),
        "updated_at": output::rfc3339(u.updated_at),
    })
}

fn user_text(u: &v1::User) -> String {
    let mut f = output::Fields::default();
    f.add("email", &u.email);
    f.add("name", &u.name);
    f.add("kind", &u.kind);
    f.add("status", &u.status);
    f.add("groups", &u.groups.join(", "));
    f.add("added", &time(u.created_at));
    f.add("changed", &time(u.updated_at));
    f.render()
}

/// A temporary password, shown once.
fn temporary_password_out(json: bool, r: &v1::ResetPasswordResponse) -> String {
    let user = r.user.clone().unwrap_or_default();
    if json {
        pretty(&json!({
            "email": user.email,
            "temporary_password": r.temporary_password,
            "expires_at": output::rfc3339(r.expires_at),
        }))
    } else {
        format!(
            "{}\n\ntemporary password for {}, valid until {}; it must be changed at the first sign-in and is shown only once\n",
            r.temporary_password,
            user.email,
            time(r.expires_at)
        )
    }
}

/// `--refresh-lifetime 30d` in seconds (the server checks the range).
fn lifetime_seconds(text: &str) -> Result<i64, CliError> {
    let duration = latchkey_proto::text::parse_duration(text)
        .map_err(|e| CliError::Usage(format!("--refresh-lifetime {text}: {e}")))?;
    Ok(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX))
}

fn app_json(a: &v1::App) -> serde_json::Value {
    json!({
        "name": a.name, "client_id": a.client_id, "public": a.public,
        "redirect_uris": a.redirect_uris, "device": a.device, "mfa": a.mfa,
        "allowed_networks": a.allowed_networks,
        "post_logout_redirect_uris": a.post_logout_redirect_uris,
        "offline_access": a.offline_access,
        "refresh_lifetime": latchkey_proto::text::format_duration(
            std::time::Duration::from_secs(u64::try_from(a.refresh_lifetime_seconds).unwrap_or(0))
        ),
        "created_at": output::rfc3339(a.created_at), "updated_at": output::rfc3339(a.updated_at),
    })
}

fn app_with_secret_out(json: bool, verb: &str, r: v1::AppWithSecret) -> String {
    let app = r.app.unwrap_or_default();
    if json {
        let mut value = app_json(&app);
        if !r.client_secret.is_empty()
            && let Some(object) = value.as_object_mut()
        {
            object.insert("client_secret".into(), json!(r.client_secret));
        }
        return pretty(&value);
    }
    let mut out = format!(
        "app {} {verb}\nclient id      {}\n",
        app.name, app.client_id
    );
    if !r.client_secret.is_empty() {
        out.push_str(&format!(
            "client secret  {}\n(the secret is shown only once)\n",
            r.client_secret
        ));
    }
    out
}

fn device_json(d: &v1::Device) -> serde_json::Value {
    json!({
        "id": d.id,
        "hostname": d.hostname,
        "platform": d.platform,
        "os_version": d.os_version,
        "state": d.state,
        "user": (!d.user.is_empty()).then_some(&d.user),
        "group": (!d.group.is_empty()).then_some(&d.group),
        "compliant": match d.compliance.as_str() { "compliant" => Some(true), "noncompliant" => Some(false), _ => None },
        "compliance": d.compliance,
        "failed_checks": d.failed_checks.iter().map(|f| json!({"check": f.check, "detail": f.detail})).collect::<Vec<_>>(),
        "policy": (!d.policy.is_empty()).then_some(&d.policy),
        "last_seen": output::rfc3339(d.last_seen),
        "enrolled_at": output::rfc3339(d.enrolled_at),
        "serial": d.serial,
        "model": d.model,
        "machine_id": d.machine_id,
        "certificate_expires_at": output::rfc3339(d.certificate_expires_at),
        "posture": {
            "disk_encryption": d.posture_disk_encryption,
            "screen_lock": d.posture_screen_lock,
            "firewall": d.posture_firewall,
            "reported_at": output::rfc3339(d.posture_at),
        },
    })
}

fn command_json(c: &v1::DeviceCommand) -> serde_json::Value {
    json!({
        "id": c.id,
        "device_id": c.device_id,
        "kind": c.kind,
        "status": c.status,
        "result": (!c.result.is_empty()).then_some(&c.result),
        "created_at": output::rfc3339(c.created_at),
        "acknowledged_at": output::rfc3339(c.acknowledged_at),
        "created_by": c.created_by,
    })
}

fn token_json(t: &v1::EnrollmentToken) -> serde_json::Value {
    json!({
        "id": t.id,
        "user": (!t.user.is_empty()).then_some(&t.user),
        "group": (!t.group.is_empty()).then_some(&t.group),
        "expires_at": output::rfc3339(t.expires_at),
        "uses_allowed": t.uses_allowed,
        "uses_count": t.uses_count,
        "revoked": t.revoked,
        "created_by": t.created_by,
    })
}

fn policy_json(p: &v1::Policy) -> serde_json::Value {
    json!({
        "name": p.name, "version": p.version, "updated_at": output::rfc3339(p.updated_at),
        "groups": p.groups, "devices": p.devices, "document": p.document,
    })
}

fn admin_json(a: &v1::Admin) -> serde_json::Value {
    json!({"id": a.id, "email": a.email, "role": a.role, "created_at": output::rfc3339(a.created_at)})
}

fn device_text(d: &v1::Device) -> String {
    let mut t = output::Fields::default();
    t.add("id", &d.id);
    t.add("hostname", &d.hostname);
    t.add("platform", &format!("{} {}", d.platform, d.os_version));
    t.add("state", &d.state);
    t.add("user", output::or_dash(&d.user));
    t.add("group", output::or_dash(&d.group));
    t.add(
        "policy",
        if d.policy.is_empty() {
            "(default rules)"
        } else {
            &d.policy
        },
    );
    t.add("compliance", &d.compliance);
    for f in &d.failed_checks {
        t.add("  failing", &format!("{}: {}", f.check, f.detail));
    }
    t.add(
        "posture",
        &if d.posture_at == 0 {
            "not reported yet".to_owned()
        } else {
            format!(
                "disk encryption {}, screen lock {}, firewall {} (reported {})",
                d.posture_disk_encryption,
                d.posture_screen_lock,
                d.posture_firewall,
                time(d.posture_at)
            )
        },
    );
    t.add("last seen", &time(d.last_seen));
    t.add("enrolled", &time(d.enrolled_at));
    t.add(
        "certificate",
        &format!("expires {}", time(d.certificate_expires_at)),
    );
    t.add("serial", output::or_dash(&d.serial));
    t.add("model", output::or_dash(&d.model));
    t.render()
}

fn commands_table(commands: &[v1::DeviceCommand]) -> String {
    let mut table = Table::new(&["ID", "KIND", "STATUS", "CREATED", "BY", "RESULT"]);
    for c in commands {
        table.row(vec![
            c.id.clone(),
            c.kind.clone(),
            c.status.clone(),
            time(c.created_at),
            c.created_by.clone(),
            c.result.clone(),
        ]);
    }
    table.render()
}

/// Executes one latchctl invocation and returns what it prints.
pub async fn run(cli: Cli, env: &Environment) -> Result<String, CliError> {
    let connection = resolve(&cli, env)?;
    if let Command::Login = cli.command {
        return login(&connection, env).await;
    }
    let mut client = connect(&connection).await?;
    let json = cli.json;
    let now = Utc::now();
    let out = match cli.command {
        Command::Login => String::new(),
        Command::Whoami => {
            let me = call(client.who_am_i(v1::WhoAmIRequest {})).await?;
            if json {
                pretty(&admin_json(&me))
            } else {
                format!("{} ({})\n", me.email, me.role)
            }
        }
        Command::Token(TokenCommand::Create {
            user,
            group,
            expires,
            uses,
        }) => {
            let expires = latchkey_proto::text::parse_duration(&expires)
                .map_err(|e| e.to_string())
                .and_then(|d| latchkey_proto::limits::check_token_lifetime(d).map(|()| d))
                .map_err(|e| CliError::Usage(format!("--expires {expires}: {e}")))?;
            latchkey_proto::limits::check_token_uses(uses)
                .map_err(|e| CliError::Usage(format!("--uses {uses}: {e}")))?;
            let response = call(
                client.create_enrollment_token(v1::CreateEnrollmentTokenRequest {
                    user: user.unwrap_or_default(),
                    group: group.unwrap_or_default(),
                    expires_in_seconds: Some(i64::try_from(expires.as_secs()).unwrap_or(i64::MAX)),
                    uses: Some(uses),
                }),
            )
            .await?;
            let token = response.token.unwrap_or_default();
            if json {
                let mut value = token_json(&token);
                if let Some(object) = value.as_object_mut() {
                    object.insert("secret".into(), json!(response.secret));
                }
                pretty(&value)
            } else {
                format!(
                    "{}\n\ntoken id {} · {} use(s) · expires {}\nThe secret above is shown only once. Enroll a device with:\n  latchkey-agent enroll --server {} --ca ca.pem --token {}\n",
                    response.secret,
                    token.id,
                    token.uses_allowed,
                    time(token.expires_at),
                    connection.server,
                    response.secret
                )
            }
        }
        Command::Token(TokenCommand::List) => {
            let tokens = call(client.list_enrollment_tokens(v1::ListEnrollmentTokensRequest {}))
                .await?
                .tokens;
            if json {
                pretty(&json!(tokens.iter().map(token_json).collect::<Vec<_>>()))
            } else {
                let mut table = Table::new(&[
                    "ID",
                    "USES",
                    "EXPIRES",
                    "STATUS",
                    "USER",
                    "GROUP",
                    "CREATED BY",
                ]);
                for t in &tokens {
                    let status = if t.revoked {
                        "revoked"
                    } else if t.expires_at <= now.timestamp() {
                        "expired"
                    } else if t.uses_count >= t.uses_allowed {
                        "used up"
                    } else {
                        "usable"
                    };
                    table.row(vec![
                        t.id.clone(),
                        format!("{}/{}", t.uses_count, t.uses_allowed),
                        time(t.expires_at),
                        status.to_owned(),
                        output::or_dash(&t.user).to_owned(),
                        output::or_dash(&t.group).to_owned(),
                        t.created_by.clone(),
                    ]);
                }
                table.render()
            }
        }
        Command::Token(TokenCommand::Revoke { id }) => {
            let token =
                call(client.revoke_enrollment_token(v1::RevokeEnrollmentTokenRequest { id }))
                    .await?;
            if json {
                pretty(&token_json(&token))
            } else {
                format!("token {} revoked\n", token.id)
            }
        }
        Command::Device(DeviceCommand::List) => {
            let devices = call(client.list_devices(v1::ListDevicesRequest {}))
                .await?
                .devices;
            if json {
                pretty(&json!(devices.iter().map(device_json).collect::<Vec<_>>()))
            } else {
                let mut table = Table::new(&[
                    "ID",
                    "HOSTNAME",
                    "PLATFORM",
                    "OS",
                    "STATE",
                    "USER",
                    "COMPLIANCE",
                    "LAST SEEN",
                ]);
                for d in &devices {
                    table.row(vec![
                        d.id.clone(),
                        d.hostname.clone(),
                        d.platform.clone(),
                        d.os_version.clone(),
                        d.state.clone(),
                        output::or_dash(&d.user).to_owned(),
                        d.compliance.clone(),
                        output::ago(d.last_seen, now),
                    ]);
                }
                table.render()
            }
        }
        Command::Device(DeviceCommand::Show { id }) => {
            let device = call(client.get_device(v1::GetDeviceRequest { id })).await?;
            if json {
                pretty(&device_json(&device))
            } else {
                device_text(&device)
            }
        }
        Command::Device(DeviceCommand::Lock { id, message }) => {
            let r = call(client.lock_device(v1::LockDeviceRequest {
                id,
                message: message.unwrap_or_default(),
            }))
            .await?;
            command_result(json, "locked", r)
        }
        Command::Device(DeviceCommand::Unlock { id }) => {
            let r = call(client.unlock_device(v1::UnlockDeviceRequest { id })).await?;
            command_result(json, "unlocked", r)
        }
        Command::Device(DeviceCommand::Wipe { id, confirm }) => {
            if !confirm {
                return Err(CliError::Usage(format!(
                    "wiping removes the agent's key, certificates and managed data and cannot be undone; run `latchctl device wipe {id} --confirm`"
                )));
            }
            let r = call(client.wipe_device(v1::WipeDeviceRequest { id })).await?;
            command_result(json, "being wiped", r)
        }
        Command::Device(DeviceCommand::Retire { id }) => {
            let device = call(client.retire_device(v1::RetireDeviceRequest { id })).await?;
            if json {
                pretty(&device_json(&device))
            } else {
                format!(
                    "device {} ({}) retired; its certificates are revoked\n",
                    device.id, device.hostname
                )
            }
        }
        Command::Command(CommandCommand::List { device_id }) => {
            let commands = call(client.list_commands(v1::ListCommandsRequest { device_id }))
                .await?
                .commands;
            if json {
                pretty(&json!(
                    commands.iter().map(command_json).collect::<Vec<_>>()
                ))
            } else {
                commands_table(&commands)
            }
        }
        Command::Policy(PolicyCommand::Set { name, file }) => {
            let document = read(&file)?;
            let policy = call(client.set_policy(v1::SetPolicyRequest { name, document })).await?;
            if json {
                pretty(&policy_json(&policy))
            } else {
                format!(
                    "policy {} saved (version {})\n",
                    policy.name, policy.version
                )
            }
        }
        Command::Policy(PolicyCommand::Assign(args)) => {
            let target = match (args.group, args.device) {
                (Some(g), _) => v1::assign_policy_request::Target::Group(g),
                (None, Some(d)) => v1::assign_policy_request::Target::DeviceId(d),
                (None, None) => {
                    return Err(CliError::Usage("pass --group G or --device ID".into()));
                }
            };
            let policy = call(client.assign_policy(v1::AssignPolicyRequest {
                name: args.name,
                target: Some(target),
            }))
            .await?;
            if json {
                pretty(&policy_json(&policy))
            } else {
                format!(
                    "policy {} now applies to groups [{}] and devices [{}]\n",
                    policy.name,
                    policy.groups.join(", "),
                    policy.devices.join(", ")
                )
            }
        }
        Command::Policy(PolicyCommand::Show { name }) => {
            let p = call(client.get_policy(v1::GetPolicyRequest { name })).await?;
            if json {
                pretty(&policy_json(&p))
            } else {
                let mut f = output::Fields::default();
                f.add("name", &p.name);
                f.add("version", &p.version.to_string());
                f.add("updated", &time(p.updated_at));
                f.add("groups", &p.groups.join(", "));
                f.add("devices", &p.devices.join(", "));
                format!("{}\n{}", f.render(), p.document.trim_end()) + "\n"
            }
        }
        Command::Device(DeviceCommand::Assign { id, user }) => {
            let device = call(client.assign_device(v1::AssignDeviceRequest { id, user })).await?;
            if json {
                pretty(&device_json(&device))
            } else {
                format!(
                    "device {} ({}) now belongs to {}\n",
                    device.id, device.hostname, device.user
                )
            }
        }
        Command::User(UserCommand::Add {
            email,
            name,
            groups,
            break_glass,
        }) => {
            let user = call(client.add_user(v1::AddUserRequest {
                email,
                name,
                groups,
                kind: if break_glass { "break-glass" } else { "user" }.to_owned(),
            }))
            .await?;
            if json {
                pretty(&user_json(&user))
            } else {
                format!("user {} added\n", user.email)
            }
        }
        Command::User(UserCommand::Import { file }) => {
            let bytes = std::fs::read(&file).map_err(|source| CliError::File {
                path: file.clone(),
                source,
            })?;
            let csv = import::decode(&file, &bytes)?;
            import::check_size(&file, &csv)?;
            let report = call(client.import_users(v1::ImportUsersRequest { csv })).await?;
            if json {
                pretty(&json!({
                    "added": report.added,
                    "rejected": report.rejected.iter().map(|r| json!({"line": r.line, "email": r.email, "reason": r.reason})).collect::<Vec<_>>(),
                }))
            } else {
                let mut out = format!(
                    "{} user(s) added, {} row(s) rejected\n",
                    report.added.len(),
                    report.rejected.len()
                );
                if !report.rejected.is_empty() {
                    let mut table = Table::new(&["LINE", "EMAIL", "REASON"]);
                    for r in &report.rejected {
                        table.row(vec![
                            r.line.to_string(),
                            output::or_dash(&r.email).to_owned(),
                            r.reason.clone(),
                        ]);
                    }
                    out.push_str(&table.render());
                }
                out
            }
        }
        Command::User(UserCommand::List) => {
            let users = call(client.list_users(v1::ListUsersRequest {}))
                .await?
                .users;
            if json {
                pretty(&json!(users.iter().map(user_json).collect::<Vec<_>>()))
            } else {
                let mut table = Table::new(&["EMAIL", "NAME", "KIND", "STATUS", "GROUPS"]);
                for u in &users {
                    table.row(vec![
                        u.email.clone(),
                        u.name.clone(),
                        u.kind.clone(),
                        u.status.clone(),
                        u.groups.join(", "),
                    ]);
                }
                table.render()
            }
        }
        Command::User(UserCommand::Show { email }) => {
            let user = call(client.get_user(v1::GetUserRequest { email })).await?;
            if json {
                pretty(&user_json(&user))
            } else {
                user_text(&user)
            }
        }
        Command::User(
            command @ (UserCommand::Suspend { .. }
            | UserCommand::Activate { .. }
            | UserCommand::Delete { .. }),
        ) => {
            let (email, status, verb) = match command {
                UserCommand::Suspend { email } => (email, "suspended", "suspended"),
                UserCommand::Activate { email } => (email, "active", "activated"),
                UserCommand::Delete { email } => (email, "deleted", "deleted"),
                _ => return Err(CliError::Usage("unexpected user command".into())),
            };
            let user = call(client.set_user_status(v1::SetUserStatusRequest {
                email,
                status: status.to_owned(),
            }))
            .await?;
            if json {
                pretty(&user_json(&user))
            } else {
                format!("user {} {verb}\n", user.email)
            }
        }
        Command::User(UserCommand::ResetPassword { email }) => {
            let r = call(client.reset_password(v1::ResetPasswordRequest { email })).await?;
            temporary_password_out(json, &r)
        }
        Command::User(UserCommand::ResetMfa { email }) => {
            let r = call(client.reset_mfa(v1::ResetPasswordRequest { email })).await?;
            let mut out = temporary_password_out(json, &r);
            if !json {
                out.push_str("the authenticator app was removed and the user's sessions ended; they set up a new one at the next sign-in\n");
            }
            out
        }
        Command::Group(GroupCommand::Add { name }) => {
            let group = call(client.add_group(v1::AddGroupRequest { name })).await?;
            if json {
                pretty(
                    &json!({"name": group.name, "members": group.members, "created_at": output::rfc3339(group.created_at)}),
                )
            } else {
                format!("group {} added\n", group.name)
            }
        }
        Command::Group(GroupCommand::List) => {
            let groups = call(client.list_groups(v1::ListGroupsRequest {}))
                .await?
                .groups;
            if json {
                pretty(&json!(groups.iter().map(|g| json!({"name": g.name, "members": g.members, "created_at": output::rfc3339(g.created_at)})).collect::<Vec<_>>()))
            } else {
                let mut table = Table::new(&["GROUP", "MEMBERS", "ADDED"]);
                for g in &groups {
                    table.row(vec![
                        g.name.clone(),
                        g.members.to_string(),
                        time(g.created_at),
                    ]);
                }
                table.render()
            }
        }
        Command::App(AppCommand::Add {
            name,
            redirect_uris,
            public,
            device,
            mfa,
            allow_ip,
            post_logout_redirect_uris,
            offline_access,
            refresh_lifetime,
        }) => {
            let refresh_lifetime_seconds = refresh_lifetime
                .as_deref()
                .map(lifetime_seconds)
                .transpose()?;
            let r = call(client.add_app(v1::AddAppRequest {
                name,
                redirect_uris,
                public,
                device,
                mfa,
                allowed_networks: allow_ip,
                post_logout_redirect_uris,
                offline_access,
                refresh_lifetime_seconds,
            }))
            .await?;
            app_with_secret_out(json, "registered", r)
        }
        Command::App(AppCommand::List) => {
            let apps = call(client.list_apps(v1::ListAppsRequest {})).await?.apps;
            if json {
                pretty(&json!(apps.iter().map(app_json).collect::<Vec<_>>()))
            } else {
                let mut table = Table::new(&[
                    "NAME",
                    "CLIENT ID",
                    "TYPE",
                    "DEVICE",
                    "MFA",
                    "NETWORKS",
                    "REDIRECT URIS",
                ]);
                for a in &apps {
                    table.row(vec![
                        a.name.clone(),
                        a.client_id.clone(),
                        if a.public { "public" } else { "confidential" }.to_owned(),
                        a.device.clone(),
                        a.mfa.clone(),
                        if a.allowed_networks.is_empty() {
                            "any".to_owned()
                        } else {
                            a.allowed_networks.join(" ")
                        },
                        a.redirect_uris.join(" "),
                    ]);
                }
                table.render()
            }
        }
        Command::App(AppCommand::Update {
            name,
            redirect_uris,
            device,
            mfa,
            allow_ip,
            any_ip,
            post_logout_redirect_uris,
            no_post_logout_redirect_uri,
            offline_access,
            refresh_lifetime,
            rotate_secret,
        }) => {
            let refresh_lifetime_seconds = refresh_lifetime
                .as_deref()
                .map(lifetime_seconds)
                .transpose()?;
            let r = call(client.update_app(v1::UpdateAppRequest {
                name,
                redirect_uris,
                device: device.unwrap_or_default(),
                mfa: mfa.unwrap_or_default(),
                rotate_secret,
                allowed_networks: allow_ip,
                allow_any_network: any_ip,
                post_logout_redirect_uris,
                clear_post_logout_redirect_uris: no_post_logout_redirect_uri,
                offline_access,
                refresh_lifetime_seconds,
            }))
            .await?;
            app_with_secret_out(json, "updated", r)
        }
        Command::App(AppCommand::Remove { name }) => {
            let app = call(client.remove_app(v1::RemoveAppRequest { name })).await?;
            if json {
                pretty(&app_json(&app))
            } else {
                format!("app {} removed\n", app.name)
            }
        }
        Command::SigningKey(SigningKeyCommand::Rotate) => {
            let key = call(client.rotate_signing_key(v1::RotateSigningKeyRequest {})).await?;
            if json {
                pretty(&json!({"kid": key.kid, "created_at": output::rfc3339(key.created_at)}))
            } else {
                format!(
                    "signing key {} is now active; the previous key stays published for 24h\n",
                    key.kid
                )
            }
        }
        Command::SigningKey(SigningKeyCommand::List) => {
            let keys = call(client.list_signing_keys(v1::ListSigningKeysRequest {}))
                .await?
                .keys;
            if json {
                pretty(&json!(
                    keys.iter()
                        .map(|k| json!({
                            "kid": k.kid,
                            "created_at": output::rfc3339(k.created_at),
                            "retired_at": output::rfc3339(k.retired_at),
                            "active": k.retired_at == 0,
                        }))
                        .collect::<Vec<_>>()
                ))
            } else {
                let mut table = Table::new(&["KID", "CREATED", "STATE"]);
                for k in &keys {
                    let state = if k.retired_at == 0 {
                        "active".to_owned()
                    } else {
                        format!("retired {}", time(k.retired_at))
                    };
                    table.row(vec![k.kid.clone(), time(k.created_at), state]);
                }
                table.render()
            }
        }
        Command::Admin(AdminCommand::Add { email, role }) => {
            let r = call(client.add_admin(v1::AddAdminRequest { email, role })).await?;
            let admin = r.admin.unwrap_or_default();
            if json {
                let mut value = admin_json(&admin);
                if let Some(object) = value.as_object_mut() {
                    object.insert("token".into(), json!(r.token));
                }
                pretty(&value)
            } else {
                format!(
                    "{}\n\nadmin {} added with role {}; the API token above is shown only once\n",
                    r.token, admin.email, admin.role
                )
            }
        }
        Command::Admin(AdminCommand::List) => {
            let admins = call(client.list_admins(v1::ListAdminsRequest {}))
                .await?
                .admins;
            if json {
                pretty(&json!(admins.iter().map(admin_json).collect::<Vec<_>>()))
            } else {
                let mut table = Table::new(&["EMAIL", "ROLE", "ADDED"]);
                for a in &admins {
                    table.row(vec![a.email.clone(), a.role.clone(), time(a.created_at)]);
                }
                table.render()
            }
        }
        Command::Audit { since } => {
            let since = latchkey_proto::text::parse_duration(&since)
                .map_err(|e| CliError::Usage(format!("--since: {e}")))?;
            let from = now.timestamp() - i64::try_from(since.as_secs()).unwrap_or(i64::MAX / 2);
            let events = call(client.list_audit(v1::ListAuditRequest {
                since: from,
                limit: 0,
            }))
            .await?
            .events;
            if json {
                pretty(&json!(events.iter().map(|e| json!({
                    "id": e.id, "at": output::rfc3339(e.at), "actor": e.actor, "action": e.action,
                    "target": e.target, "outcome": e.outcome, "detail": e.detail,
                })).collect::<Vec<_>>()))
            } else {
                let mut table =
                    Table::new(&["TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAIL"]);
                for e in &events {
                    table.row(vec![
                        time(e.at),
                        e.actor.clone(),
                        e.action.clone(),
                        e.target.clone(),
                        e.outcome.clone(),
                        e.detail.clone(),
                    ]);
                }
                table.render()
            }
        }
    };
    Ok(out)
}

fn command_result(json: bool, verb: &str, r: v1::DeviceCommandResponse) -> String {
    let device = r.device.unwrap_or_default();
    let command = r.command.unwrap_or_default();
    if json {
        pretty(&json!({"device": device_json(&device), "command": command_json(&command)}))
    } else {
        format!(
            "device {} ({}) {verb}; state is now {}\ncommand {} is {}; follow it with `latchctl command list {}`\n",
            device.id, device.hostname, device.state, command.id, command.status, device.id
        )
    }
}

async fn login(connection: &Connection, env: &Environment) -> Result<String, CliError> {
    let mut client = connect(connection).await?;
    let me = call(client.who_am_i(v1::WhoAmIRequest {})).await?;
    let path = profile_path(env).ok_or_else(|| {
        CliError::Usage("no config directory (set HOME or XDG_CONFIG_HOME)".into())
    })?;
    let profile = Profile {
        server: connection.server.clone(),
        ca_pem: connection.ca_pem.clone(),
        token: connection.token.clone(),
    };
    let text = toml::to_string(&profile).map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| CliError::File {
            path: dir.to_owned(),
            source,
        })?;
    }
    write_private(&path, &text)?;
    Ok(format!(
        "logged in to {} as {} ({}); profile saved in {}\n",
        connection.server,
        me.email,
        me.role,
        path.display()
    ))
}

fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    latchkey_certs::files::write_atomic(
        path,
        text.as_bytes(),
        latchkey_certs::files::Access::OwnerOnly,
    )
    .map_err(|source| CliError::File {
        path: path.to_owned(),
        source,
    })
}
