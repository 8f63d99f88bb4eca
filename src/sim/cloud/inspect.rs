//! `GET /sim/cloud/state`: everything the simulator holds, the request counters,
//! and the duplicates a client left behind. Each tenant shows the offering items it
//! has on (name, edition, application type, quota) and its pricing mode; each user's
//! personal tenant its items on with their quotas (`personal_tenants`); registered
//! agents are under `agents`.
//!
//! The API refuses sibling name and login clashes, but not a repeated
//! `internal_tag` or `external_id` (the real one does not either): a client that
//! re-creates blindly after a "failed after commit" 503 leaves such twins, and this
//! is where a test finds them.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use uuid::Uuid;

use super::faults::Counters;
use super::state::{Store, Tenant, User, timestamp};

pub fn inspect(store: &Store, counters: &Counters) -> Value {
    let mut tenants: Vec<&Tenant> = store.tenants.values().collect();
    tenants.sort_by_key(|t| t.seq);
    let mut users: Vec<&User> = store.users.values().collect();
    users.sort_by_key(|u| u.seq);
    let now = chrono::Utc::now();
    let mut tokens: Vec<_> = store
        .registration_tokens
        .all()
        .filter(|t| t.expires_at > now)
        .collect();
    tokens.sort_by_key(|t| (t.created_at, t.id));
    let mut plans: Vec<_> = store.policies.values().collect();
    plans.sort_by_key(|p| p.seq);
    let mut agents: Vec<_> = store.agents.values().collect();
    agents.sort_by_key(|a| a.seq);

    json!({
        "tenants": tenants.iter().map(|t| json!({
            "id": t.id,
            "parent_id": t.parent_id,
            "name": t.name,
            "kind": t.kind,
            "internal_tag": t.internal_tag,
            "version": t.version,
            "offering_items": items_on(store, t.id),
            "pricing_mode": store.pricing_of(t).mode,
        })).collect::<Vec<_>>(),
        "personal_tenants": users.iter().map(|u| json!({
            "id": u.personal_tenant_id,
            "user_id": u.id,
            "login": u.login,
            "offering_items": items_on(store, u.personal_tenant_id),
        })).collect::<Vec<_>>(),
        "users": users.iter().map(|u| json!({
            "id": u.id,
            "tenant_id": u.tenant_id,
            "login": u.login,
            "external_id": u.external_id,
            "personal_tenant_id": u.personal_tenant_id,
            "roles": u.access_policies.iter().map(|p| p.role_id.clone()).collect::<Vec<_>>(),
            "access_policies": u.access_policies.iter().map(|p| json!({"role_id": p.role_id, "tenant_id": p.tenant_id})).collect::<Vec<_>>(),
            "activation_email_sent": u.activation_emails_sent,
            "password_set": u.password_hash.is_some(),
            "activated": u.activated,
        })).collect::<Vec<_>>(),
        "registration_tokens": tokens.iter().map(|t| t.to_json()).collect::<Vec<_>>(),
        "policies": plans.iter().map(|p| p.to_json()).collect::<Vec<_>>(),
        "agents": agents.iter().map(|a| a.to_json()).collect::<Vec<_>>(),
        "counters": counters.to_json(),
        "duplicates": {
            "tenants_by_name": groups(tenants.iter().map(|t| (json!({"parent_id": t.parent_id, "name": t.name.trim().to_lowercase()}), t.id))),
            // Our tags name a source group: the same tag anywhere is a duplicate, not only among siblings.
            "tenants_by_internal_tag": groups(tenants.iter().filter_map(|t| {
                t.internal_tag.as_ref().map(|tag| (json!({"internal_tag": tag}), t.id))
            })),
            "users_by_login": groups(users.iter().filter_map(|u| u.login.as_ref().map(|l| (json!({"login": l.to_lowercase()}), u.id)))),
            "users_by_external_id": groups(users.iter().filter_map(|u| u.external_id.as_ref().map(|e| (json!({"external_id": e}), u.id)))),
        },
        "at": timestamp(chrono::Utc::now()),
    })
}

/// What `id` has on: `[{"name", "edition", "application", "quota"}]` (`quota` null for features).
fn items_on(store: &Store, id: Uuid) -> Vec<Value> {
    store
        .items_on(id)
        .iter()
        .map(|h| {
            json!({
                "name": h.item.name,
                "edition": h.item.edition,
                "application": h.item.application().kind,
                "quota": h.item.kind.has_quota().then(|| h.quota.to_json()),
            })
        })
        .collect()
}

/// The keys shared by more than one id: `[{"key": .., "ids": [..]}]`, ids in creation order.
fn groups(entries: impl Iterator<Item = (Value, Uuid)>) -> Vec<Value> {
    let mut by_key: BTreeMap<String, (Value, Vec<Uuid>)> = BTreeMap::new();
    for (key, id) in entries {
        by_key
            .entry(key.to_string())
            .or_insert_with(|| (key, Vec::new()))
            .1
            .push(id);
    }
    by_key
        .into_values()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(key, ids)| json!({ "key": key, "ids": ids }))
        .collect()
}
