//! The server's own client of its sign-in: Automated Device Enrollment's
//! sign-in (`[apple] dep_sign_in`), through which Setup Assistant's web
//! view has the device's user sign in before the device gets its
//! enrollment profile.
//!
//! It is an OpenID Connect client like any app, so the sign-in is the one
//! every app gets: the same pages, throttles, address rules, history and
//! audit. What sets it apart: it is built in (not in the store, so no
//! admin lists, changes or removes it, and the home page does not show
//! it); it exists only while the setting is on; it is public and must use
//! PKCE; its one redirect URI is the server's own `/apple/dep/callback`;
//! it always asks for the user's second factor and never for a managed
//! device (the device is not enrolled yet); and its codes are redeemed
//! only by that callback (`/token` does not know the client, so it
//! refuses them as `invalid_client`).

use chrono::{DateTime, Utc};

use super::tokens::TokenError;
use crate::core::CoreError;
use crate::core::auth::secret_hash;
use crate::core::sso::SignIn;
use crate::domain::app::{App, DEFAULT_REFRESH_LIFETIME, DevicePolicy, MfaPolicy};
use crate::domain::ids::ClientId;
use crate::domain::sign_in::Amr;
use crate::domain::user::User;

/// The built-in client's id. Apps' ids are random version-4 UUIDs, whose
/// thirteenth digit is always 4, so no app can have this one.
const DEP_CLIENT_ID: &str = "00000000000000000000000000000de9";

/// The longest code the callback looks up.
const MAX_CODE: usize = 256;

impl SignIn {
    /// The built-in client `client_id` names, if it is one and it is on.
    pub(super) fn first_party_app(&self, client_id: &ClientId) -> Option<App> {
        let callback = self.settings.dep_callback.as_ref()?;
        (client_id.as_str() == DEP_CLIENT_ID).then(|| App {
            client_id: client_id.clone(),
            name: "Device enrollment".into(),
            public: true,
            redirect_uris: vec![callback.clone()],
            device_policy: DevicePolicy::None,
            mfa_policy: MfaPolicy::None,
            allowed_networks: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            offline_access: false,
            refresh_lifetime: DEFAULT_REFRESH_LIFETIME,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        })
    }

    /// The app a sign-in is for: the built-in client, else an app in the
    /// store. Only the sign-in steps look apps up here; client
    /// authentication reads the store alone.
    pub(super) async fn sign_in_app(&self, client_id: &ClientId) -> Result<Option<App>, CoreError> {
        if let Some(app) = self.first_party_app(client_id) {
            return Ok(Some(app));
        }
        Ok(self
            .store
            .app_by_client_id(client_id)
            .await?
            .map(|(app, _)| app))
    }

    /// Whether `app` is the built-in client, which always asks for the
    /// user's second factor.
    pub(super) fn is_first_party(&self, app: &App) -> bool {
        app.client_id.as_str() == DEP_CLIENT_ID && self.settings.dep_callback.is_some()
    }

    /// Where Setup Assistant's web view is sent to sign in: `/authorize`
    /// for the built-in client, with the PKCE challenge of the secret only
    /// that web view holds, and `prompt=login` so that a session the
    /// browser may have does not stand in for the sign-in. `None` while
    /// the setting is off.
    pub fn dep_authorize_url(&self, code_challenge: &str, state: &str) -> Option<String> {
        let callback = self.settings.dep_callback.as_ref()?;
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", DEP_CLIENT_ID),
                ("redirect_uri", callback.as_str()),
                ("scope", "openid"),
                ("state", state),
                ("code_challenge", code_challenge),
                ("code_challenge_method", "S256"),
                ("prompt", "login"),
            ])
            .finish();
        Some(format!(
            "{}/authorize?{query}",
            self.issuer().trim_end_matches('/')
        ))
    }

    /// Redeems a code of the built-in client with the PKCE verifier only
    /// the web view that started the sign-in can make: the user who
    /// signed in. The grant ends at once (no token is issued for it).
    pub async fn redeem_dep_code(
        &self,
        code: &str,
        code_verifier: &str,
        now: DateTime<Utc>,
    ) -> Result<(User, DateTime<Utc>, bool), TokenError> {
        let client_id = ClientId::parse(DEP_CLIENT_ID).ok_or(TokenError::InvalidClient)?;
        let app = self
            .first_party_app(&client_id)
            .ok_or(TokenError::InvalidClient)?;
        let callback = app.redirect_uris.first().cloned().unwrap_or_default();
        let (grant, user) = self
            .redeem_code(&app, code, Some(&callback), Some(code_verifier), now)
            .await?;
        self.store
            .end_grant(&grant.id, "device enrollment sign-in finished", now)
            .await?;
        let second_factor = grant.amr.contains(&Amr::OneTimeCode);
        Ok((user, grant.auth_time, second_factor))
    }

    /// Spends a code of the built-in client that came back where it
    /// cannot be used (no sign-in of this web view): it can then never be
    /// used, and the user it names is returned for the audit log.
    pub async fn void_dep_code(
        &self,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, CoreError> {
        if code.len() > MAX_CODE {
            return Ok(None);
        }
        let Some(grant) = self
            .store
            .grant_by_code_hash(&secret_hash(code))
            .await?
            .filter(|g| g.client_id.as_str() == DEP_CLIENT_ID)
        else {
            return Ok(None);
        };
        self.store.use_code(&grant.id, now).await?;
        self.store
            .end_grant(&grant.id, "device enrollment sign-in refused", now)
            .await?;
        Ok(self.store.user_by_id(&grant.user_id).await?)
    }
}
