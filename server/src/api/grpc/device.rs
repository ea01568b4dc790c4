//! `DeviceService`: enrollment and certificate renewal.

use std::sync::Arc;

use chrono::Utc;
use latchkey_proto::v1::{
    self, EnrollRequest, EnrollResponse, RenewRequest, RenewResponse,
    device_service_server::DeviceService,
};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::status;
use crate::core::Core;
use crate::core::auth::DeviceChannel;
use crate::core::model::DeviceFacts;

pub struct DeviceApi {
    core: Arc<Core>,
}

impl DeviceApi {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

fn facts(facts: Option<v1::DeviceFacts>) -> DeviceFacts {
    let f = facts.unwrap_or_default();
    DeviceFacts {
        hostname: f.hostname,
        platform: f.platform,
        os_version: f.os_version,
        machine_id: f.machine_id,
        serial: f.serial,
        model: f.model,
    }
}

#[tonic::async_trait]
impl DeviceService for DeviceApi {
    #[instrument(skip_all)]
    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let request = request.into_inner();
        let enrolled = self
            .core
            .enroll(
                &request.token,
                &request.csr_der,
                facts(request.facts),
                Utc::now(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(EnrollResponse {
            device_id: enrolled.device_id.to_string(),
            certificate_chain_pem: enrolled.certificate_chain_pem,
            ca_pem: enrolled.ca_pem,
            mqtt_url: enrolled.mqtt_url,
        }))
    }

    #[instrument(skip_all)]
    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let now = Utc::now();
        let certs = request.peer_certs();
        let leaf = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
        let device = self
            .core
            .authenticate_device(leaf, DeviceChannel::DeviceApi, now)
            .await
            .map_err(status)?;
        let chain = self
            .core
            .renew(&device, &request.into_inner().csr_der, now)
            .await
            .map_err(status)?;
        Ok(Response::new(RenewResponse {
            certificate_chain_pem: chain,
        }))
    }
}
