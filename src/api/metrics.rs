//! `GET /metrics`: the Prometheus text format (0.0.4). What the process counted
//! (`crate::metrics`) plus gauges read from the database at scrape time with a few
//! indexed `GROUP BY`s, so they always equal what the API shows.
//!
//! A database that does not answer within [`DATABASE_TIMEOUT`] does not fail the
//! scrape: the answer is still 200, with `mp_database_up 0` and without the
//! database's gauges. A 503 would make Prometheus drop the process's own counters
//! exactly when they tell what went wrong.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get, web};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntGauge, IntGaugeVec, Opts, Registry, TEXT_FORMAT, TextEncoder};
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;

use crate::api::docs;
use crate::api::state::AppState;
use crate::auth::{constant_time_eq, digest};
use crate::db::agents::machine_counts;
use crate::domain::machines::MachineState;
use crate::error::ApiError;
use crate::jobs;
use crate::queue::store as queue;

/// How long a scrape waits for the database (Prometheus times out at 10 s by default).
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Metrics for Prometheus.
///
/// The text exposition format 0.0.4: HTTP requests by route pattern, method and
/// status with latency histograms; agent check-ins (200 and 304); job outcomes by
/// kind; requests to the cloud by operation and outcome; and, read from the
/// database at scrape time, machines by workspace and migration state, unfinished
/// jobs by kind and state and the wait of the oldest due job.
///
/// Open to anyone who reaches the port unless `metrics.bearer_token`
/// (`MP_METRICS__BEARER_TOKEN`) is set; then it requires `Authorization: Bearer <token>`.
/// When the database does not answer within 2 seconds, the answer is still 200, with
/// `mp_database_up 0` and without the gauges read from it.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, response = docs::Unauthorized),
    ),
    security((), ("metrics_token" = []))
)]
#[get("/metrics")]
pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &req)?;
    let mut families = state.metrics.gather();
    families.extend(
        from_database(&state.db)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?,
    );
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut body = String::new();
    TextEncoder::new()
        .encode_utf8(&families, &mut body)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok().content_type(TEXT_FORMAT).body(body))
}

fn authorize(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(expected) = &state.metrics_token else {
        return Ok(());
    };
    let presented = crate::auth::bearer_token(req).ok_or(ApiError::Unauthorized {
        credentials_present: false,
    })?;
    // Digests have one length, so the comparison tells nothing of the token's.
    if constant_time_eq(
        digest(presented).as_bytes(),
        digest(expected.expose_secret()).as_bytes(),
    ) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized {
            credentials_present: true,
        })
    }
}

/// The gauges read from the database, and `mp_database_up`; gathered through a
/// registry of this scrape's, which sorts the series and leaves out empty families.
async fn from_database(db: &DatabaseConnection) -> Result<Vec<MetricFamily>, prometheus::Error> {
    let scrape = Registry::new();
    let up = IntGauge::new(
        "mp_database_up",
        "1 when the database answered this scrape's queries in time, else 0 (and its gauges are left out).",
    )?;
    scrape.register(Box::new(up.clone()))?;
    let gauges = DatabaseGauges::new()?;
    match tokio::time::timeout(DATABASE_TIMEOUT, gauges.read(db)).await {
        Ok(Ok(())) => {
            up.set(1);
            scrape.register(Box::new(gauges.machines))?;
            scrape.register(Box::new(gauges.jobs))?;
            scrape.register(Box::new(gauges.oldest_due))?;
        }
        Ok(Err(error)) => tracing::warn!(%error, "metrics: the database could not be read"),
        Err(_) => tracing::warn!(
            timeout_ms = DATABASE_TIMEOUT.as_millis() as u64,
            "metrics: the database did not answer in time"
        ),
    }
    Ok(scrape.gather())
}

struct DatabaseGauges {
    machines: IntGaugeVec,
    jobs: IntGaugeVec,
    oldest_due: GaugeVec,
}

impl DatabaseGauges {
    fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            machines: IntGaugeVec::new(
                Opts::new(
                    "mp_machines",
                    "Machines by workspace and migration state (as GET .../machines lists them).",
                ),
                &["workspace_id", "state"],
            )?,
            jobs: IntGaugeVec::new(
                Opts::new(
                    "mp_jobs_queued",
                    "Unfinished jobs by kind and state: queued (due or scheduled) or running (claimed by a worker).",
                ),
                &["kind", "state"],
            )?,
            oldest_due: GaugeVec::new(
                Opts::new(
                    "mp_jobs_oldest_due_age_seconds",
                    "How long the oldest due job of each kind has waited to be claimed; 0 when none is due.",
                ),
                &["kind"],
            )?,
        })
    }

    /// Every known state and kind has a series, 0 when nothing is in it.
    async fn read(&self, db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
        let machines = machine_counts(db).await?;
        for (workspace, _, _) in &machines {
            for state in MachineState::ALL {
                self.machines
                    .with_label_values(&[workspace.to_string().as_str(), state.as_str()])
                    .set(0);
            }
        }
        for (workspace, state, n) in machines {
            self.machines
                .with_label_values(&[workspace.to_string(), state])
                .set(n);
        }
        for kind in jobs::KINDS {
            for state in [queue::QUEUED, queue::RUNNING] {
                self.jobs.with_label_values(&[kind, state]).set(0);
            }
            self.oldest_due.with_label_values(&[kind]).set(0.0);
        }
        for (kind, state, n) in queue::active_counts(db).await? {
            self.jobs.with_label_values(&[kind, state]).set(n);
        }
        for (kind, waited_ms) in queue::oldest_due_waits(db).await? {
            self.oldest_due
                .with_label_values(&[kind])
                .set(waited_ms.max(0) as f64 / 1000.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn scraped_without_database(db: &DatabaseConnection) -> String {
        let families = from_database(db).await.expect("families");
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            ["mp_database_up"],
            "the database's gauges are left out"
        );
        let mut text = String::new();
        TextEncoder::new()
            .encode_utf8(&families, &mut text)
            .expect("encode");
        text
    }

    #[tokio::test]
    async fn a_database_that_refuses_is_reported_down_without_failing_the_scrape() {
        let db = sea_orm::Database::connect("sqlite::memory:")
            .await
            .expect("sqlite");
        db.close_by_ref().await.expect("close");
        let text = scraped_without_database(&db).await;
        assert!(text.lines().any(|l| l == "mp_database_up 0"), "{text}");
    }

    #[tokio::test]
    async fn a_database_that_never_answers_is_given_up_on_after_the_timeout() {
        // Accepts connections and never says a word.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let port = silent.local_addr().expect("address").port();
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                sockets.push(socket);
            }
        });
        let mut options =
            sea_orm::ConnectOptions::new(format!("postgres://mp:mp@127.0.0.1:{port}/mp"));
        options
            .connect_lazy(true)
            .acquire_timeout(Duration::from_secs(30));
        let db = sea_orm::Database::connect(options)
            .await
            .expect("lazy pool");
        let started = std::time::Instant::now();
        let text = scraped_without_database(&db).await;
        assert!(text.lines().any(|l| l == "mp_database_up 0"), "{text}");
        assert!(
            started.elapsed() < DATABASE_TIMEOUT + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        held.abort();
    }
}
