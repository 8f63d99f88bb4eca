//! SeaORM entities: the tables of the Migration Portal database.

pub mod idempotency_record;
pub mod job;
pub mod workspace;
