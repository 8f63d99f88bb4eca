//! SeaORM entities: the tables of the Migration Portal database.

pub mod agent;
pub mod event;
pub mod idempotency_record;
pub mod job;
pub mod login_check;
pub mod machine_assignment;
pub mod machine_log;
pub mod migration;
pub mod migration_item;
pub mod precheck;
pub mod precheck_chunk;
pub mod target_mapping;
pub mod webhook_delivery;
pub mod webhook_subscription;
pub mod workspace;
