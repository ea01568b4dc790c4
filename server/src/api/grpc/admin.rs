//! `AdminService`: what latchctl calls. Every call authenticates the bearer
//! token to an admin; the core checks the admin's role.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use latchkey_proto::v1::{self, admin_service_server::AdminService};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::enums::{self, requested_role};
use super::messages::{
    admin_msg, app_msg, app_with_secret, audit_msg, command_msg, device_msg, group_msg, non_empty,
    policy_msg, temporary_password_msg, token_msg, unix, user_msg,
};
use super::status;
use crate::core::Core;
use crate::core::apps::{AppChanges, NewApp};
use crate::core::auth::AuthenticatedAdmin;
use crate::core::users::NewUser;
use crate::domain::app::{DevicePolicy, MfaPolicy};
use crate::domain::audit::{Actor, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::command::CommandKind;
use crate::domain::user::UserKind;

pub struct AdminApi {
    core: Arc<Core>,
}

impl AdminApi {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    pub(super) fn core(&self) -> &Core {
        &self.core
    }

    pub(super) async fn admin<T>(
        &self,
        request: &Request<T>,
    ) -> Result<AuthenticatedAdmin, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            return Err(Status::unauthenticated(
                "no admin API token: pass --token-file or set LATCHKEY_TOKEN",
            ));
        };
        match self
            .core
            .admins
            .authenticate_admin(token)
            .await
            .map_err(status)?
        {
            Some(admin) => Ok(admin),
            None => {
                let now = Utc::now();
                let entry = AuditEntry {
                    at: now,
                    actor: Actor::Unknown,
                    action: AuditAction::AdminAuthenticate,
                    target: String::new(),
                    outcome: AuditOutcome::Denied,
                    detail: "unknown or revoked API token".into(),
                };
                self.core
                    .audit
                    .record_unauthenticated(entry, now)
                    .await
                    .map_err(status)?;
                Err(Status::unauthenticated("the admin API token is not valid"))
            }
        }
    }
}

pub(super) type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn who_am_i(&self, request: Request<v1::WhoAmIRequest>) -> Reply<v1::Admin> {
        let admin = self.admin(&request).await?;
        Ok(Response::new(admin_msg(admin.admin().clone())))
    }

    #[instrument(skip_all)]
    async fn create_enrollment_token(
        &self,
        request: Request<v1::CreateEnrollmentTokenRequest>,
    ) -> Reply<v1::CreateEnrollmentTokenResponse> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        // Absent is the default; zero is a value, and refused by the core.
        let expires = match r.expires_in_seconds {
            None => chrono::Duration::hours(24),
            Some(seconds) => chrono::Duration::try_seconds(seconds).ok_or_else(|| {
                Status::invalid_argument("the expiry must be between 1s and 365d")
            })?,
        };
        let uses = r.uses.unwrap_or(1);
        let now = Utc::now();
        let (token, secret) = self
            .core
            .enrollment
            .create_enrollment_token(
                &admin,
                non_empty(r.user),
                non_empty(r.group),
                expires,
                uses,
                now,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(v1::CreateEnrollmentTokenResponse {
            token: Some(token_msg(token, now)),
            secret,
        }))
    }

    async fn list_enrollment_tokens(
        &self,
        request: Request<v1::ListEnrollmentTokensRequest>,
    ) -> Reply<v1::ListEnrollmentTokensResponse> {
        let admin = self.admin(&request).await?;
        let now = Utc::now();
        let tokens = self
            .core
            .enrollment
            .list_enrollment_tokens(&admin, now)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ListEnrollmentTokensResponse {
            tokens: tokens.into_iter().map(|t| token_msg(t, now)).collect(),
        }))
    }

    async fn revoke_enrollment_token(
        &self,
        request: Request<v1::RevokeEnrollmentTokenRequest>,
    ) -> Reply<v1::EnrollmentToken> {
        let admin = self.admin(&request).await?;
        let now = Utc::now();
        let token = self
            .core
            .enrollment
            .revoke_enrollment_token(&admin, &request.into_inner().id, now)
            .await
            .map_err(status)?;
        Ok(Response::new(token_msg(token, now)))
    }

    async fn list_devices(
        &self,
        request: Request<v1::ListDevicesRequest>,
    ) -> Reply<v1::ListDevicesResponse> {
        let admin = self.admin(&request).await?;
        let devices = self
            .core
            .devices
            .list_devices(&admin, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ListDevicesResponse {
            devices: devices.into_iter().map(device_msg).collect(),
        }))
    }

    async fn get_device(&self, request: Request<v1::GetDeviceRequest>) -> Reply<v1::Device> {
        let admin = self.admin(&request).await?;
        let details = self
            .core
            .devices
            .get_device(&admin, &request.into_inner().id, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(super::messages::device_details_msg(details)))
    }

    async fn lock_device(
        &self,
        request: Request<v1::LockDeviceRequest>,
    ) -> Reply<v1::DeviceCommandResponse> {
        super::device_commands::lock(self, request).await
    }

    async fn lock_devices(
        &self,
        request: Request<v1::LockDevicesRequest>,
    ) -> Reply<v1::LockDevicesResponse> {
        super::device_commands::lock_many(self, request).await
    }

    async fn unlock_device(
        &self,
        request: Request<v1::UnlockDeviceRequest>,
    ) -> Reply<v1::DeviceCommandResponse> {
        let admin = self.admin(&request).await?;
        let id = request.into_inner().id;
        let queued = self
            .core
            .devices
            .unlock_device(&admin, &id, Utc::now())
            .await;
        super::device_commands::reply(self, &admin, queued)
    }

    async fn locate_device(
        &self,
        request: Request<v1::LocateDeviceRequest>,
    ) -> Reply<v1::DeviceCommandResponse> {
        let admin = self.admin(&request).await?;
        let id = request.into_inner().id;
        let queued = self
            .core
            .devices
            .locate_device(&admin, &id, Utc::now())
            .await;
        super::device_commands::reply(self, &admin, queued)
    }

    async fn restart_device(
        &self,
        request: Request<v1::RestartDeviceRequest>,
    ) -> Reply<v1::DeviceCommandResponse> {
        let id = request.get_ref().id.clone();
        super::device_commands::apple(self, &request, &id, CommandKind::Restart).await
    }

    async fn renew_apple_identity(
        &self,
        request: Request<v1::RenewAppleIdentityRequest>,
    ) -> Reply<v1::DeviceCommandResponse> {
        let admin = self.admin(&request).await?;
        let id = request.into_inner().id;
        let queued = self
            .core()
            .apple
            .renew_identity(&admin, &id, Utc::now())
            .await;
        super::device_commands::reply(self, &admin, queued)
    }

    async fn list_device_profiles(
        &self,
        request: Request<v1::ListDeviceProfilesRequest>,
    ) -> Reply<v1::DeviceCommandResponse> {
        let id = request.get_ref().id.clone();
        super::device_commands::apple(self, &request, &id, CommandKind::ListProfiles).await
    }

    async fn wipe_device(
        &self,
        request: Request<v1::WipeDeviceRequest>,
    ) -> Reply<v1::DeviceCommandResponse> {
        let admin = self.admin(&request).await?;
        let id = request.into_inner().id;
        let queued = self.core.devices.wipe_device(&admin, &id, Utc::now()).await;
        super::device_commands::reply(self, &admin, queued)
    }

    async fn retire_device(&self, request: Request<v1::RetireDeviceRequest>) -> Reply<v1::Device> {
        let admin = self.admin(&request).await?;
        let view = self
            .core
            .devices
            .retire_device(&admin, &request.into_inner().id, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(device_msg(view)))
    }

    async fn list_commands(
        &self,
        request: Request<v1::ListCommandsRequest>,
    ) -> Reply<v1::ListCommandsResponse> {
        let admin = self.admin(&request).await?;
        let commands = self
            .core
            .devices
            .list_commands(&admin, &request.into_inner().device_id, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ListCommandsResponse {
            commands: commands.into_iter().map(command_msg).collect(),
        }))
    }

    async fn set_policy(&self, request: Request<v1::SetPolicyRequest>) -> Reply<v1::Policy> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        let policy = self
            .core
            .policies
            .set_policy(&admin, &r.name, &r.document, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(policy_msg(policy)))
    }

    async fn assign_policy(&self, request: Request<v1::AssignPolicyRequest>) -> Reply<v1::Policy> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        let (group, device) = match &r.target {
            Some(v1::assign_policy_request::Target::Group(g)) => (Some(g.as_str()), None),
            Some(v1::assign_policy_request::Target::DeviceId(d)) => (None, Some(d.as_str())),
            None => (None, None),
        };
        let policy = self
            .core
            .policies
            .assign_policy(&admin, &r.name, group, device, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(policy_msg(policy)))
    }

    async fn get_policy(&self, request: Request<v1::GetPolicyRequest>) -> Reply<v1::Policy> {
        let admin = self.admin(&request).await?;
        let policy = self
            .core
            .policies
            .get_policy(&admin, &request.into_inner().name, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(policy_msg(policy)))
    }

    #[instrument(skip_all)]
    async fn add_admin(
        &self,
        request: Request<v1::AddAdminRequest>,
    ) -> Reply<v1::AddAdminResponse> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        let (added, token) = self
            .core
            .admins
            .add_admin(
                &admin,
                &r.email,
                &requested_role(r.role, &r.role_text),
                Utc::now(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(v1::AddAdminResponse {
            admin: Some(admin_msg(added)),
            token,
        }))
    }

    async fn list_admins(
        &self,
        request: Request<v1::ListAdminsRequest>,
    ) -> Reply<v1::ListAdminsResponse> {
        let admin = self.admin(&request).await?;
        let admins = self
            .core
            .admins
            .list_admins(&admin, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ListAdminsResponse {
            admins: admins.into_iter().map(admin_msg).collect(),
        }))
    }

    async fn list_audit(
        &self,
        request: Request<v1::ListAuditRequest>,
    ) -> Reply<v1::ListAuditResponse> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        let since = DateTime::from_timestamp(r.since, 0).unwrap_or_default();
        let limit = if r.limit == 0 {
            1000
        } else {
            u64::from(r.limit.min(10_000))
        };
        let events = self
            .core
            .audit
            .list(&admin, since, limit, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ListAuditResponse {
            events: events.into_iter().map(audit_msg).collect(),
        }))
    }

    #[instrument(skip_all)]
    async fn add_user(&self, request: Request<v1::AddUserRequest>) -> Reply<v1::User> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        let kind = enums::user_kind("AddUserRequest.kind", r.kind)?.unwrap_or(UserKind::Employee);
        let new = NewUser {
            email: r.email,
            name: r.name,
            groups: r.groups,
            kind,
        };
        let user = self
            .core
            .users
            .add_user(&admin, new, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(user_msg(user)))
    }

    #[instrument(skip_all)]
    async fn import_users(
        &self,
        request: Request<v1::ImportUsersRequest>,
    ) -> Reply<v1::ImportUsersResponse> {
        let admin = self.admin(&request).await?;
        let report = self
            .core
            .users
            .import_users(&admin, &request.into_inner().csv, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ImportUsersResponse {
            added: report.added,
            rejected: report
                .rejected
                .into_iter()
                .map(|r| v1::RejectedRow {
                    line: r.line,
                    email: r.email,
                    reason: r.reason,
                })
                .collect(),
        }))
    }

    async fn list_users(
        &self,
        request: Request<v1::ListUsersRequest>,
    ) -> Reply<v1::ListUsersResponse> {
        let admin = self.admin(&request).await?;
        let users = self
            .core
            .users
            .list_users(&admin, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ListUsersResponse {
            users: users.into_iter().map(user_msg).collect(),
        }))
    }

    async fn get_user(&self, request: Request<v1::GetUserRequest>) -> Reply<v1::User> {
        let admin = self.admin(&request).await?;
        let user = self
            .core
            .users
            .get_user(&admin, &request.into_inner().email, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(user_msg(user)))
    }

    async fn set_user_status(&self, request: Request<v1::SetUserStatusRequest>) -> Reply<v1::User> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        let to = enums::required_user_status("SetUserStatusRequest.status", r.status)?;
        let user = self
            .core
            .users
            .set_user_status(&admin, &r.email, to, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(user_msg(user)))
    }

    async fn add_group(&self, request: Request<v1::AddGroupRequest>) -> Reply<v1::Group> {
        let admin = self.admin(&request).await?;
        let group = self
            .core
            .users
            .add_group(&admin, &request.into_inner().name, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(group_msg(group)))
    }

    async fn list_groups(
        &self,
        request: Request<v1::ListGroupsRequest>,
    ) -> Reply<v1::ListGroupsResponse> {
        let admin = self.admin(&request).await?;
        let groups = self
            .core
            .users
            .list_groups(&admin, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ListGroupsResponse {
            groups: groups.into_iter().map(group_msg).collect(),
        }))
    }

    async fn assign_device(&self, request: Request<v1::AssignDeviceRequest>) -> Reply<v1::Device> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        let view = self
            .core
            .users
            .assign_device(&admin, &r.id, &r.user, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(device_msg(view)))
    }

    #[instrument(skip_all)]
    async fn add_app(&self, request: Request<v1::AddAppRequest>) -> Reply<v1::AppWithSecret> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        let new = NewApp {
            name: r.name,
            redirect_uris: r.redirect_uris,
            public: r.public,
            device_policy: enums::device_policy("AddAppRequest.device", r.device)?
                .unwrap_or(DevicePolicy::Bound),
            mfa_policy: enums::mfa_policy("AddAppRequest.mfa", r.mfa)?.unwrap_or(MfaPolicy::None),
            allowed_networks: r.allowed_networks,
            post_logout_redirect_uris: r.post_logout_redirect_uris,
            offline_access: r.offline_access,
            refresh_lifetime: r.refresh_lifetime_seconds.map(chrono::Duration::seconds),
        };
        let (app, secret) = self
            .core
            .apps
            .add_app(&admin, new, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(app_with_secret(app, secret)))
    }

    async fn list_apps(
        &self,
        request: Request<v1::ListAppsRequest>,
    ) -> Reply<v1::ListAppsResponse> {
        let admin = self.admin(&request).await?;
        let apps = self
            .core
            .apps
            .list_apps(&admin, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ListAppsResponse {
            apps: apps.into_iter().map(app_msg).collect(),
        }))
    }

    #[instrument(skip_all)]
    async fn update_app(&self, request: Request<v1::UpdateAppRequest>) -> Reply<v1::AppWithSecret> {
        let admin = self.admin(&request).await?;
        let r = request.into_inner();
        let changes = AppChanges {
            redirect_uris: (!r.redirect_uris.is_empty()).then_some(r.redirect_uris),
            device_policy: enums::device_policy("UpdateAppRequest.device", r.device)?,
            mfa_policy: enums::mfa_policy("UpdateAppRequest.mfa", r.mfa)?,
            allowed_networks: match (r.allow_any_network, r.allowed_networks.is_empty()) {
                (true, true) => Some(Vec::new()),
                (true, false) => {
                    return Err(Status::invalid_argument(
                        "give either address blocks or allow_any_network, not both",
                    ));
                }
                (false, true) => None,
                (false, false) => Some(r.allowed_networks),
            },
            post_logout_redirect_uris: match (
                r.clear_post_logout_redirect_uris,
                r.post_logout_redirect_uris.is_empty(),
            ) {
                (true, true) => Some(Vec::new()),
                (true, false) => {
                    return Err(Status::invalid_argument(
                        "give either sign-out addresses or clear them, not both",
                    ));
                }
                (false, true) => None,
                (false, false) => Some(r.post_logout_redirect_uris),
            },
            offline_access: r.offline_access,
            refresh_lifetime: r.refresh_lifetime_seconds.map(chrono::Duration::seconds),
            rotate_secret: r.rotate_secret,
        };
        let (app, secret) = self
            .core
            .apps
            .update_app(&admin, &r.name, changes, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(app_with_secret(app, secret)))
    }

    async fn remove_app(&self, request: Request<v1::RemoveAppRequest>) -> Reply<v1::App> {
        let admin = self.admin(&request).await?;
        let app = self
            .core
            .apps
            .remove_app(&admin, &request.into_inner().name, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(app_msg(app)))
    }

    #[instrument(skip_all)]
    async fn reset_password(
        &self,
        request: Request<v1::ResetPasswordRequest>,
    ) -> Reply<v1::ResetPasswordResponse> {
        let admin = self.admin(&request).await?;
        let (user, temporary) = self
            .core
            .users
            .reset_password(&admin, &request.into_inner().email, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(temporary_password_msg(user, &temporary)))
    }

    #[instrument(skip_all)]
    async fn reset_mfa(
        &self,
        request: Request<v1::ResetPasswordRequest>,
    ) -> Reply<v1::ResetPasswordResponse> {
        let admin = self.admin(&request).await?;
        let (user, temporary) = self
            .core
            .users
            .reset_mfa(&admin, &request.into_inner().email, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(temporary_password_msg(user, &temporary)))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<v1::RotateSigningKeyRequest>,
    ) -> Reply<v1::SigningKey> {
        let admin = self.admin(&request).await?;
        let key = self
            .core
            .signing_keys
            .rotate_signing_key(&admin, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(v1::SigningKey {
            kid: key.kid,
            created_at: unix(key.created_at),
            retired_at: key.retired_at.map_or(0, unix),
        }))
    }

    async fn list_signing_keys(
        &self,
        request: Request<v1::ListSigningKeysRequest>,
    ) -> Reply<v1::ListSigningKeysResponse> {
        let admin = self.admin(&request).await?;
        let keys = self
            .core
            .signing_keys
            .list_signing_keys(&admin, Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ListSigningKeysResponse {
            keys: keys
                .into_iter()
                .map(|k| v1::SigningKey {
                    kid: k.kid,
                    created_at: unix(k.created_at),
                    retired_at: k.retired_at.map_or(0, unix),
                })
                .collect(),
        }))
    }

    async fn import_apple_push_certificate(
        &self,
        request: Request<v1::ImportApplePushCertificateRequest>,
    ) -> Reply<v1::ImportApplePushCertificateResponse> {
        super::apple::import_push_certificate(self, request).await
    }

    async fn get_apple_status(
        &self,
        request: Request<v1::GetAppleStatusRequest>,
    ) -> Reply<v1::AppleStatus> {
        super::apple::status_of_apple(self, request).await
    }

    async fn create_apple_enrollment_profile(
        &self,
        request: Request<v1::CreateAppleEnrollmentProfileRequest>,
    ) -> Reply<v1::AppleEnrollmentProfile> {
        super::apple::create_enrollment_profile(self, request).await
    }

    async fn create_apple_dep_keypair(
        &self,
        request: Request<v1::CreateAppleDepKeypairRequest>,
    ) -> Reply<v1::AppleDepKeypair> {
        super::apple::create_dep_keypair(self, request).await
    }

    async fn import_apple_dep_token(
        &self,
        request: Request<v1::ImportAppleDepTokenRequest>,
    ) -> Reply<v1::AppleDepToken> {
        super::apple::import_dep_token(self, request).await
    }

    type SyncAppleDepStream = super::apple::DepSyncStream;

    async fn sync_apple_dep(
        &self,
        request: Request<v1::SyncAppleDepRequest>,
    ) -> Reply<Self::SyncAppleDepStream> {
        super::apple::sync_dep(self, request).await
    }

    async fn reset_apple_dep_cursor(
        &self,
        request: Request<v1::ResetAppleDepCursorRequest>,
    ) -> Reply<v1::AppleDepToken> {
        super::apple::reset_dep_cursor(self, request).await
    }

    async fn list_apple_dep_tokens(
        &self,
        request: Request<v1::ListAppleDepTokensRequest>,
    ) -> Reply<v1::ListAppleDepTokensResponse> {
        super::apple::list_dep_tokens(self, request).await
    }
}
