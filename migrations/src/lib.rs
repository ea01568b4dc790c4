//! Latchkey's database schema, one migration per change, run at server start
//! on SQLite and PostgreSQL alike.
//!
//! Conventions: ids are text (simple-form UUIDs), times are `bigint` Unix
//! milliseconds (UTC), hashes are lower-case hex.

pub use sea_orm_migration::prelude::*;

mod m0001_spine;
mod m0002_users;
mod m0003_apps;
mod m0004_signing_keys;
mod m0005_sso;
mod m0006_second_factor;
mod m0007_app_networks;
mod m0008_compliance_verdict;
mod m0009_login_throttles;
mod m0010_device_proof;
mod m0011_app_tokens;
mod m0012_device_channel;
mod m0013_apple;
mod m0014_apple_dep;
mod m0015_apple_dep_sign_in;
mod m0016_apple_identity_renewals;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let migrations: Vec<Box<dyn MigrationTrait>> = vec![
            Box::new(m0001_spine::Migration),
            Box::new(m0002_users::Migration),
            Box::new(m0003_apps::Migration),
            Box::new(m0004_signing_keys::Migration),
            Box::new(m0005_sso::Migration),
            Box::new(m0006_second_factor::Migration),
            Box::new(m0007_app_networks::Migration),
            Box::new(m0008_compliance_verdict::Migration),
            Box::new(m0009_login_throttles::Migration),
            Box::new(m0010_device_proof::Migration),
            Box::new(m0011_app_tokens::Migration),
            Box::new(m0012_device_channel::Migration),
            Box::new(m0013_apple::Migration),
            Box::new(m0014_apple_dep::Migration),
            Box::new(m0015_apple_dep_sign_in::Migration),
            Box::new(m0016_apple_identity_renewals::Migration),
        ];
        migrations
            .into_iter()
            .map(|m| Box::new(Atomic(m)) as Box<dyn MigrationTrait>)
            .collect()
    }
}

/// A migration run in one transaction with the record that it ran, on
/// SQLite as on PostgreSQL (sea-orm-migration wraps only PostgreSQL's by
/// default): a server stopped part-way through a migration leaves the
/// schema as it was before it, and the next start runs it again from its
/// first statement instead of failing on a column it already added.
struct Atomic(Box<dyn MigrationTrait>);

impl MigrationName for Atomic {
    fn name(&self) -> &str {
        self.0.name()
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Atomic {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.0.up(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.0.down(manager).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
