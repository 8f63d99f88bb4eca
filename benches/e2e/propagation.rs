//! How fast an agent's report reaches the partner: visible in the API once the
//! service has answered the report (the fleet times each), and delivered to the
//! partner's webhook receiver (this one, on loopback, times each delivery from
//! the event's time in its body to its arrival).

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// A webhook receiver that answers 204 and keeps each delivery's delay.
pub struct Receiver {
    pub url: String,
    delays_ms: Arc<Mutex<Vec<u32>>>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(body: web::Bytes, delays: web::Data<Arc<Mutex<Vec<u32>>>>) -> HttpResponse {
    let arrived = Utc::now();
    let at = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["timestamp"].as_str().map(str::to_string))
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
    if let Some(at) = at {
        let ms = (arrived - at.with_timezone(&Utc)).num_milliseconds().max(0);
        delays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ms.min(i64::from(u32::MAX)) as u32);
    }
    HttpResponse::NoContent().finish()
}

impl Receiver {
    pub fn start() -> anyhow::Result<Receiver> {
        let delays_ms = Arc::new(Mutex::new(Vec::new()));
        let data = web::Data::new(delays_ms.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))?;
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Receiver {
            url: format!("http://127.0.0.1:{port}/hooks"),
            delays_ms,
            handle,
        })
    }

    /// Every delivery's delay so far, in milliseconds, in the order they arrived.
    pub fn delays_ms(&self) -> Vec<u32> {
        self.delays_since(0)
    }

    /// How many deliveries arrived so far.
    pub fn delivered(&self) -> usize {
        self.delays_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The delays of the deliveries that arrived after the first `seen`.
    pub fn delays_since(&self, seen: usize) -> Vec<u32> {
        let delays = self.delays_ms.lock().unwrap_or_else(|e| e.into_inner());
        delays.get(seen..).unwrap_or_default().to_vec()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// `n p50 … p99 … max …` of times in milliseconds.
pub fn percentiles(mut ms: Vec<u32>) -> String {
    if ms.is_empty() {
        return "none".into();
    }
    ms.sort_unstable();
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    format!(
        "{} of them: p50 {} ms, p99 {} ms, max {} ms",
        ms.len(),
        at(0.5),
        at(0.99),
        ms[ms.len() - 1]
    )
}
