//! What the end-to-end benchmark (`e2e_large`) is made of.

pub mod api;
pub mod processes;
pub mod propagation;
pub mod truth;
