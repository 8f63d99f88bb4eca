//! `/agent/v1`: what the BackupAgent clients on end-user machines call. An agent
//! enrolls with its workspace's enrollment secret and gets a token of its own
//! (random, stored hashed, replaced on re-enrollment) that reaches its machine
//! only; it polls for instructions (cheap: ETag / 304, `poll_after` with
//! jitter) and reports each step, idempotently by sequence number. Every route
//! that takes the token is wrapped in [`require_agent`], which authenticates it
//! before the body is read.

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rand::Rng;
use sea_orm::{EntityTrait, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;
use validator::Validate;

use crate::api::docs;
use crate::api::extract::ValidJson;
use crate::api::guard::require_agent;
use crate::api::state::AppState;
use crate::auth::{Agent, constant_time_eq, digest};
use crate::db::agents as store;
use crate::db::events::{self, NewEvent};
use crate::domain::agent::{Outcome, Report, Status, readiness_on_check_in};
use crate::domain::machines::MachineState;
use crate::domain::support::{ClientStatus, ClientVersion, Platform, SupportMatrix};
use crate::error::ApiError;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(enroll)
        .service(instructions)
        .service(report_event)
        .service(upload_log);
}

/// Agents check in about every 30 minutes; each is told when, with jitter so
/// that a fleet started together spreads out.
const POLL_SECS: u64 = 30 * 60;
const JITTER_SECS: u64 = 5 * 60;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub workspace_id: Uuid,
    /// The workspace's enrollment secret, as the partner set it.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub enrollment_secret: String,
    /// The machine's id in BackupAgent.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub machine_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolled {
    pub machine_id: String,
    /// The agent's token for every later call (`Authorization: Bearer`). Shown once;
    /// enrolling again replaces it.
    pub token: String,
    pub poll_after_secs: u64,
}

/// Enroll a machine's agent.
#[utoipa::path(
    tag = "agents",
    request_body = Enrollment,
    responses(
        (status = 201, description = "Enrolled", body = Enrolled),
        (status = 401, response = docs::Unauthorized),
        (status = 404, response = docs::NotFound),
        (status = 500, response = docs::Internal),
        docs::BodyErrors,
    )
)]
#[post("/enroll")]
async fn enroll(
    state: web::Data<AppState>,
    body: ValidJson<Enrollment>,
) -> Result<HttpResponse, ApiError> {
    let request = &body.value;
    let workspace = entity::workspace::Entity::find_by_id(request.workspace_id)
        .one(&state.db)
        .await?;
    let expected = workspace
        .as_ref()
        .and_then(|w| w.enrollment_secret_hash.clone());
    let presented = digest(&request.enrollment_secret);
    // The same answer for an unknown workspace and a wrong secret.
    let (Some(workspace), Some(expected)) = (workspace, expected) else {
        return Err(ApiError::Unauthorized {
            credentials_present: true,
        });
    };
    if !constant_time_eq(expected.as_bytes(), presented.as_bytes()) {
        tracing::info!(workspace = %request.workspace_id, "enrollment refused: wrong secret");
        return Err(ApiError::Unauthorized {
            credentials_present: true,
        });
    }
    if store::machine(&state.db, workspace.id, &request.machine_id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    let token = format!("mpa_{}", URL_SAFE_NO_PAD.encode(bytes));
    store::enroll(
        &state.db,
        workspace.id,
        &request.machine_id,
        &digest(&token),
    )
    .await?;
    let event = NewEvent {
        actor: format!("agent:{}", request.machine_id),
        subject_kind: "machine",
        subject_id: request.machine_id.clone(),
        migration_id: None,
        kind: "agent.enrolled".into(),
        message: "the agent enrolled; an earlier token of this machine no longer works".into(),
        data: None,
    };
    events::record(&state.db, workspace.id, vec![event]).await?;
    Ok(HttpResponse::Created().json(Enrolled {
        machine_id: request.machine_id.clone(),
        token,
        poll_after_secs: poll_after(),
    }))
}

fn poll_after() -> u64 {
    POLL_SECS - JITTER_SECS + rand::rng().random_range(0..=2 * JITTER_SECS)
}

/// What the agent is to do now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Instructions {
    /// `none` (check in again later), `migrate` (install, register, transfer the plans,
    /// switch to restore-only, reporting each step) or `stop` (the migration is over
    /// for this machine: migrated, failed or waiting for someone).
    pub action: String,
    /// Why a released machine is told to do nothing yet (`update_pending: …`, `update_required: …`).
    pub reason: Option<String>,
    pub machine_id: String,
    /// The machine's migration state as the portal sees it.
    pub state: MachineState,
    /// The install for this machine's platform (`migrate` only).
    #[schema(value_type = Option<Object>)]
    pub package: Option<Value>,
    /// The converted backup plans to apply (`migrate` only).
    #[schema(value_type = Option<Vec<Object>>)]
    pub plans: Option<Value>,
    /// Where and how the cloud agent registers (`migrate` only): the cloud's address
    /// and a one-time registration token bound to the machine's user, to pass in a
    /// file or the environment, never on a command line.
    #[schema(value_type = Option<Object>)]
    pub registration: Option<Value>,
    /// The next report's sequence number must be above this.
    pub last_seq: i64,
    /// When to check in again, in seconds (jittered).
    pub poll_after_secs: u64,
}

/// The silent install for a platform: no password on a command line; the agent
/// registers with a one-time token it receives separately.
fn package(data: &Value) -> Value {
    match data["os"]["family"].as_str().unwrap_or_default() {
        "windows" => {
            json!({"platform": "windows", "file": "AcronisCyberProtect_AgentForWindows_web.exe", "command": "msiexec /i AB.msi /qn /l*v install.log"})
        }
        "macos" => {
            json!({"platform": "macos", "file": "AcronisCyberProtect_AgentForMac.dmg", "command": "installer -pkg AcronisAgent.pkg -target /"})
        }
        _ => {
            json!({"platform": "linux", "file": "Backup_Agent_for_Linux_x86_64.bin", "command": "./Backup_Agent_for_Linux_x86_64.bin -a --skip-registration"})
        }
    }
}

/// The header an agent states its BackupAgent client version in.
const CLIENT_VERSION: &str = "x-client-version";

/// Get the agent's instructions.
///
/// Cheap to poll: the answer's `ETag` changes only when the instructions do, and
/// `If-None-Match` with it answers 304 without a body. An agent states its client
/// version in `X-Client-Version`: a released machine that waited for its client's
/// update migrates at the check-in that reports a recent enough version, without
/// waiting for the next sync.
#[utoipa::path(
    tag = "agents",
    params(
        ("X-Client-Version" = Option<String>, Header, description = "The BackupAgent client's version, `major.minor.patch.build`, at most 64 characters (another form is ignored)", example = "5.5.0.15908"),
    ),
    responses(
        (status = 200, description = "What to do now", body = Instructions, headers(("ETag" = String, description = "Changes when the instructions do"))),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 404, response = docs::NotFound),
        (status = 503, response = docs::Unavailable),
        docs::AgentErrors,
    ),
    security(("agent_token" = []))
)]
#[get("/instructions", wrap = "from_fn(require_agent)")]
async fn instructions(
    state: web::Data<AppState>,
    req: HttpRequest,
    Agent(mut machine): Agent,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = machine.workspace_id;
    state.check_ins.record(workspace_id, &machine.machine_id);
    if let Some(version) = req
        .headers()
        .get(CLIENT_VERSION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| v.len() <= 64 && ClientVersion::parse(v).is_some())
    {
        client_reported(&state, &mut machine, version).await?;
    }
    // A released client too old to migrate unattended waits for its update (the next
    // sync sees the new version and makes it ready); one that does not update itself
    // waits for the partner to reach its user.
    let waits_for_update = match machine.readiness.as_deref() {
        Some("ready_after_client_upgrade") => Some(
            "update_pending: the client updates itself at a next check-in; it migrates once updated",
        ),
        Some("contact_user") => Some(
            "update_required: automatic updates are off; the client migrates once its user updates it",
        ),
        _ => None,
    };
    let (action, reason) = match machine.status.state {
        MachineState::Pending if waits_for_update.is_some() => ("none", waits_for_update),
        MachineState::Pending | MachineState::Migrating => ("migrate", None),
        MachineState::Idle | MachineState::Cancelled => ("none", None),
        MachineState::Migrated | MachineState::Failed | MachineState::ManualActionRequired => {
            ("stop", None)
        }
    };
    let migrate = action == "migrate";
    let registration = if migrate {
        registration(&state, workspace_id, &machine).await?
    } else {
        None
    };
    let body = Instructions {
        registration,
        reason: reason.map(str::to_string),
        action: action.into(),
        machine_id: machine.machine_id.clone(),
        state: machine.status.state,
        package: migrate.then(|| package(&machine.data)),
        plans: if migrate { machine.plans.clone() } else { None },
        last_seq: machine.status.last_seq,
        poll_after_secs: 0,
    };
    let etag = etag(&body)?;
    let poll = poll_after();
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    state.metrics.check_in(matches);
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response.insert_header((
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.into()))?,
    ));
    response.insert_header(("Poll-After", poll.to_string()));
    if matches {
        return Ok(response.finish());
    }
    Ok(response.json(Instructions {
        poll_after_secs: poll,
        ..body
    }))
}

/// Keeps the client version an agent reports, and the readiness it makes (a
/// write only when either changes: a check-in is otherwise read-only).
async fn client_reported(
    state: &AppState,
    machine: &mut store::MachineRow,
    version: &str,
) -> Result<(), ApiError> {
    static MATRIX: std::sync::LazyLock<SupportMatrix> =
        std::sync::LazyLock::new(SupportMatrix::default);
    let platform = Platform::from_family(machine.data["os"]["family"].as_str().unwrap_or_default());
    let current = MATRIX.client_status(platform, Some(version), true) == ClientStatus::Current;
    let kept = machine.readiness.as_deref();
    let now = readiness_on_check_in(kept, current);
    if machine.reported_client_version.as_deref() == Some(version) && now == kept {
        return Ok(());
    }
    let readiness = now.map(str::to_string);
    let tx = state.db.begin().await?;
    store::client_reported(
        &tx,
        machine.workspace_id,
        &machine.machine_id,
        version,
        readiness.as_deref(),
    )
    .await?;
    if readiness != machine.readiness {
        let event = NewEvent {
            actor: format!("agent:{}", machine.machine_id),
            subject_kind: "machine",
            subject_id: machine.machine_id.clone(),
            migration_id: None,
            kind: "machine.client_updated".into(),
            message: format!(
                "the agent reports client {version}: the machine can migrate unattended"
            ),
            data: Some(
                json!({"client_version": version, "readiness": readiness, "was": machine.readiness}),
            ),
        };
        events::record(&tx, machine.workspace_id, vec![event]).await?;
    }
    tx.commit().await?;
    machine.reported_client_version = Some(version.to_string());
    machine.readiness = readiness;
    Ok(())
}

/// The machine's registration: the cloud's address and its one-time token (see
/// [`super::registration`]: at most one live token per machine). `None` for a
/// machine with no target yet.
async fn registration(
    state: &AppState,
    workspace_id: Uuid,
    machine: &store::MachineRow,
) -> Result<Option<Value>, ApiError> {
    super::registration::machine_registration(state, workspace_id, machine).await
}

/// A strong ETag over what the instructions say (the jittered poll time left out).
fn etag(body: &Instructions) -> Result<String, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(format!(
        "\"{}\"",
        &digest(&String::from_utf8_lossy(&bytes))[..32]
    ))
}

/// A step report's sequence number: it increases with every report of this agent; a
/// repeated or older one is acknowledged and ignored. At most 2^53 - 1, so that every
/// client reads it exactly.
#[derive(ToSchema)]
#[schema(minimum = 1, maximum = 9007199254740991_i64)]
pub struct Seq(#[allow(dead_code)] i64);

const MAX_SEQ: i64 = (1 << 53) - 1;

/// A step report: its `kind`, its `seq` and what the kind carries, nothing else (an
/// unknown field is refused, as everywhere). The domain's [`Report`] with its number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentEvent {
    Downloading {
        #[schema(value_type = Seq)]
        seq: i64,
    },
    Installing {
        #[schema(value_type = Seq)]
        seq: i64,
    },
    Registering {
        #[schema(value_type = Seq)]
        seq: i64,
    },
    /// The converted backup plans are applied in the cloud agent.
    PlansTransferred {
        #[schema(value_type = Seq)]
        seq: i64,
    },
    /// The BackupAgent client switched to restore-only: the machine is migrated.
    RestoreOnly {
        #[schema(value_type = Seq)]
        seq: i64,
    },
    /// The cloud agent is installed; registration needs someone's hands (SQL Server, Exchange).
    RegistrationManual {
        #[schema(value_type = Seq)]
        seq: i64,
        #[schema(max_length = 2000)]
        message: String,
    },
    Failed {
        #[schema(value_type = Seq)]
        seq: i64,
        #[schema(max_length = 100)]
        code: String,
        #[schema(max_length = 2000)]
        message: String,
    },
}

impl AgentEvent {
    fn seq(&self) -> i64 {
        match self {
            Self::Downloading { seq }
            | Self::Installing { seq }
            | Self::Registering { seq }
            | Self::PlansTransferred { seq }
            | Self::RestoreOnly { seq }
            | Self::RegistrationManual { seq, .. }
            | Self::Failed { seq, .. } => *seq,
        }
    }

    fn report(&self) -> Report {
        match self {
            Self::Downloading { .. } => Report::Downloading,
            Self::Installing { .. } => Report::Installing,
            Self::Registering { .. } => Report::Registering,
            Self::PlansTransferred { .. } => Report::PlansTransferred,
            Self::RestoreOnly { .. } => Report::RestoreOnly,
            Self::RegistrationManual { message, .. } => Report::RegistrationManual {
                message: message.clone(),
            },
            Self::Failed { code, message, .. } => Report::Failed {
                code: code.clone(),
                message: message.clone(),
            },
        }
    }
}

/// The report's rules (the lengths of its texts) and the number's range.
impl Validate for AgentEvent {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        let mut errors = self.report().validate().err().unwrap_or_default();
        if !(1..=MAX_SEQ).contains(&self.seq()) {
            errors.add(
                "seq",
                validator::ValidationError::new("range")
                    .with_message(format!("must be between 1 and {MAX_SEQ}").into()),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reported {
    /// Whether this report changed the machine (false for a repeated or older one).
    pub applied: bool,
    pub state: MachineState,
    pub phase: Option<crate::domain::agent::Phase>,
    pub last_seq: i64,
}

/// Report a step: downloading, installing, registering, plans transferred,
/// restore-only, registration needs manual action, or failed (code, message).
///
/// Idempotent by `seq`; a report the machine's state does not allow is refused
/// with 409 and logged, never applied.
#[utoipa::path(
    tag = "agents",
    request_body = AgentEvent,
    responses(
        (status = 200, description = "Recorded (or already seen)", body = Reported),
        (status = 404, response = docs::NotFound),
        (status = 409, response = docs::Conflict),
        docs::AgentErrors,
        docs::BodyErrors,
    ),
    security(("agent_token" = []))
)]
#[post("/events", wrap = "from_fn(require_agent)")]
async fn report_event(
    state: web::Data<AppState>,
    Agent(mut machine): Agent,
    body: ValidJson<AgentEvent>,
) -> Result<HttpResponse, ApiError> {
    let (workspace_id, machine_id) = (machine.workspace_id, machine.machine_id.clone());
    let (seq, report) = (body.value.seq(), body.value.report());
    // A lost race with another report of the same agent: read again and decide again.
    for attempt in 0..3 {
        if attempt > 0 {
            machine = store::machine(&state.db, workspace_id, &machine_id)
                .await?
                .ok_or(ApiError::NotFound)?;
        }
        let from = machine.status;
        let log = |kind: &str, message: String| NewEvent {
            actor: format!("agent:{machine_id}"),
            subject_kind: "machine",
            subject_id: machine_id.clone(),
            migration_id: None,
            kind: kind.into(),
            message,
            data: None,
        };
        match crate::domain::agent::report(from, seq, &report) {
            Outcome::AlreadySeen => return Ok(HttpResponse::Ok().json(reported(false, from))),
            Outcome::Refused(reason) => {
                events::record(
                    &state.db,
                    workspace_id,
                    vec![log(
                        "machine.report_refused",
                        format!("report {seq} refused: {reason}"),
                    )],
                )
                .await?;
                return Err(ApiError::conflict("illegal_transition", reason));
            }
            Outcome::Moved(to) => {
                let error = match &report {
                    Report::Failed { code, message } => Some((code.as_str(), message.as_str())),
                    Report::RegistrationManual { message } => {
                        Some(("registration_manual", message.as_str()))
                    }
                    _ => None,
                };
                let txn = sea_orm::TransactionTrait::begin(&state.db).await?;
                if !store::transition(&txn, workspace_id, &machine_id, from, to, error).await? {
                    continue;
                }
                let message = match to.phase {
                    Some(phase) if to.state == MachineState::Migrating => {
                        format!("{} -> migrating ({})", from.state.as_str(), phase.as_str())
                    }
                    _ => format!("{} -> {}", from.state.as_str(), to.state.as_str()),
                };
                let detail = error
                    .map(|(code, text)| format!(": {code}: {text}"))
                    .unwrap_or_default();
                events::record(
                    &txn,
                    workspace_id,
                    vec![log(
                        &format!("machine.{}", report.name()),
                        format!("{message}{detail}"),
                    )],
                )
                .await?;
                txn.commit().await?;
                return Ok(HttpResponse::Ok().json(reported(true, to)));
            }
        }
    }
    Err(ApiError::conflict(
        "concurrent_reports",
        "Other reports of this machine keep arriving at the same time: send this one again.",
    ))
}

fn reported(applied: bool, status: Status) -> Reported {
    Reported {
        applied,
        state: status.state,
        phase: status.phase,
        last_seq: status.last_seq,
    }
}

/// Partner routes about agents, under `/api/v1`.
pub fn partner_routes(cfg: &mut ServiceConfig) {
    cfg.service(rotate_enrollment_secret);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentSecret {
    pub workspace_id: Uuid,
    /// Give it to the agents (e.g. through the RMM tool). Shown once: only its hash is kept.
    pub enrollment_secret: String,
}

/// Set a new enrollment secret for the workspace's agents.
///
/// The previous secret stops working; agents enrolled with it keep their tokens.
#[utoipa::path(
    tag = "agents",
    params(("id" = Uuid, Path, description = "Workspace id")),
    responses(
        (status = 201, description = "The new secret, shown once", body = EnrollmentSecret),
        (status = 404, response = docs::NotFound),
        docs::PartnerErrors,
    ),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/enrollment-secret")]
async fn rotate_enrollment_secret(
    partner: crate::auth::Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let workspace = crate::db::workspaces::find(&state.db, partner.tenant_id, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut bytes = [0u8; 24];
    rand::rng().fill(&mut bytes);
    let secret = format!("mpe_{}", URL_SAFE_NO_PAD.encode(bytes));
    store::set_enrollment_secret(&state.db, workspace.id, &digest(&secret)).await?;
    let event = NewEvent {
        actor: format!("partner:{}", partner.subject),
        subject_kind: "workspace",
        subject_id: workspace.id.to_string(),
        migration_id: None,
        kind: "workspace.enrollment_secret_rotated".into(),
        message: "a new enrollment secret was set; the previous one no longer enrolls agents"
            .into(),
        data: None,
    };
    events::record(&state.db, workspace.id, vec![event]).await?;
    Ok(HttpResponse::Created().json(EnrollmentSecret {
        workspace_id: workspace.id,
        enrollment_secret: secret,
    }))
}

/// The client's log as it wrote it (not empty).
#[derive(ToSchema)]
#[schema(min_length = 1)]
pub struct ClientLog(#[allow(dead_code)] String);

#[derive(Debug, Serialize, ToSchema)]
pub struct LogUploaded {
    pub log_id: Uuid,
    pub size_bytes: usize,
    pub stored_bytes: usize,
}

/// Upload the client log (plain text, up to `http.agent_max_log_bytes`, 1 MiB by
/// default); it is stored compressed and listed on the machine. An empty log is
/// refused (422).
#[utoipa::path(
    tag = "agents",
    request_body(content = ClientLog, content_type = "text/plain"),
    responses(
        (status = 201, description = "Stored", body = LogUploaded),
        (status = 400, response = docs::BadRequest),
        (status = 413, response = docs::PayloadTooLarge),
        (status = 422, response = docs::Unprocessable),
        docs::AgentErrors,
    ),
    security(("agent_token" = []))
)]
#[post("/logs", wrap = "from_fn(require_agent)")]
async fn upload_log(
    state: web::Data<AppState>,
    Agent(machine): Agent,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    use futures_util::StreamExt;
    use std::io::Write;
    let limit = state.agent_max_log_bytes;
    let mut size = 0usize;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("invalid_body", format!("The log could not be read: {e}"))
        })?;
        size += chunk.len();
        if size > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        gzip.write_all(&chunk)
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    if size == 0 {
        return Err(ApiError::invalid_field("", "the log is empty"));
    }
    let data = gzip.finish().map_err(|e| ApiError::Internal(e.into()))?;
    let stored = data.len();
    let log_id = Uuid::now_v7();
    let model = entity::machine_log::ActiveModel {
        id: sea_orm::ActiveValue::Set(log_id),
        workspace_id: sea_orm::ActiveValue::Set(machine.workspace_id),
        machine_id: sea_orm::ActiveValue::Set(machine.machine_id),
        uploaded_at: sea_orm::ActiveValue::Set(Utc::now()),
        size_bytes: sea_orm::ActiveValue::Set(size as i64),
        data: sea_orm::ActiveValue::Set(data),
    };
    entity::machine_log::Entity::insert(model)
        .exec_without_returning(&state.db)
        .await?;
    Ok(HttpResponse::Created().json(LogUploaded {
        log_id,
        size_bytes: size,
        stored_bytes: stored,
    }))
}
