//! `/api/v1/workspaces/{id}/migrations`: waves that carry out the plan of a
//! selection, their items, pause / resume / cancel / retry; and
//! `/api/v1/workspaces/{id}/events`, the operations log.

mod dto;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{Duration, Utc};
use sea_orm::TransactionTrait;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::api::docs;
use crate::api::extract::ValidJson;
use crate::api::guard::partner_workspace;
use crate::api::idempotency::{self, Created, IdempotencyKey};
use crate::api::paging::{PageParams, Paged, encode_key};
use crate::api::state::AppState;
use crate::auth::Partner;
use crate::db::events::{self as log, NewEvent};
use crate::db::migrations::{self as store, ItemFilter};
use crate::db::scoped;
use crate::db::workspaces;
use crate::domain::migration::{Command, MigrationStatus};
use crate::error::{ApiError, FieldError};
use crate::jobs::SuperviseMigration;
use crate::queue::store as queue;
pub use dto::*;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_migration)
        .service(list_migrations)
        .service(get_migration)
        .service(list_items)
        .service(pause_migration)
        .service(resume_migration)
        .service(cancel_migration)
        .service(retry_migration)
        .service(list_events);
}

/// A snapshot or pre-check older than this is stale: the migration refuses it unless told to re-plan.
const MAX_PLAN_AGE_HOURS: i64 = 24;

/// The job supervising a migration. It looks every second for days, so a few
/// database hiccups (each a failed attempt) must not use its attempts up.
/// Makes sure a supervisor will look at the migration: a new one when its job is
/// over (or, `restart`, about to be: it just finished the migration). The old
/// one, if it still runs, sees it was superseded and stops.
async fn ensure_supervisor(
    txn: &impl sea_orm::ConnectionTrait,
    partner: &Partner,
    migration: &entity::migration::Model,
    restart: bool,
) -> Result<(), ApiError> {
    let live = queue::get(txn, migration.job_id)
        .await?
        .is_some_and(|j| matches!(j.status.as_str(), queue::QUEUED | queue::RUNNING));
    if restart || !live {
        let job = queue::enqueue(
            txn,
            SuperviseMigration::of(partner.tenant_id, migration.workspace_id, migration.id),
        )
        .await?;
        store::set_job(txn, migration.id, job.id).await?;
    }
    Ok(())
}

fn partner_event(partner: &Partner, migration_id: Uuid, kind: &str, message: String) -> NewEvent {
    NewEvent {
        actor: format!("partner:{}", partner.subject),
        subject_kind: "migration",
        subject_id: migration_id.to_string(),
        migration_id: Some(migration_id),
        kind: kind.into(),
        message,
        data: None,
    }
}

/// Start a migration (a wave) of a selection.
///
/// Answers 202 with the migration; its `operation` shows the progress. The
/// plan is made again from the current snapshot by the same code as the
/// pre-check. A migration naming a pre-check older than the snapshot (or than a
/// day), or, without one, a snapshot over a day old, is refused with 409 unless
/// `replan` is true; what planning again changed against the pre-check is then
/// recorded on the migration. The worker creates the tenants parent first, then
/// admins (with activation emails) and backup users (with their source
/// passwords), and releases each migrated user's machines to their agents.
#[utoipa::path(
    tag = "migrations",
    request_body = CreateMigration,
    params(
        ("id" = Uuid, Path, description = "Workspace id"),
        IdempotencyKey,
    ),
    responses(
        (status = 202, description = "Started", body = Migration, headers(("Location" = String, description = "The migration"))),
        (status = 404, response = docs::NotFound),
        (status = 409, response = docs::Conflict),
        docs::PartnerErrors,
        docs::BodyErrors,
    ),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/migrations")]
#[tracing::instrument(name = "create migration", skip_all, fields(tenant = %partner.tenant_id, workspace = %id))]
async fn create_migration(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: ValidJson<CreateMigration>,
) -> Result<HttpResponse, ApiError> {
    let (workspace, pending) = match idempotency::start_in_workspace(
        &state.db,
        &state.secrets,
        partner.tenant_id,
        *id,
        "migrations",
        key,
        &body.raw,
    )
    .await?
    {
        Ok(go_ahead) => go_ahead,
        Err(replayed) => return Ok(replayed),
    };
    let Some(synced_at) = workspace.snapshot_synced_at else {
        return Err(ApiError::conflict(
            "not_synced",
            "The workspace has no snapshot yet: start a sync and wait for it to finish.",
        ));
    };
    let request = &body.value;
    let oldest = Utc::now() - Duration::hours(MAX_PLAN_AGE_HOURS);
    let selection = match (request.precheck_id, &request.selection) {
        (None, None) => {
            return Err(ApiError::invalid_field(
                "/selection",
                "Name a pre-check (precheck_id) or a selection.",
            ));
        }
        (Some(precheck_id), selection) => {
            let unknown = || FieldError {
                pointer: "/precheck_id".into(),
                detail: "No such pre-check in this workspace.".into(),
            };
            let precheck = scoped::find::<entity::precheck::Entity>(
                &state.db,
                partner.tenant_id,
                workspace.id,
                precheck_id,
            )
            .await?
            .ok_or_else(|| {
                ApiError::conflict_at(
                    "unknown_precheck",
                    "The workspace has no such pre-check.",
                    vec![unknown()],
                )
            })?;
            if precheck.completed_at.is_none() {
                return Err(ApiError::conflict(
                    "precheck_not_ready",
                    "The pre-check has not completed: wait for its operation.",
                ));
            }
            let planned: Vec<crate::domain::plan::Node> = serde_json::from_str(&precheck.selection)
                .map_err(|e| ApiError::Internal(e.into()))?;
            if selection.as_ref().is_some_and(|s| *s != planned) {
                let differs = FieldError {
                    pointer: "/selection".into(),
                    detail: "The selection differs from the pre-check's.".into(),
                };
                return Err(ApiError::conflict_at(
                    "selection_differs",
                    "The selection differs from the pre-check's: leave it out, or pre-check this selection.",
                    vec![differs],
                ));
            }
            refuse_unavailable_items(&precheck, &workspace, &request.options)?;
            let stale =
                precheck.snapshot_synced_at != Some(synced_at) || precheck.created_at < oldest;
            if stale && !request.replan {
                return Err(ApiError::conflict(
                    "stale_precheck",
                    "The workspace was synced again since the pre-check (or the pre-check is over a day old): run a new pre-check, or pass \"replan\": true to plan again and record what changed.",
                ));
            }
            planned
        }
        (None, Some(selection)) => {
            if synced_at < oldest && !request.replan {
                return Err(ApiError::conflict(
                    "stale_snapshot",
                    "The snapshot is over a day old: sync again, or pass \"replan\": true to migrate from it anyway.",
                ));
            }
            selection.clone()
        }
    };
    crate::api::prechecks::check_selection(&state.db, workspace.id, &selection).await?;
    let selection_json = serde_json::to_string(&selection).map_err(anyhow::Error::from)?;
    let options = serde_json::to_string(&request.options).map_err(anyhow::Error::from)?;
    pending
        .create(&state.db, async |txn| {
            let migration_id = Uuid::now_v7();
            let job = queue::enqueue(
                txn,
                SuperviseMigration::of(partner.tenant_id, workspace.id, migration_id),
            )
            .await?;
            let now = Utc::now();
            let model = entity::migration::Model {
                id: migration_id,
                workspace_id: workspace.id,
                tenant_id: partner.tenant_id,
                precheck_id: request.precheck_id,
                selection: selection_json,
                options,
                status: MigrationStatus::Planning.as_str().into(),
                replan: None,
                snapshot_synced_at: Some(synced_at),
                job_id: job.id,
                error: None,
                created_at: now,
                updated_at: now,
                completed_at: None,
            };
            store::insert(txn, model.clone()).await?;
            let event = partner_event(
                &partner,
                migration_id,
                "migration.created",
                format!("migration of {} nodes requested", selection.len()),
            );
            crate::jobs::record_events(txn, workspace.id, vec![event]).await?;
            tracing::info!(migration = %migration_id, operation = %job.id, "migration requested");
            Ok(Created {
                location: format!(
                    "/api/v1/workspaces/{}/migrations/{migration_id}",
                    workspace.id
                ),
                body: serde_json::to_value(Migration::new(
                    model,
                    store::counts(txn, migration_id).await?,
                    store::machine_counts(txn, migration_id).await?,
                ))
                .map_err(anyhow::Error::from)?,
                status: StatusCode::ACCEPTED,
            })
        })
        .await
}

/// List the workspace's migrations, oldest first.
#[utoipa::path(
    tag = "migrations",
    params(("id" = Uuid, Path, description = "Workspace id"), PageParams),
    responses((status = 200, body = Paged<Migration>), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/migrations")]
async fn list_migrations(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    params: web::Query<PageParams>,
) -> Result<web::Json<Paged<Migration>>, ApiError> {
    let page = params.page()?;
    let workspace = partner_workspace(&state, &partner, *id).await?;
    let rows =
        scoped::list::<entity::migration::Entity>(&state.db, partner.tenant_id, workspace.id, page)
            .await?;
    let mut counts = std::collections::HashMap::new();
    // One page's worth; the extra row only tells whether another page follows.
    for row in rows.iter().take(page.limit as usize) {
        counts.insert(
            row.id,
            (
                store::counts(&state.db, row.id).await?,
                store::machine_counts(&state.db, row.id).await?,
            ),
        );
    }
    Ok(web::Json(Paged::from_rows(
        rows,
        page,
        |r| r.id,
        |r| {
            let (items, machines) = counts.get(&r.id).cloned().unwrap_or_default();
            Migration::new(r, items, machines)
        },
    )))
}

async fn find(
    state: &AppState,
    partner: &Partner,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<entity::migration::Model, ApiError> {
    let workspace = partner_workspace(state, partner, workspace_id).await?;
    scoped::find::<entity::migration::Entity>(&state.db, partner.tenant_id, workspace.id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

async fn answer(state: &AppState, id: Uuid) -> Result<web::Json<Migration>, ApiError> {
    let model = store::get(&state.db, id).await?.ok_or(ApiError::NotFound)?;
    let counts = store::counts(&state.db, id).await?;
    let machines = store::machine_counts(&state.db, id).await?;
    Ok(web::Json(Migration::new(model, counts, machines)))
}

/// Get a migration: its status, and its items counted by kind and state.
#[utoipa::path(
    tag = "migrations",
    params(("id" = Uuid, Path, description = "Workspace id"), ("migration_id" = Uuid, Path, description = "Migration id")),
    responses((status = 200, body = Migration), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/migrations/{migration_id}")]
async fn get_migration(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<Migration>, ApiError> {
    let migration = find(&state, &partner, path.0, path.1).await?;
    answer(&state, migration.id).await
}

/// List a migration's items in plan order (tenants parent first, admins, users),
/// optionally by state and kind, each with the reason it is where it is.
#[utoipa::path(
    tag = "migrations",
    params(("id" = Uuid, Path, description = "Workspace id"), ("migration_id" = Uuid, Path, description = "Migration id"), ItemQuery),
    responses((status = 200, body = Paged<MigrationItem>), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/migrations/{migration_id}/items")]
async fn list_items(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<ItemQuery>,
) -> Result<web::Json<Paged<MigrationItem>>, ApiError> {
    let query = query.into_inner();
    let (limit, after) = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .keyed::<i32>()?;
    let migration = find(&state, &partner, path.0, path.1).await?;
    let filter = ItemFilter {
        state: query.state,
        kind: query.kind,
    };
    let mut rows = store::items(&state.db, migration.id, &filter, limit, after).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| encode_key(&r.seq))
    } else {
        None
    };
    Ok(web::Json(Paged {
        items: rows.into_iter().map(MigrationItem::new).collect(),
        next_cursor,
    }))
}

/// Carries out a partner's command with an event; 409 when the migration's status
/// does not allow it.
async fn transition(
    state: &AppState,
    partner: &Partner,
    path: &(Uuid, Uuid),
    command: Command,
) -> Result<web::Json<Migration>, ApiError> {
    let (from, to) = command.moves();
    let refusal = command.refusal();
    let migration = find(state, partner, path.0, path.1).await?;
    let txn = state.db.begin().await?;
    store::lock(&txn, migration.id).await?;
    let migration = store::get(&txn, migration.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !store::set_status(&txn, migration.id, from, to, None).await? {
        return Err(ApiError::conflict(
            "illegal_transition",
            format!("The migration is {}: {refusal}", migration.status),
        ));
    }
    if to == MigrationStatus::Running {
        ensure_supervisor(&txn, partner, &migration, false).await?;
    }
    let mut message = format!("{} -> {to}", migration.status);
    if to == MigrationStatus::Cancelled {
        let cancelled = store::cancel_items(&txn, migration.id).await?;
        let machines = store::cancel_machines(&txn, &migration).await?;
        message.push_str(&format!(
            "; {cancelled} items and {machines} machines not started cancelled"
        ));
    }
    crate::jobs::record_events(
        &txn,
        migration.workspace_id,
        vec![partner_event(
            partner,
            migration.id,
            &format!("migration.{to}"),
            message,
        )],
    )
    .await?;
    txn.commit().await?;
    answer(state, migration.id).await
}

/// Pause a running migration: no new target call starts after about a second; items in flight finish.
#[utoipa::path(
    tag = "migrations",
    params(("id" = Uuid, Path, description = "Workspace id"), ("migration_id" = Uuid, Path, description = "Migration id")),
    responses((status = 200, body = Migration), (status = 404, response = docs::NotFound), (status = 409, response = docs::Conflict), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/migrations/{migration_id}/pause")]
async fn pause_migration(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<Migration>, ApiError> {
    transition(&state, &partner, &path, Command::Pause).await
}

/// Resume a paused migration where it stopped.
#[utoipa::path(
    tag = "migrations",
    params(("id" = Uuid, Path, description = "Workspace id"), ("migration_id" = Uuid, Path, description = "Migration id")),
    responses((status = 200, body = Migration), (status = 404, response = docs::NotFound), (status = 409, response = docs::Conflict), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/migrations/{migration_id}/resume")]
async fn resume_migration(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<Migration>, ApiError> {
    transition(&state, &partner, &path, Command::Resume).await
}

/// Cancel a migration: what is not done is cancelled, no new target call starts
/// after about a second. What was created stays created (and mapped); released
/// machines whose agents have not started are cancelled, migrating ones finish.
#[utoipa::path(
    tag = "migrations",
    params(("id" = Uuid, Path, description = "Workspace id"), ("migration_id" = Uuid, Path, description = "Migration id")),
    responses((status = 200, body = Migration), (status = 404, response = docs::NotFound), (status = 409, response = docs::Conflict), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/migrations/{migration_id}/cancel")]
async fn cancel_migration(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<Migration>, ApiError> {
    transition(&state, &partner, &path, Command::Cancel).await
}

/// Retry the failed items (and what waited for them). Items already done are
/// never redone. A migration that was over runs again.
#[utoipa::path(
    tag = "migrations",
    params(("id" = Uuid, Path, description = "Workspace id"), ("migration_id" = Uuid, Path, description = "Migration id")),
    responses((status = 200, body = Migration), (status = 404, response = docs::NotFound), (status = 409, response = docs::Conflict), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[post("/workspaces/{id}/migrations/{migration_id}/retry")]
async fn retry_migration(
    partner: Partner,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<Migration>, ApiError> {
    let migration = find(&state, &partner, path.0, path.1).await?;
    let txn = state.db.begin().await?;
    // Under the row lock a finishing supervisor either saw this retry or finished before it.
    store::lock(&txn, migration.id).await?;
    let migration = store::get(&txn, migration.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let restart = migration.status == MigrationStatus::CompletedWithFailures.as_str();
    if restart {
        store::set_status(
            &txn,
            migration.id,
            &[MigrationStatus::CompletedWithFailures],
            MigrationStatus::Running,
            None,
        )
        .await?;
    } else if !matches!(
        MigrationStatus::parse(&migration.status),
        Some(MigrationStatus::Running | MigrationStatus::Paused)
    ) {
        return Err(ApiError::conflict(
            "illegal_transition",
            format!(
                "The migration is {}: there is nothing to retry.",
                migration.status
            ),
        ));
    }
    ensure_supervisor(&txn, &partner, &migration, restart).await?;
    let failed = store::retry_failed(&txn, &migration).await?;
    let retried = crate::jobs::transfer::schedule(&txn, &migration, failed).await?;
    let event = partner_event(
        &partner,
        migration.id,
        "migration.retry",
        format!("{retried} failed items scheduled again"),
    );
    crate::jobs::record_events(&txn, migration.workspace_id, vec![event]).await?;
    txn.commit().await?;
    answer(&state, migration.id).await
}

/// The operations log: every item transition and target call outcome, with time,
/// actor and cause, oldest first. Passwords and tokens never appear in it.
#[utoipa::path(
    tag = "migrations",
    params(("id" = Uuid, Path, description = "Workspace id"), EventQuery),
    responses((status = 200, body = Paged<Event>), (status = 404, response = docs::NotFound), docs::PartnerErrors),
    security(("bearer_auth" = []))
)]
#[get("/workspaces/{id}/events")]
async fn list_events(
    partner: Partner,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<EventQuery>,
) -> Result<web::Json<Paged<Event>>, ApiError> {
    let mut query = query.into_inner();
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor.take(),
    }
    .page()?;
    let filter = query.filter()?;
    let workspace = partner_workspace(&state, &partner, *id).await?;
    let rows = log::list(&state.db, workspace.id, &filter, page).await?;
    Ok(web::Json(Paged::from_rows(
        rows,
        page,
        |e| e.id,
        Event::from,
    )))
}

/// A pre-check that found profile items the cloud cannot give (for the profile
/// this migration would use) stops the migration at once, unless told to skip
/// them; the migration's own planning asks the cloud again either way.
fn refuse_unavailable_items(
    precheck: &entity::precheck::Model,
    workspace: &entity::workspace::Model,
    options: &crate::planning::MigrationOptions,
) -> Result<(), ApiError> {
    if options.skip_unavailable_items {
        return Ok(());
    }
    let Some(planning) = precheck
        .planning
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
    else {
        return Ok(());
    };
    let provisioning = &planning["provisioning"];
    let profile = options
        .provisioning
        .clone()
        .unwrap_or_else(|| workspaces::provisioning(workspace));
    let same_profile =
        serde_json::to_value(&profile).ok().as_ref() == Some(&provisioning["profile"]);
    let unavailable: Vec<&str> = provisioning["unavailable"]
        .as_array()
        .map(|lines| lines.iter().filter_map(|l| l.as_str()).collect())
        .unwrap_or_default();
    if !same_profile || unavailable.is_empty() {
        return Ok(());
    }
    Err(ApiError::conflict_at(
        "provisioning_unavailable",
        format!(
            "The pre-check found offering items the cloud cannot give: {}. Turn them on for your tenant, change the provisioning profile, or pass options.skip_unavailable_items to migrate without them.",
            unavailable.join("; ")
        ),
        vec![FieldError {
            pointer: "/options/skip_unavailable_items".into(),
            detail: "The pre-check flagged offering items the cloud cannot give.".into(),
        }],
    ))
}
