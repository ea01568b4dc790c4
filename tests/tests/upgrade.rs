//! Upgrading a database the previous release wrote (SQLite, or PostgreSQL
//! when LATCHKEY_TEST_DATABASE_URL is set): a migration that stops part-way
//! (the server killed while it starts, a statement refused) leaves the
//! schema as it was before that migration, so the next start runs it again
//! from its first step.

use anyhow::Result;
use latchkey_migrations::{Migrator, MigratorTrait, SchemaManager};
use latchkey_tests::fixture::EmptyDatabase;
use latchkeyd::store::Store;
use sea_orm::{ConnectionTrait, Database};

/// The migrations of the release before m0012.
const BEFORE_M0012: u32 = 11;

#[tokio::test]
async fn a_migration_stopped_after_its_first_step_leaves_nothing_and_runs_again() -> Result<()> {
    let empty = EmptyDatabase::create().await?;
    let db = Database::connect(&empty.url).await?;
    Migrator::up(&db, Some(BEFORE_M0012)).await?;
    // m0012 adds devices.channel, then commands.offered_at. A column the
    // second step cannot add stops it after the first step ran, as a kill
    // between the two statements would.
    db.execute_unprepared("ALTER TABLE commands ADD COLUMN offered_at BIGINT")
        .await?;
    assert!(Migrator::up(&db, None).await.is_err());

    let schema = SchemaManager::new(&db);
    assert!(
        !schema.has_column("devices", "channel").await?,
        "the failed migration's first step is undone"
    );
    let pending = Migrator::get_pending_migrations(&db).await?;
    assert_eq!(
        pending.len(),
        Migrator::migrations().len() - BEFORE_M0012 as usize,
        "m0012 and the later migrations are still to run"
    );

    // Without the obstacle, the server's next start completes the upgrade.
    db.execute_unprepared("ALTER TABLE commands DROP COLUMN offered_at")
        .await?;
    db.close().await?;
    let store = Store::connect(&empty.url).await?;
    store.close().await;
    let db = Database::connect(&empty.url).await?;
    let schema = SchemaManager::new(&db);
    assert!(schema.has_column("devices", "channel").await?);
    assert!(schema.has_column("commands", "offered_at").await?);
    assert!(Migrator::get_pending_migrations(&db).await?.is_empty());
    db.close().await?;
    empty.drop_database().await
}
