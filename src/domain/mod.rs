//! The product's rules, as pure functions: no I/O, no HTTP, no SeaORM. Each is
//! tested with a table of cases, one row per rule of the product description.

pub mod agent;
pub mod decommission;
pub mod initial_backup;
pub mod instructions;
pub mod logins;
pub mod machines;
pub mod migration;
pub mod names;
pub mod plan;
pub mod provisioning;
pub mod report;
pub mod schedules;
pub mod segments;
pub mod support;
pub mod tenants;
pub mod transfer;
pub mod webhooks;
pub mod windows;
