//! Database migrations, applied by `migration-portal migrate` and at `serve` start.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_workspaces;
mod m20261125_000002_create_idempotency_records;
mod m20261125_000003_add_workspace_connection_check;
mod m20261125_000004_add_workspace_limits;
mod m20261125_000005_create_jobs;
mod m20261125_000006_index_idempotency_created_at;
mod m20261125_000007_create_snapshot;
mod m20261125_000008_add_snapshot_facts;
mod m20261125_000009_create_prechecks;
mod m20261129_000010_create_migrations;
mod m20261129_000011_create_agents;
mod m20261129_000012_create_machine_logs;
mod m20261129_000013_add_registration_tokens;
mod m20261129_000014_add_machine_watch;
mod m20261129_000015_create_webhooks;
mod m20261129_000016_add_precheck_options;
mod m20261201_000017_add_registration_claims;
mod m20261206_000018_add_source_quotas;
mod m20261206_000019_add_provisioning_profile;
mod m20261206_000020_precheck_chunks_lz4;
mod m20261206_000021_jobs_claimable;
mod m20261206_000022_check_ins_on_agents;
mod m20261206_000023_index_snapshot_reads;
mod m20261207_000024_claim_by_kind;
mod m20261207_000025_item_counts;
mod m20261207_000026_assignments_by_user;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_workspaces::Migration),
            Box::new(m20261125_000002_create_idempotency_records::Migration),
            Box::new(m20261125_000003_add_workspace_connection_check::Migration),
            Box::new(m20261125_000004_add_workspace_limits::Migration),
            Box::new(m20261125_000005_create_jobs::Migration),
            Box::new(m20261125_000006_index_idempotency_created_at::Migration),
            Box::new(m20261125_000007_create_snapshot::Migration),
            Box::new(m20261125_000008_add_snapshot_facts::Migration),
            Box::new(m20261125_000009_create_prechecks::Migration),
            Box::new(m20261129_000010_create_migrations::Migration),
            Box::new(m20261129_000011_create_agents::Migration),
            Box::new(m20261129_000012_create_machine_logs::Migration),
            Box::new(m20261129_000013_add_registration_tokens::Migration),
            Box::new(m20261129_000014_add_machine_watch::Migration),
            Box::new(m20261129_000015_create_webhooks::Migration),
            Box::new(m20261129_000016_add_precheck_options::Migration),
            Box::new(m20261201_000017_add_registration_claims::Migration),
            Box::new(m20261206_000018_add_source_quotas::Migration),
            Box::new(m20261206_000019_add_provisioning_profile::Migration),
            Box::new(m20261206_000020_precheck_chunks_lz4::Migration),
            Box::new(m20261206_000021_jobs_claimable::Migration),
            Box::new(m20261206_000022_check_ins_on_agents::Migration),
            Box::new(m20261206_000023_index_snapshot_reads::Migration),
            Box::new(m20261207_000024_claim_by_kind::Migration),
            Box::new(m20261207_000025_item_counts::Migration),
            Box::new(m20261207_000026_assignments_by_user::Migration),
        ]
    }
}
