//! sea-orm entities, one per table of `migrations`. They never leave `store`.

pub mod admins {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "admins")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub email: String,
        pub role: String,
        pub created_at: i64,
        pub disabled: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod admin_tokens {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "admin_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub admin_id: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod enrollment_tokens {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "enrollment_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub secret_hash: String,
        pub user_email: Option<String>,
        pub group_name: Option<String>,
        pub expires_at: i64,
        pub uses_allowed: i32,
        pub uses_count: i32,
        pub revoked_at: Option<i64>,
        pub created_by: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod devices {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "devices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub hostname: String,
        pub platform: String,
        pub os_version: String,
        pub machine_id: String,
        pub serial: String,
        pub model: String,
        pub state: String,
        pub user_email: Option<String>,
        pub group_name: Option<String>,
        pub enrolled_at: i64,
        pub last_seen: Option<i64>,
        pub posture_json: Option<String>,
        pub posture_at: Option<i64>,
        /// Until when (exclusive) the posture reported at
        /// `compliance_posture_at` keeps the device compliant under
        /// `compliance_basis`; none when it does not.
        pub compliant_until: Option<i64>,
        pub compliance_posture_at: Option<i64>,
        /// The rules revision and the policy document the verdict was
        /// reached under (`policy::verdict_basis`).
        pub compliance_basis: Option<String>,
        /// The channel that manages the device (`Channel`).
        pub channel: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod device_certificates {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "device_certificates")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub serial: String,
        pub device_id: String,
        pub spki_sha256: String,
        pub not_before: i64,
        pub not_after: i64,
        pub revoked_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod commands {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "commands")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub device_id: String,
        pub kind: String,
        pub message: String,
        pub status: String,
        pub result: Option<String>,
        pub created_at: i64,
        pub sent_at: Option<i64>,
        pub acked_at: Option<i64>,
        pub created_by: String,
        /// When the device's channel was last told about the command.
        pub offered_at: Option<i64>,
        /// The command's arguments beyond the message (JSON object).
        pub args: Option<String>,
        /// The device's latest NotNow answer (Apple), and how many.
        pub not_now_at: Option<i64>,
        pub not_now_count: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod policies {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "policies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub document: String,
        pub version: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod policy_assignments {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "policy_assignments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub target_kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub target: String,
        pub policy_name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_log {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: i64,
        pub actor: String,
        pub action: String,
        pub target: String,
        pub outcome: String,
        pub detail: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod users {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub email: String,
        pub name: String,
        pub kind: String,
        pub status: String,
        pub locale: Option<String>,
        pub password_hash: Option<String>,
        pub password_expires_at: Option<i64>,
        pub password_must_change: bool,
        pub created_at: i64,
        pub updated_at: i64,
        pub totp_secret: Option<String>,
        pub totp_last_step: Option<i64>,
        pub mfa_setting: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod groups {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "groups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod user_groups {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_groups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod apps {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "apps")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub client_id: String,
        pub name: String,
        pub secret_hash: Option<String>,
        pub public: bool,
        pub redirect_uris: String,
        pub device_policy: String,
        pub mfa_policy: String,
        pub created_at: i64,
        pub updated_at: i64,
        pub allowed_networks: Option<String>,
        pub post_logout_redirect_uris: Option<String>,
        pub offline_access: bool,
        pub refresh_lifetime_seconds: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod signing_keys {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "signing_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        pub private_key: String,
        pub x: String,
        pub y: String,
        pub created_at: i64,
        pub retired_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod sso_sessions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sso_sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub secret_hash: String,
        pub user_id: Option<String>,
        pub ip: String,
        pub user_agent: String,
        pub created_at: i64,
        pub expires_at: i64,
        pub auth_time: Option<i64>,
        pub amr: Option<String>,
        pub device_id: Option<String>,
        pub ended_at: Option<i64>,
        pub end_reason: Option<String>,
        pub device_mode: Option<String>,
        pub device_ip: Option<String>,
        pub second_factor: Option<String>,
        pub second_factor_at: Option<i64>,
        pub onboarding: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod auth_requests {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "auth_requests")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub session_id: String,
        pub client_id: String,
        pub redirect_uri: String,
        pub scope: String,
        pub state: Option<String>,
        pub nonce: Option<String>,
        pub code_challenge: Option<String>,
        pub prompt_login: bool,
        pub max_age: Option<i64>,
        pub created_at: i64,
        pub expires_at: i64,
        pub finished_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod device_auth_txns {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "device_auth_txns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub nonce: String,
        pub short_code: String,
        pub mode: String,
        pub request_id: String,
        pub session_id: String,
        pub user_id: String,
        pub client_id: String,
        pub expected_devices: String,
        pub browser_ip: String,
        pub browser_ua: String,
        pub created_at: i64,
        pub expires_at: i64,
        pub device_id: Option<String>,
        pub answered_at: Option<i64>,
        pub outcome: String,
        pub failure: Option<String>,
        pub redeemed_at: Option<i64>,
        pub proof_hash: Option<String>,
        pub code_hash: Option<String>,
        pub code_attempts: i32,
        pub link_opened_at: Option<i64>,
        pub delivered_at: Option<i64>,
        pub delivered_by: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod grants {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "grants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub session_id: String,
        pub user_id: String,
        pub client_id: String,
        pub device_id: Option<String>,
        pub scope: String,
        pub nonce: Option<String>,
        pub redirect_uri: String,
        pub code_hash: String,
        pub code_challenge: Option<String>,
        pub code_expires_at: i64,
        pub code_used_at: Option<i64>,
        pub auth_time: i64,
        pub amr: String,
        pub acr: String,
        pub created_at: i64,
        pub ended_at: Option<i64>,
        pub end_reason: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod refresh_tokens {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "refresh_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub grant_id: String,
        pub created_at: i64,
        pub expires_at: i64,
        pub used_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod login_events {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "login_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub at: i64,
        pub user_id: Option<String>,
        pub login: String,
        pub ip: String,
        pub user_agent: String,
        pub client_id: Option<String>,
        pub device_id: Option<String>,
        pub method: String,
        pub result: String,
        pub reason: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod second_factor_challenges {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "second_factor_challenges")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub session_id: String,
        pub kind: String,
        pub pending_secret: Option<String>,
        pub code_hash: Option<String>,
        pub sent_at: i64,
        pub expires_at: i64,
        pub attempts: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod login_throttles {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "login_throttles")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub failures: i32,
        pub last_failure: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod apple_push_certificates {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "apple_push_certificates")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub topic: String,
        pub certificate_pem: String,
        pub key_sealed: String,
        pub not_after: i64,
        pub imported_at: i64,
        pub imported_by: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod apple_enrollments {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "apple_enrollments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub device_id: String,
        pub udid: Option<String>,
        pub identity_sha256: Option<String>,
        pub topic: Option<String>,
        pub push_token: Option<String>,
        pub push_magic: Option<String>,
        pub unlock_token_sealed: Option<String>,
        pub bootstrap_token_sealed: Option<String>,
        pub awaiting_configuration: bool,
        pub token_updates: i32,
        pub enabled: bool,
        pub authenticated_at: Option<i64>,
        pub last_seen_at: Option<i64>,
        pub last_idle_at: Option<i64>,
        pub last_push_at: Option<i64>,
        pub last_push_result: Option<String>,
        pub push_token_invalid_at: Option<i64>,
        pub supervised: Option<bool>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod apple_identity_renewals {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "apple_identity_renewals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub challenge_sha256: String,
        pub device_id: String,
        pub challenge_sealed: String,
        pub command_id: String,
        pub replaces_sha256: String,
        pub started_by: String,
        pub started_at: i64,
        pub expires_at: i64,
        pub issued_serial: Option<String>,
        pub issued_sha256: Option<String>,
        pub issued_at: Option<i64>,
        pub closed_at: Option<i64>,
        pub outcome: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod apple_scep_challenges {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "apple_scep_challenges")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub challenge_sha256: String,
        pub user_email: Option<String>,
        pub device_id: Option<String>,
        pub created_by: String,
        pub created_at: i64,
        pub expires_at: i64,
        pub used_at: Option<i64>,
        pub used_by_transaction: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod apple_dep_tokens {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "apple_dep_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub certificate_pem: String,
        pub key_sealed: String,
        pub created_at: i64,
        pub created_by: String,
        pub token_sealed: Option<String>,
        pub consumer_key: Option<String>,
        pub token_expires_at: Option<i64>,
        pub server_name: Option<String>,
        pub server_uuid: Option<String>,
        pub org_name: Option<String>,
        pub imported_at: Option<i64>,
        pub imported_by: Option<String>,
        pub profile_uuid: Option<String>,
        pub profile_url: Option<String>,
        pub cursor: Option<String>,
        pub cursor_at: Option<i64>,
        pub fetch_done: bool,
        pub last_sync_at: Option<i64>,
        pub last_sync_outcome: Option<String>,
        pub sync_lease_until: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod apple_dep_devices {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "apple_dep_devices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub serial_number: String,
        pub token_name: String,
        pub device_id: Option<String>,
        pub model: Option<String>,
        pub description: Option<String>,
        pub color: Option<String>,
        pub os: Option<String>,
        pub device_family: Option<String>,
        pub profile_status: Option<String>,
        pub profile_uuid: Option<String>,
        pub op_type: Option<String>,
        pub op_date: Option<i64>,
        pub updated_at: i64,
        pub deleted_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod apple_dep_sign_ins {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "apple_dep_sign_ins")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub serial_number: String,
        pub device_id: String,
        pub created_at: i64,
        pub expires_at: i64,
        pub finished_at: Option<i64>,
        pub user_email: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
