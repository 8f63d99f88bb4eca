//! `/agent/v1`: what the BackupAgent clients on end-user machines call. An agent
//! enrolls with its workspace's enrollment secret and gets a token of its own
//! (random, stored hashed, replaced on re-enrollment) that reaches its machine
//! only; it polls for instructions (cheap: ETag / 304, `poll_after` with
//! jitter) and reports each step, idempotently by sequence number. Every route
//! that takes the token is wrapped in
//! [`require_agent`](crate::api::guard::require_agent), which authenticates it
//! before the body is read.

mod checkin;
mod dto;
mod enroll;
mod logs;
mod partner;
mod reports;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(enroll::enroll)
        .service(checkin::instructions)
        .service(reports::report_event)
        .service(logs::upload_log);
}

/// Partner routes about agents, under `/api/v1`.
pub fn partner_routes(cfg: &mut ServiceConfig) {
    cfg.service(partner::rotate_enrollment_secret);
}
