//! Simulators of the outside systems. They speak HTTP like the real ones and
//! share no code with the service's domain, jobs or connectors.

pub mod backupagent;
pub mod cloud;
pub mod fleet;
pub mod idp;
pub mod install_base;
pub mod partner;

/// Runs a simulator's server (bound, signals left to its owner) in the background;
/// the handle stops it.
pub(crate) fn run_in_background(server: actix_web::dev::Server) -> actix_web::dev::ServerHandle {
    let handle = server.handle();
    tokio::spawn(server);
    handle
}

/// The login and password of an `Authorization: Basic` header, if well formed.
pub(crate) fn basic_credentials(req: &actix_web::HttpRequest) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?,
    )
    .ok()?;
    let (login, password) = decoded.split_once(':')?;
    Some((login.to_string(), password.to_string()))
}
