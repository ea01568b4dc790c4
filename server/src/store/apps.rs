//! SSO apps (OpenID Connect clients).

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::entities::apps;
use super::{Db, StoreError, StoreResult, ms, time};
use crate::domain::app::{App, DevicePolicy, MfaPolicy};
use crate::domain::ids::ClientId;
use crate::domain::networks::Cidr;

impl<C: ConnectionTrait> Db<C> {
    pub(super) fn app_from(row: apps::Model) -> StoreResult<App> {
        let redirect_uris: Vec<String> = serde_json::from_str(&row.redirect_uris)
            .map_err(|e| StoreError::Corrupt(format!("redirect URIs: {e}")))?;
        Ok(App {
            device_policy: DevicePolicy::parse(&row.device_policy)
                .ok_or_else(|| StoreError::Corrupt(row.device_policy.clone()))?,
            mfa_policy: MfaPolicy::parse(&row.mfa_policy)
                .ok_or_else(|| StoreError::Corrupt(row.mfa_policy.clone()))?,
            client_id: ClientId::from_store(row.client_id),
            name: row.name,
            public: row.public,
            redirect_uris,
            allowed_networks: Self::networks_from(row.allowed_networks.as_deref())?,
            post_logout_redirect_uris: match row.post_logout_redirect_uris.as_deref() {
                None => Vec::new(),
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| StoreError::Corrupt(format!("post-logout redirect URIs: {e}")))?,
            },
            offline_access: row.offline_access,
            refresh_lifetime: row.refresh_lifetime_seconds.map_or(
                crate::domain::app::DEFAULT_REFRESH_LIFETIME,
                chrono::Duration::seconds,
            ),
            created_at: time(row.created_at)?,
            updated_at: time(row.updated_at)?,
        })
    }

    pub(super) fn networks_from(text: Option<&str>) -> StoreResult<Vec<Cidr>> {
        text.unwrap_or("")
            .split_whitespace()
            .map(|t| Cidr::parse(t).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// Space-separated blocks; `None` when there are none.
    pub(super) fn networks_text(networks: &[Cidr]) -> Option<String> {
        (!networks.is_empty()).then(|| {
            networks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    pub(super) fn app_model(
        app: &App,
        secret_hash: Option<String>,
    ) -> StoreResult<apps::ActiveModel> {
        Ok(apps::ActiveModel {
            client_id: Set(app.client_id.to_string()),
            name: Set(app.name.clone()),
            secret_hash: Set(secret_hash),
            public: Set(app.public),
            redirect_uris: Set(serde_json::to_string(&app.redirect_uris)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?),
            device_policy: Set(app.device_policy.as_str().to_owned()),
            mfa_policy: Set(app.mfa_policy.as_str().to_owned()),
            created_at: Set(ms(app.created_at)),
            updated_at: Set(ms(app.updated_at)),
            allowed_networks: Set(Self::networks_text(&app.allowed_networks)),
            post_logout_redirect_uris: Set(Self::logout_uris_text(app)?),
            offline_access: Set(app.offline_access),
            refresh_lifetime_seconds: Set(Some(app.refresh_lifetime.num_seconds())),
        })
    }

    /// The JSON list of sign-out addresses; `None` when there are none.
    pub(super) fn logout_uris_text(app: &App) -> StoreResult<Option<String>> {
        if app.post_logout_redirect_uris.is_empty() {
            return Ok(None);
        }
        serde_json::to_string(&app.post_logout_redirect_uris)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub async fn insert_app(&self, app: &App, secret_hash: Option<&str>) -> StoreResult<()> {
        apps::Entity::insert(Self::app_model(app, secret_hash.map(str::to_owned))?)
            .exec_without_returning(&self.0)
            .await?;
        Ok(())
    }

    pub async fn app_by_name(&self, name: &str) -> StoreResult<Option<App>> {
        apps::Entity::find()
            .filter(apps::Column::Name.eq(name))
            .one(&self.0)
            .await?
            .map(Self::app_from)
            .transpose()
    }

    /// An app and its client secret hash (none for public clients).
    pub async fn app_by_client_id(
        &self,
        client_id: &ClientId,
    ) -> StoreResult<Option<(App, Option<String>)>> {
        let Some(row) = apps::Entity::find_by_id(client_id.to_string())
            .one(&self.0)
            .await?
        else {
            return Ok(None);
        };
        let secret_hash = row.secret_hash.clone();
        Ok(Some((Self::app_from(row)?, secret_hash)))
    }

    pub async fn list_apps(&self) -> StoreResult<Vec<App>> {
        apps::Entity::find()
            .order_by_asc(apps::Column::Name)
            .all(&self.0)
            .await?
            .into_iter()
            .map(Self::app_from)
            .collect()
    }

    /// Replaces an app's settings; with `secret_hash`, its secret too.
    pub async fn update_app(&self, app: &App, secret_hash: Option<&str>) -> StoreResult<()> {
        let mut update = apps::Entity::update_many()
            .col_expr(
                apps::Column::RedirectUris,
                Expr::value(
                    serde_json::to_string(&app.redirect_uris)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ),
            )
            .col_expr(
                apps::Column::DevicePolicy,
                Expr::value(app.device_policy.as_str()),
            )
            .col_expr(
                apps::Column::MfaPolicy,
                Expr::value(app.mfa_policy.as_str()),
            )
            .col_expr(
                apps::Column::AllowedNetworks,
                Expr::value(Self::networks_text(&app.allowed_networks)),
            )
            .col_expr(
                apps::Column::PostLogoutRedirectUris,
                Expr::value(Self::logout_uris_text(app)?),
            )
            .col_expr(apps::Column::OfflineAccess, Expr::value(app.offline_access))
            .col_expr(
                apps::Column::RefreshLifetimeSeconds,
                Expr::value(app.refresh_lifetime.num_seconds()),
            )
            .col_expr(apps::Column::UpdatedAt, Expr::value(ms(app.updated_at)));
        if let Some(hash) = secret_hash {
            update = update.col_expr(apps::Column::SecretHash, Expr::value(hash.to_owned()));
        }
        update
            .filter(apps::Column::ClientId.eq(app.client_id.to_string()))
            .exec(&self.0)
            .await?;
        Ok(())
    }

    pub async fn delete_app(&self, client_id: &ClientId) -> StoreResult<bool> {
        let result = apps::Entity::delete_many()
            .filter(apps::Column::ClientId.eq(client_id.to_string()))
            .exec(&self.0)
            .await?;
        Ok(result.rows_affected == 1)
    }
}
