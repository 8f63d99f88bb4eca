//! HTTP clients of the outside systems, behind traits: the BackupAgent server
//! (the source) and the cloud's Account Management API (the target).
//!
//! Both share one request discipline ([`Throttle`] + `send`): a per-workspace
//! rate limit and concurrency cap, timeouts, and retries with exponential
//! backoff and jitter on 5xx, 429 (honouring `Retry-After`) and transport
//! failures. Requests that create something are not retried blindly after the
//! server may have acted; the target's `ensure_*` helpers look up first instead.

pub mod check;
mod error;
mod guard;
mod json_api;
pub mod offering;
mod policy;
mod send;
pub mod source;
pub mod target;
mod throttle;

pub use error::ConnectorError;
pub use policy::{HttpPolicy, Limit};
pub use send::{Replay, RequestObserver, RequestOutcome};
pub use throttle::Throttle;

pub(crate) use json_api::{Credentials, Endpoint, JsonApi, decode};
