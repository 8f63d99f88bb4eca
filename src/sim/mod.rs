//! Simulators of the outside systems. They speak HTTP like the real ones and
//! share no code with the service's domain, jobs or connectors.

pub mod backupagent;
pub mod cloud;
pub mod idp;
pub mod install_base;
