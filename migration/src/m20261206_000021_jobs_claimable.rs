use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// PostgreSQL: the jobs a claim may take, in the order it takes them, read by
/// walking the `(status, run_at_ms)` index in order whatever the planner's
/// statistics say (bitmap scans are off inside). Without it, a `jobs` table
/// whose statistics predate a burst of queued jobs (a new database, a large
/// migration's batches) was planned as a bitmap scan of every queued job and a
/// sort, on every claim: each claim of 32 read all 20,000 jobs queued.
/// SQLite plans the claim well as it is.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        // Lapsed leases first (their workers died), then due jobs, oldest first;
        // each part locked as it is read, skipping rows another claim holds.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE OR REPLACE FUNCTION jobs_claimable(kinds text[], max_jobs bigint, now_ms bigint) \
                 RETURNS TABLE (id uuid, taken_over integer, run_at_ms bigint) \
                 LANGUAGE sql VOLATILE SET enable_bitmapscan = off AS $$ \
                 WITH lapsed AS (SELECT j.id, j.run_at_ms FROM jobs j \
                   WHERE j.status = 'running' AND j.locked_until_ms < now_ms AND j.kind = ANY (kinds) \
                   ORDER BY j.run_at_ms LIMIT max_jobs FOR UPDATE SKIP LOCKED), \
                 due AS (SELECT j.id, j.run_at_ms FROM jobs j \
                   WHERE j.status = 'queued' AND j.run_at_ms <= now_ms AND j.kind = ANY (kinds) \
                   ORDER BY j.run_at_ms LIMIT max_jobs FOR UPDATE SKIP LOCKED) \
                 SELECT l.id, 0, l.run_at_ms FROM lapsed l UNION ALL SELECT d.id, 1, d.run_at_ms FROM due d \
                 $$",
            )
            .await
            .map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("DROP FUNCTION IF EXISTS jobs_claimable(text[], bigint, bigint)")
            .await
            .map(drop)
    }
}
