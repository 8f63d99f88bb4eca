//! Migration Portal: moves a BackupAgent install base to the Acronis cloud.

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
pub mod sim;
pub mod telemetry;
