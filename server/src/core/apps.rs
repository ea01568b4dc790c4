//! The apps service: OpenID Connect relying parties, their exact redirect
//! URIs and their access policy (which device, which second factor).

use chrono::{DateTime, Utc};

use super::auth::{self, AuthenticatedAdmin, Permission};
use super::{Audit, CoreError, validate_label};
use crate::domain::app::{App, DevicePolicy, MfaPolicy};
use crate::domain::audit::{AdminRequest, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::ids::ClientId;
use crate::domain::networks::{self, Cidr};
use crate::store::Store;

/// Most redirect URIs one app may register.
const MAX_REDIRECT_URIS: usize = 20;

/// An app as an admin describes it.
#[derive(Debug, Clone)]
pub struct NewApp {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub device_policy: DevicePolicy,
    pub mfa_policy: MfaPolicy,
    /// CIDR blocks sign-ins may come from; empty: any.
    pub allowed_networks: Vec<String>,
    /// Where a sign-out may send the browser.
    pub post_logout_redirect_uris: Vec<String>,
    /// The app may hold refresh tokens.
    pub offline_access: bool,
    /// Refresh tokens' absolute lifetime; `None`: the default (30 days).
    pub refresh_lifetime: Option<chrono::Duration>,
}

/// Changes to an app; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct AppChanges {
    pub redirect_uris: Option<Vec<String>>,
    pub device_policy: Option<DevicePolicy>,
    pub mfa_policy: Option<MfaPolicy>,
    /// Replaces the address rules (`Some(vec![])` allows any address).
    pub allowed_networks: Option<Vec<String>>,
    /// Replaces the sign-out addresses (`Some(vec![])` removes them).
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub offline_access: Option<bool>,
    pub refresh_lifetime: Option<chrono::Duration>,
    pub rotate_secret: bool,
}

/// The shortest and longest absolute lifetime an app's refresh tokens may
/// have.
const MIN_REFRESH_LIFETIME: chrono::Duration = chrono::Duration::hours(1);
const MAX_REFRESH_LIFETIME: chrono::Duration = chrono::Duration::days(365);

fn validate_refresh_lifetime(lifetime: chrono::Duration) -> Result<chrono::Duration, CoreError> {
    if lifetime < MIN_REFRESH_LIFETIME || lifetime > MAX_REFRESH_LIFETIME {
        return Err(CoreError::InvalidArgument(format!(
            "the refresh token lifetime must be from 1h to 365d (was {}s)",
            lifetime.num_seconds()
        )));
    }
    Ok(lifetime)
}

/// A client secret, shown once. `Debug` hides it.
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// Redirect URIs are compared exactly at /authorize (RFC 9700 §4.1.3), so
/// they are checked strictly here: absolute and in the normal form a URL
/// parser gives them, no fragment (RFC 6749 §3.1.2), no user name or
/// password, https except for the loopback addresses of native apps
/// (RFC 8252 §7.3; `localhost` is not accepted, §8.3).
pub fn validate_redirect_uri(uri: &str) -> Result<String, CoreError> {
    let bad = |why: &str| CoreError::InvalidArgument(format!("redirect URI {uri:?} {why}"));
    if uri.len() > 2000
        || uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err(bad(
            "must be at most 2000 characters without spaces or backslashes",
        ));
    }
    let parsed = url::Url::parse(uri)
        .map_err(|_| bad("must be an absolute URI such as https://app.example.com/callback"))?;
    if uri.contains('#') {
        return Err(bad("must not contain a fragment (#)"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not carry a user name or password"));
    }
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(_)) => false,
        None => return Err(bad("needs a host")),
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(bad(
                "must use https (http only for the loopback addresses 127.0.0.1 and [::1])",
            ));
        }
        _ => return Err(bad("must use https")),
    }
    if parsed.as_str() != uri {
        return Err(bad(&format!(
            "is not in its normal form; write it as {parsed}"
        )));
    }
    Ok(uri.to_owned())
}

/// Whether a redirect URI presented at /authorize matches a registered one:
/// character for character (RFC 9700 §4.1.3), except that for http
/// redirects to a loopback IP address the port may differ, since native
/// apps listen on whatever port is free at sign-in (RFC 8252 §7.3).
pub fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(registered), Ok(presented)) = (url::Url::parse(registered), url::Url::parse(presented))
    else {
        return false;
    };
    let loopback = |u: &url::Url| match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    registered.scheme() == "http"
        && presented.scheme() == "http"
        && loopback(&registered)
        && registered.host() == presented.host()
        && registered.path() == presented.path()
        && registered.query() == presented.query()
        && presented.fragment().is_none()
        && presented.username().is_empty()
        && presented.password().is_none()
}

impl App {
    /// Whether this app registered `uri` (see [`redirect_uri_matches`]).
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| redirect_uri_matches(registered, uri))
    }
}

fn validate_redirect_uris(uris: &[String]) -> Result<Vec<String>, CoreError> {
    if uris.is_empty() {
        return Err(CoreError::InvalidArgument(
            "an app needs at least one --redirect-uri".into(),
        ));
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(CoreError::InvalidArgument(format!(
            "an app may register at most {MAX_REDIRECT_URIS} redirect URIs"
        )));
    }
    let mut out = Vec::with_capacity(uris.len());
    for uri in uris {
        let uri = validate_redirect_uri(uri)?;
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

/// Sign-out addresses: checked like redirect URIs; none is allowed.
fn validate_redirect_uris_allow_none(uris: &[String]) -> Result<Vec<String>, CoreError> {
    if uris.is_empty() {
        return Ok(Vec::new());
    }
    validate_redirect_uris(uris)
}

/// Most address blocks one app may list.
const MAX_NETWORKS: usize = 100;

fn validate_networks(texts: &[String]) -> Result<Vec<Cidr>, CoreError> {
    if texts.len() > MAX_NETWORKS {
        return Err(CoreError::InvalidArgument(format!(
            "at most {MAX_NETWORKS} address blocks per app"
        )));
    }
    let mut out: Vec<Cidr> = Vec::new();
    for cidr in networks::parse_all(texts).map_err(|e| CoreError::InvalidArgument(e.to_string()))? {
        if !out.contains(&cidr) {
            out.push(cidr);
        }
    }
    Ok(out)
}

fn describe(app: &App) -> String {
    let networks: Vec<String> = app
        .allowed_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    format!(
        "{}, device {}, mfa {}, redirect URIs [{}], networks [{}], sign-out URIs [{}], refresh tokens {}",
        if app.public { "public" } else { "confidential" },
        app.device_policy.as_str(),
        app.mfa_policy.as_str(),
        app.redirect_uris.join(" "),
        if networks.is_empty() {
            "any".to_owned()
        } else {
            networks.join(" ")
        },
        app.post_logout_redirect_uris.join(" "),
        if app.offline_access {
            format!("for {}s", app.refresh_lifetime.num_seconds())
        } else {
            "none".to_owned()
        }
    )
}

/// The apps people sign in to.
pub struct Apps {
    pub(super) store: Store,
    pub(super) audit: Audit,
}

impl Apps {
    /// Registers an app; a confidential app gets a client secret, shown once.
    pub async fn add_app(
        &self,
        caller: &AuthenticatedAdmin,
        new: NewApp,
        now: DateTime<Utc>,
    ) -> Result<(App, Option<ClientSecret>), CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageApps,
                AdminRequest::RegisterApps,
                &new.name,
                now,
            )
            .await?;
        let name = validate_label("app", &new.name)?;
        let redirect_uris = validate_redirect_uris(&new.redirect_uris)?;
        let allowed_networks = validate_networks(&new.allowed_networks)?;
        let post_logout_redirect_uris =
            validate_redirect_uris_allow_none(&new.post_logout_redirect_uris)?;
        let refresh_lifetime = new
            .refresh_lifetime
            .map(validate_refresh_lifetime)
            .transpose()?
            .unwrap_or(crate::domain::app::DEFAULT_REFRESH_LIFETIME);
        if self.store.app_by_name(&name).await?.is_some() {
            return Err(CoreError::AlreadyExists(format!(
                "app {name} already exists"
            )));
        }
        let secret = if new.public {
            None
        } else {
            Some(auth::new_secret(auth::CLIENT_SECRET_PREFIX)?)
        };
        let app = App {
            client_id: ClientId::generate(),
            name,
            public: new.public,
            redirect_uris,
            device_policy: new.device_policy,
            mfa_policy: new.mfa_policy,
            allowed_networks,
            post_logout_redirect_uris,
            offline_access: new.offline_access,
            refresh_lifetime,
            created_at: now,
            updated_at: now,
        };
        let tx = self.store.begin().await?;
        tx.insert_app(&app, secret.as_ref().map(|(_, hash)| hash.as_str()))
            .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::AppAdd,
            target: app.name.clone(),
            outcome: AuditOutcome::Ok,
            detail: format!("client {}; {}", app.client_id, describe(&app)),
        })
        .await?;
        tx.commit().await?;
        Ok((app, secret.map(|(secret, _)| ClientSecret(secret))))
    }

    pub async fn list_apps(
        &self,
        caller: &AuthenticatedAdmin,
        now: DateTime<Utc>,
    ) -> Result<Vec<App>, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ReadApps,
                AdminRequest::ListApps,
                "",
                now,
            )
            .await?;
        Ok(self.store.list_apps().await?)
    }

    /// An app by its name (as people write it) or its client id (the
    /// ASCII handle scripts may prefer).
    async fn existing_app(&self, name: &str) -> Result<App, CoreError> {
        use unicode_normalization::UnicodeNormalization;
        let normal: String = name.trim().nfc().collect();
        if let Some(app) = self.store.app_by_name(&normal).await? {
            return Ok(app);
        }
        if let Some(client_id) = ClientId::parse(name.trim())
            && let Some((app, _)) = self.store.app_by_client_id(&client_id).await?
        {
            return Ok(app);
        }
        Err(CoreError::NotFound(format!("app {name}")))
    }

    pub async fn update_app(
        &self,
        caller: &AuthenticatedAdmin,
        name: &str,
        changes: AppChanges,
        now: DateTime<Utc>,
    ) -> Result<(App, Option<ClientSecret>), CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageApps,
                AdminRequest::ChangeApps,
                name,
                now,
            )
            .await?;
        let mut app = self.existing_app(name).await?;
        if let Some(uris) = &changes.redirect_uris {
            app.redirect_uris = validate_redirect_uris(uris)?;
        }
        if let Some(device) = changes.device_policy {
            app.device_policy = device;
        }
        if let Some(mfa) = changes.mfa_policy {
            app.mfa_policy = mfa;
        }
        if let Some(networks) = &changes.allowed_networks {
            app.allowed_networks = validate_networks(networks)?;
        }
        if let Some(uris) = &changes.post_logout_redirect_uris {
            app.post_logout_redirect_uris = validate_redirect_uris_allow_none(uris)?;
        }
        if let Some(offline) = changes.offline_access {
            app.offline_access = offline;
        }
        if let Some(lifetime) = changes.refresh_lifetime {
            app.refresh_lifetime = validate_refresh_lifetime(lifetime)?;
        }
        if changes.rotate_secret && app.public {
            return Err(CoreError::FailedPrecondition(format!(
                "app {name} is a public client; it has no secret"
            )));
        }
        let secret = if changes.rotate_secret {
            Some(auth::new_secret(auth::CLIENT_SECRET_PREFIX)?)
        } else {
            None
        };
        app.updated_at = now;
        let tx = self.store.begin().await?;
        tx.update_app(&app, secret.as_ref().map(|(_, hash)| hash.as_str()))
            .await?;
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::AppUpdate,
            target: app.name.clone(),
            outcome: AuditOutcome::Ok,
            detail: format!(
                "{}{}",
                describe(&app),
                if secret.is_some() {
                    "; secret rotated"
                } else {
                    ""
                }
            ),
        })
        .await?;
        tx.commit().await?;
        Ok((app, secret.map(|(secret, _)| ClientSecret(secret))))
    }

    pub async fn remove_app(
        &self,
        caller: &AuthenticatedAdmin,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<App, CoreError> {
        self.audit
            .authorize(
                caller,
                Permission::ManageApps,
                AdminRequest::RemoveApps,
                name,
                now,
            )
            .await?;
        let app = self.existing_app(name).await?;
        let tx = self.store.begin().await?;
        if !tx.delete_app(&app.client_id).await? {
            return Err(CoreError::NotFound(format!("app {name}")));
        }
        tx.audit(&AuditEntry {
            at: now,
            actor: caller.actor(),
            action: AuditAction::AppRemove,
            target: app.name.clone(),
            outcome: AuditOutcome::Ok,
            detail: format!("client {}", app.client_id),
        })
        .await?;
        tx.commit().await?;
        Ok(app)
    }
}

#[cfg(test)]
mod tests {
    use super::{redirect_uri_matches, validate_redirect_uri};

    #[test]
    fn redirects_match_exactly_but_loopback_ports_may_differ() {
        let web = "https://crm.example.co.jp/cb";
        assert!(redirect_uri_matches(web, web));
        for other in [
            "https://crm.example.co.jp/cb/",
            "https://crm.example.co.jp/cb?x=1",
            "https://crm.example.co.jp:8443/cb",
            "https://CRM.example.co.jp/cb",
            "http://crm.example.co.jp/cb",
        ] {
            assert!(!redirect_uri_matches(web, other), "{other}");
        }
        let native = "http://127.0.0.1/cb";
        assert!(redirect_uri_matches(native, "http://127.0.0.1:49152/cb"));
        assert!(redirect_uri_matches(
            "http://[::1]:8400/cb",
            "http://[::1]:50000/cb"
        ));
        for other in [
            "http://127.0.0.1:49152/other",
            "http://127.0.0.2:49152/cb",
            "http://localhost:49152/cb",
            "https://127.0.0.1:49152/cb",
            "http://127.0.0.1:49152/cb#x",
            "http://u@127.0.0.1:49152/cb",
        ] {
            assert!(!redirect_uri_matches(native, other), "{other}");
        }
    }

    #[test]
    fn redirect_uris_are_absolute_https_or_loopback_without_fragments() {
        for good in [
            "https://app.example.com/callback",
            "https://app.example.com:8443/cb?x=1",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:8400/cb",
            "http://[::1]:9000/cb",
        ] {
            assert!(validate_redirect_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "/callback",
            "https:///cb",
            "javascript://alert(1)",
            "https://app.example.com/a b",
            "http://localhost:8080/cb",
            "http://evil.example\\@127.0.0.1/cb",
            "https://user:pass@app.example.com/cb",
            "http://[::1/cb",
            "https://app.example.com:port/cb",
            "https://app.example.com",
            "https://APP.example.com/cb",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
