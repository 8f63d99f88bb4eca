//! Migration Portal: moves a BackupAgent install base to the Acronis cloud.

/// Planning a large install base makes and drops millions of small strings;
/// mimalloc does that in a fraction of the time glibc's allocator takes.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod connectors;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod planning;
pub mod queue;
pub mod sim;
pub mod telemetry;

#[cfg(test)]
mod layering;
