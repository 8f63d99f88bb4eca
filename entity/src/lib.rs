//! SeaORM entities: the tables of the Migration Portal database.

pub mod idempotency_record;
pub mod job;
pub mod login_check;
pub mod precheck;
pub mod precheck_chunk;
pub mod workspace;
