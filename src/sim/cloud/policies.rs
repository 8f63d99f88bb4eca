//! Protection plans: `POST /api/policy_management/v4/policies` and `GET .../{id}`.
//!
//! A plan is `{"subject":{"policy":[...]}}` holding exactly one root
//! `policy.protection.total` with a uuid `id`, exactly one `policy.backup.machine`
//! whose `parent_ids` names the root, with `settings_schema: "2.0"` and
//! `settings.scheduling` = `{enabled: bool, scheme?: string, backup_sets?: [...]}`;
//! other items must name the root in `parent_ids` too. When enabled, `backup_sets` is
//! a non-empty list of `{type: string, schedule}`; a schedule has a `type` and
//! `alarms.time` (a time of day is `{hour: 0-23, minute: 0-59}`, weekdays are
//! `mon`..`sun`):
//!
//! - `weekly` (confirmed): `weekdays` (non-empty), `repeat_at` (non-empty times).
//! - `daily` (unconfirmed, ours): `repeat_at` (non-empty); `weekdays` optional.
//! - `hourly` (unconfirmed, ours): `repeat_every: {type: "hours"|"minutes", count >= 1}`,
//!   `start_at` and `end_at` times (start not after end); `weekdays` optional.
//! - `monthly` (unconfirmed, ours): `repeat_at` (non-empty) and either `days`
//!   (non-empty, 1-31) or `weekdays` plus `week_numbers` (non-empty, of
//!   `first|second|third|fourth|last`); `months` optional (1-12).
//!
//! Anything else is 422, as the real API answers a bad shape.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::Cloud;
use super::auth::Caller;
use super::errors::{CloudError, CloudResult, JsonBody};
use super::state::ProtectionPlan;

pub const ROOT_TYPE: &str = "policy.protection.total";
pub const BACKUP_TYPE: &str = "policy.backup.machine";
pub const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
pub const WEEK_NUMBERS: &[&str] = &["first", "second", "third", "fourth", "last"];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/policy_management/v4/policies", web::post().to(create))
        .route(
            "/api/policy_management/v4/policies/{id}",
            web::get().to(get),
        );
}

type Check<T = ()> = Result<T, String>;

fn uuid_of(item: &Value, what: &str) -> Check<Uuid> {
    item["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| format!("{what}: id must be a uuid"))
}

/// Checks a plan's shape; answers the root's id.
pub fn check_plan(policy: &Value) -> Check<Uuid> {
    let items = policy.as_array().ok_or("subject.policy must be an array")?;
    if items
        .iter()
        .any(|i| !i.is_object() || !i["type"].is_string())
    {
        return Err("every policy item must be an object with a type".into());
    }
    let of_type = |t: &str| {
        items
            .iter()
            .filter(move |i| i["type"] == t)
            .collect::<Vec<_>>()
    };
    let [root] = of_type(ROOT_TYPE)[..] else {
        return Err(format!("exactly one {ROOT_TYPE} item is required"));
    };
    let [backup] = of_type(BACKUP_TYPE)[..] else {
        return Err(format!("exactly one {BACKUP_TYPE} item is required"));
    };
    let root_id = uuid_of(root, ROOT_TYPE)?;
    for item in items.iter().filter(|i| i["type"] != ROOT_TYPE) {
        let names_root = item["parent_ids"]
            .as_array()
            .is_some_and(|p| p.iter().any(|id| id.as_str() == Some(&root_id.to_string())));
        if !names_root {
            return Err(format!(
                "{}: parent_ids must name the root {root_id}",
                item["type"]
            ));
        }
        uuid_of(item, item["type"].as_str().unwrap_or_default())?;
    }
    if backup["settings_schema"] != "2.0" {
        return Err(format!("{BACKUP_TYPE}: settings_schema must be \"2.0\""));
    }
    check_scheduling(&backup["settings"]["scheduling"])?;
    Ok(root_id)
}

fn check_scheduling(scheduling: &Value) -> Check {
    if !scheduling.is_object() {
        return Err("settings.scheduling must be an object".into());
    }
    let enabled = scheduling["enabled"]
        .as_bool()
        .ok_or("scheduling.enabled must be a boolean")?;
    if !scheduling["scheme"].is_null() && !scheduling["scheme"].is_string() {
        return Err("scheduling.scheme must be a string".into());
    }
    let sets = &scheduling["backup_sets"];
    if !enabled && sets.is_null() {
        return Ok(());
    }
    let sets = sets
        .as_array()
        .ok_or("scheduling.backup_sets must be an array")?;
    if enabled && sets.is_empty() {
        return Err("an enabled schedule needs backup_sets".into());
    }
    for (i, set) in sets.iter().enumerate() {
        if !set["type"].is_string() {
            return Err(format!("backup_sets[{i}].type must be a string"));
        }
        check_schedule(&set["schedule"]).map_err(|e| format!("backup_sets[{i}].schedule: {e}"))?;
    }
    Ok(())
}

fn check_time_of_day(time: &Value, what: &str) -> Check {
    let hour = time["hour"].as_u64().filter(|h| *h <= 23);
    let minute = time["minute"].as_u64().filter(|m| *m <= 59);
    match (hour, minute) {
        (Some(_), Some(_)) => Ok(()),
        _ => Err(format!("{what} must be {{hour: 0-23, minute: 0-59}}")),
    }
}

fn minutes_of_day(time: &Value) -> u64 {
    time["hour"].as_u64().unwrap_or_default() * 60 + time["minute"].as_u64().unwrap_or_default()
}

fn check_list(value: &Value, what: &str, required: bool, valid: impl Fn(&Value) -> bool) -> Check {
    if value.is_null() && !required {
        return Ok(());
    }
    match value.as_array() {
        Some(list) if !list.is_empty() && list.iter().all(valid) => Ok(()),
        _ => Err(format!("{what} must be a non-empty list of valid values")),
    }
}

fn check_weekdays(time: &Value, required: bool) -> Check {
    check_list(&time["weekdays"], "weekdays", required, |d| {
        d.as_str().is_some_and(|d| WEEKDAYS.contains(&d))
    })
}

fn check_repeat_at(time: &Value) -> Check {
    check_list(&time["repeat_at"], "repeat_at", true, |t| {
        check_time_of_day(t, "repeat_at").is_ok()
    })
}

fn check_schedule(schedule: &Value) -> Check {
    let time = &schedule["alarms"]["time"];
    if !time.is_object() {
        return Err("alarms.time must be an object".into());
    }
    match schedule["type"].as_str() {
        Some("weekly") => {
            check_weekdays(time, true)?;
            check_repeat_at(time)
        }
        Some("daily") => {
            check_weekdays(time, false)?;
            check_repeat_at(time)
        }
        Some("hourly") => {
            check_weekdays(time, false)?;
            let every = &time["repeat_every"];
            let unit_ok = matches!(every["type"].as_str(), Some("hours" | "minutes"));
            if !unit_ok || every["count"].as_u64().is_none_or(|c| c == 0) {
                return Err("repeat_every must be {type: hours|minutes, count >= 1}".into());
            }
            check_time_of_day(&time["start_at"], "start_at")?;
            check_time_of_day(&time["end_at"], "end_at")?;
            if minutes_of_day(&time["start_at"]) > minutes_of_day(&time["end_at"]) {
                return Err("start_at must not be after end_at".into());
            }
            Ok(())
        }
        Some("monthly") => {
            check_repeat_at(time)?;
            check_list(&time["months"], "months", false, |m| {
                m.as_u64().is_some_and(|m| (1..=12).contains(&m))
            })?;
            if time["days"].is_null() {
                check_weekdays(time, true)?;
                check_list(&time["week_numbers"], "week_numbers", true, |w| {
                    w.as_str().is_some_and(|w| WEEK_NUMBERS.contains(&w))
                })
            } else {
                check_list(&time["days"], "days", true, |d| {
                    d.as_u64().is_some_and(|d| (1..=31).contains(&d))
                })
            }
        }
        _ => Err("type must be weekly, daily, hourly or monthly".into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPlan {
    subject: Subject,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Subject {
    policy: Value,
}

async fn create(cloud: web::Data<Cloud>, caller: Caller, new: JsonBody<NewPlan>) -> CloudResult {
    let new = new.parse()?;
    let id = check_plan(&new.subject.policy).map_err(CloudError::invalid)?;
    let mut store = cloud.store();
    // A plan made for a sub-tenant names it on the root item.
    let tenant_id = match new
        .subject
        .policy
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["type"] == ROOT_TYPE)
        .map(|r| &r["tenant_id"])
    {
        Some(Value::String(t)) => {
            Uuid::parse_str(t).map_err(|_| CloudError::invalid("tenant_id must be a uuid"))?
        }
        Some(Value::Null) | None => caller.tenant_id,
        Some(_) => return Err(CloudError::invalid("tenant_id must be a uuid")),
    };
    store.visible_tenant(caller.tenant_id, tenant_id)?;
    if store.policies.contains_key(&id) {
        return Err(CloudError::conflict(format!(
            "A policy with id {id} exists"
        )));
    }
    let plan = ProtectionPlan {
        id,
        seq: store.next_seq(),
        tenant_id,
        created_at: Utc::now(),
        policy: new.subject.policy,
    };
    let answer = plan.to_json();
    store.policies.insert(id, plan);
    Ok(HttpResponse::Created().json(answer))
}

async fn get(cloud: web::Data<Cloud>, caller: Caller, path: web::Path<String>) -> CloudResult {
    let not_found = || CloudError::not_found("Policy");
    let id = Uuid::parse_str(&path).map_err(|_| not_found())?;
    let store = cloud.store();
    let plan = store.policies.get(&id).ok_or_else(not_found)?;
    if !store.in_subtree(caller.tenant_id, plan.tenant_id) {
        return Err(CloudError::access_denied());
    }
    Ok(HttpResponse::Ok().json(plan.to_json()))
}
