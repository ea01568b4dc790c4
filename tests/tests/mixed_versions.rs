//! A latchctl from before the admin API carried enums, against this server.
//! That latchctl reads an admin's role from `Admin` field 3 and a device's
//! state and compliance from `Device` fields 5 and 7, as text, and sends
//! the role of a new admin in `AddAdminRequest` field 2. It must still see
//! the true words (never an empty role, state or compliance, which it
//! would print as blanks and, for compliance, as "not known") and still
//! add admins with the role it was given.

use latchkey_tests::System;

/// The messages as that latchctl declares them (fields it does not read
/// left out).
mod before_enums {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Admin {
        #[prost(string, tag = "2")]
        pub email: String,
        #[prost(string, tag = "3")]
        pub role: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Device {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, tag = "5")]
        pub state: String,
        #[prost(string, tag = "7")]
        pub compliance: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Empty {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListAdminsResponse {
        #[prost(message, repeated, tag = "1")]
        pub admins: Vec<Admin>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListDevicesResponse {
        #[prost(message, repeated, tag = "1")]
        pub devices: Vec<Device>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AddAdminRequest {
        #[prost(string, tag = "1")]
        pub email: String,
        #[prost(string, tag = "2")]
        pub role: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AddAdminResponse {
        #[prost(message, optional, tag = "1")]
        pub admin: Option<Admin>,
        #[prost(string, tag = "2")]
        pub token: String,
    }
}

/// Calls `method` as the old latchctl would, with the owner's token.
async fn call<Q, A>(sys: &System, method: &'static str, request: Q) -> Result<A, tonic::Status>
where
    Q: prost::Message + Send + Sync + 'static,
    A: prost::Message + Default + Send + Sync + 'static,
{
    let channel = latchkey_agent::enroll::channel(&sys.grpc_url, &sys.ca_pem, None)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(request);
    let bearer = format!("Bearer {}", sys.owner_token)
        .parse()
        .map_err(|_| tonic::Status::internal("token"))?;
    request.metadata_mut().insert("authorization", bearer);
    let path = http::uri::PathAndQuery::from_static(method);
    let codec = tonic_prost::ProstCodec::<Q, A>::default();
    Ok(grpc.unary(request, path, codec).await?.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latchctl_from_before_the_enums_still_reads_roles_states_and_compliance()
-> anyhow::Result<()> {
    let sys = System::start().await?;
    let token = sys.enrollment_token(&[]).await?;
    let locked = sys.enroll(&token).await?.device_id;
    sys.ctl(&["device", "lock", &locked]).await?;

    let me: before_enums::Admin = call(
        &sys,
        "/latchkey.v1.AdminService/WhoAmI",
        before_enums::Empty {},
    )
    .await?;
    assert_eq!(me.role, "owner", "{me:?}");

    let added: before_enums::AddAdminResponse = call(
        &sys,
        "/latchkey.v1.AdminService/AddAdmin",
        before_enums::AddAdminRequest {
            email: "desk@example.com".into(),
            role: "helpdesk".into(),
        },
    )
    .await?;
    assert_eq!(added.admin.map(|a| a.role).as_deref(), Some("helpdesk"));
    let admins: before_enums::ListAdminsResponse = call(
        &sys,
        "/latchkey.v1.AdminService/ListAdmins",
        before_enums::Empty {},
    )
    .await?;
    let roles: Vec<(&str, &str)> = admins
        .admins
        .iter()
        .map(|a| (a.email.as_str(), a.role.as_str()))
        .collect();
    assert!(
        roles.contains(&("desk@example.com", "helpdesk")),
        "{roles:?}"
    );
    assert!(roles.iter().all(|(_, role)| !role.is_empty()), "{roles:?}");
    // Today's latchctl agrees.
    let listed = sys.ctl_json(&["admin", "list"]).await?;
    assert!(
        listed.to_string().contains(r#""role":"helpdesk""#),
        "{listed}"
    );

    let devices: before_enums::ListDevicesResponse = call(
        &sys,
        "/latchkey.v1.AdminService/ListDevices",
        before_enums::Empty {},
    )
    .await?;
    let device = devices
        .devices
        .iter()
        .find(|d| d.id == locked)
        .expect("the locked device is listed");
    assert_eq!(device.state, "locked", "{device:?}");
    // No posture yet: the word that latchctl printed for that.
    assert_eq!(device.compliance, "unknown", "{device:?}");
    sys.stop().await
}
