//! The admin API's commands to a device (lock, lost mode, unlock, wipe,
//! locate, restart, profile list): each is queued by the core and answered
//! the same way, with the device as it now stands and the command, whose
//! Mac PIN an admin who may lock devices sees. `admin.rs` routes the calls
//! here.

use chrono::Utc;
use latchkey_proto::v1;
use tonic::{Request, Response};

use super::admin::{AdminApi, Reply};
use super::messages::{command_msg, device_msg};
use super::status;
use crate::core::auth::AuthenticatedAdmin;
use crate::core::{BulkLockRequest, CoreError, DeviceView, LockRequest};
use crate::domain::command::{Command, CommandKind};

/// The answer to every device command.
pub(super) fn reply(
    api: &AdminApi,
    admin: &AuthenticatedAdmin,
    queued: Result<(DeviceView, Command), CoreError>,
) -> Reply<v1::DeviceCommandResponse> {
    let (view, command) = queued.map_err(status)?;
    let pin = api.core().devices.command_pin(admin, &command);
    let mut command = command_msg(command);
    command.pin = pin.unwrap_or_default();
    Ok(Response::new(v1::DeviceCommandResponse {
        device: Some(device_msg(view)),
        command: Some(command),
    }))
}

pub(super) async fn lock(
    api: &AdminApi,
    request: Request<v1::LockDeviceRequest>,
) -> Reply<v1::DeviceCommandResponse> {
    let admin = api.admin(&request).await?;
    let r = request.into_inner();
    let lock = LockRequest {
        message: r.message,
        lost: r.lost,
        phone: (!r.phone.is_empty()).then_some(r.phone),
        footnote: (!r.footnote.is_empty()).then_some(r.footnote),
    };
    let queued = api
        .core()
        .devices
        .lock_device(&admin, &r.id, lock, Utc::now())
        .await;
    reply(api, &admin, queued)
}

/// A bulk lock: exactly one of the ids, the group and the user selects
/// the devices (checked by the core, after the caller's permission).
pub(super) async fn lock_many(
    api: &AdminApi,
    request: Request<v1::LockDevicesRequest>,
) -> Reply<v1::LockDevicesResponse> {
    let admin = api.admin(&request).await?;
    let r = request.into_inner();
    let text = |s: String| (!s.is_empty()).then_some(s);
    let request = BulkLockRequest {
        ids: r.ids,
        group: text(r.group),
        user: text(r.user),
        message: r.message,
        phone: text(r.phone),
    };
    let core = api.core();
    let done = core
        .devices
        .lock_devices(&admin, request, Utc::now())
        .await
        .map_err(status)?;
    let locked = done
        .locked
        .into_iter()
        .map(|l| {
            let pin = core.devices.command_pin(&admin, &l.command);
            let mut command = command_msg(l.command);
            command.pin = pin.unwrap_or_default();
            v1::LockedDevice {
                id: l.device.id.to_string(),
                hostname: l.device.hostname,
                platform: l.device.platform,
                user: l.device.user.unwrap_or_default(),
                command: Some(command),
            }
        })
        .collect();
    let skipped = done
        .skipped
        .into_iter()
        .map(|s| v1::SkippedDevice {
            id: s.id,
            hostname: s.hostname,
            reason: s.reason,
        })
        .collect();
    Ok(Response::new(v1::LockDevicesResponse { locked, skipped }))
}

/// A command only Apple devices carry (restart, profile list).
pub(super) async fn apple<T>(
    api: &AdminApi,
    request: &Request<T>,
    id: &str,
    kind: CommandKind,
) -> Reply<v1::DeviceCommandResponse> {
    let admin = api.admin(request).await?;
    let queued = api
        .core()
        .devices
        .apple_device_command(&admin, id, kind, Utc::now())
        .await;
    reply(api, &admin, queued)
}
