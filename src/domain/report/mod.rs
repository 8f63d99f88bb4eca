//! The pre-check report (the seed's Pre-Check Migration report), built from a
//! plan: a planning summary and six lists of entries, each entry keyed so that
//! two reports can be compared.

mod compare;
mod initial_backup;
mod provisioning;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::initial_backup::InitialBackupOptions;
use super::machines::{ActionCause, ContactReason};
use super::plan::{Plan, PlannedMachine, PlannedTenant, Snapshot, TenantKind};
use super::support::{ClientStatus, Readiness};
use super::tenants::GroupPlan;
pub use compare::{SectionChanges, compare_encoded, compare_entries};

/// The sections that list entries (the planning section is the summary).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Users to contact before the migration, with why and their contacts.
    Contacts,
    /// Machines for which additional actions should be taken, by cause.
    Actions,
    /// The source tree beside the target tree.
    Hierarchy,
    /// Groups mapping: each group's admin, source login -> target login.
    Groups,
    /// Users mapping: each backup user, source login -> target login.
    Users,
    /// Each customer's initial backup: data volume, duration at the bandwidth,
    /// whether Physical Data Shipping is advised.
    InitialBackup,
}

impl Section {
    pub const ALL: [Section; 6] = [
        Section::Contacts,
        Section::Actions,
        Section::Hierarchy,
        Section::Groups,
        Section::Users,
        Section::InitialBackup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Section::Contacts => "contacts",
            Section::Actions => "actions",
            Section::Hierarchy => "hierarchy",
            Section::Groups => "groups",
            Section::Users => "users",
            Section::InitialBackup => "initial_backup",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Section::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One entry of a section: its key (stable across reports) and its JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The planning section.
    pub planning: Value,
    pub sections: BTreeMap<Section, Vec<Entry>>,
}

/// What the report says about the target's answers on logins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct LoginAnswers {
    /// Logins of this plan the target was asked about (now or earlier, still fresh).
    pub known: usize,
    /// Planned logins whose availability the target was not asked about.
    pub unverified: usize,
    pub oldest_answer_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A report's entry as JSON text, as it is stored and compared.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedEntry {
    pub key: String,
    /// The entry's value, as `serde_json` writes it.
    pub value: String,
}

/// A report whose entries are JSON text: built entry by entry, each entry's
/// JSON tree dropped once written, so that a large install base's report holds
/// its text (a tenth of the trees' size) and nothing else.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedReport {
    /// The planning section.
    pub planning: Value,
    pub sections: BTreeMap<Section, Vec<EncodedEntry>>,
}

/// What the report shows of provisioning: the profile, what each tenant gets,
/// and whether the cloud was asked what the workspace's tenant offers (else
/// every item is taken as offered).
pub struct ProvisioningView<'a> {
    pub profile: &'a super::provisioning::Profile,
    pub services: &'a [super::provisioning::TenantServices],
    pub verified: bool,
}

/// The report with its entries as JSON trees, without the provisioning view.
pub fn build(
    snapshot: &Snapshot,
    plan: &Plan,
    logins: &LoginAnswers,
    initial_backup: &InitialBackupOptions,
) -> Report {
    let (planning, sections) = assemble(
        snapshot,
        plan,
        logins,
        initial_backup,
        None,
        &|_| true,
        &|_| Vec::<Entry>::new(),
    );
    Report { planning, sections }
}

/// The report with the provisioning view, its entries as JSON text, every section
/// kept (what [`stream`] hands over, whole: the tests compare them). `snapshot`
/// needs its groups and users only.
#[cfg(test)]
pub fn encode(
    snapshot: &Snapshot,
    plan: &Plan,
    logins: &LoginAnswers,
    initial_backup: &InitialBackupOptions,
    provisioning: &ProvisioningView<'_>,
) -> EncodedReport {
    encode_sections(
        snapshot,
        plan,
        logins,
        initial_backup,
        provisioning,
        &|_| true,
    )
}

/// The report with the provisioning view, its entries as JSON text, keeping the entries of the sections `keep` names only (the
/// planning section still counts them all): a migration's re-planning compares
/// three sections, and at `large` the others are hundreds of megabytes it never reads.
pub fn encode_sections(
    snapshot: &Snapshot,
    plan: &Plan,
    logins: &LoginAnswers,
    initial_backup: &InitialBackupOptions,
    provisioning: &ProvisioningView<'_>,
    keep: &(dyn Fn(Section) -> bool + Sync),
) -> EncodedReport {
    let (planning, sections) = assemble(
        snapshot,
        plan,
        logins,
        initial_backup,
        Some(provisioning),
        keep,
        &|_| Vec::<EncodedEntry>::new(),
    );
    EncodedReport { planning, sections }
}

/// As [`encode_sections`] with every section, but each section's entries are handed to `send` as they are
/// built, `chunk` at a time with the place of the first in its section (the last
/// of a section may be shorter), rather than kept: the report can be written while
/// it is built, and is never held whole. Answers the planning section. `send` is
/// called from two threads at once (the users section is built beside the others).
pub fn stream(
    snapshot: &Snapshot,
    plan: &Plan,
    logins: &LoginAnswers,
    initial_backup: &InitialBackupOptions,
    provisioning: &ProvisioningView<'_>,
    chunk: usize,
    send: &(dyn Fn(Section, usize, Vec<EncodedEntry>) + Sync),
) -> Value {
    let chunk = chunk.max(1);
    let (planning, _) = assemble(
        snapshot,
        plan,
        logins,
        initial_backup,
        Some(provisioning),
        &|_| true,
        &|section| Streamed {
            section,
            chunk,
            buffer: Vec::with_capacity(chunk),
            count: 0,
            send,
        },
    );
    planning
}

/// Where a section's entries go, one by one.
trait Collect: Send {
    /// An entry, as JSON text.
    fn push(&mut self, entry: EncodedEntry);
    fn count(&self) -> usize;
    /// Every entry is in.
    fn finish(&mut self) {}
}

/// Entries encoded and handed on a chunk at a time ([`stream`]).
struct Streamed<'a> {
    section: Section,
    chunk: usize,
    buffer: Vec<EncodedEntry>,
    count: usize,
    send: &'a (dyn Fn(Section, usize, Vec<EncodedEntry>) + Sync),
}

impl Streamed<'_> {
    fn flush(&mut self) {
        if !self.buffer.is_empty() {
            let entries = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.chunk));
            (self.send)(self.section, self.count - entries.len(), entries);
        }
    }
}

impl Collect for Streamed<'_> {
    fn push(&mut self, entry: EncodedEntry) {
        self.buffer.push(entry);
        self.count += 1;
        if self.buffer.len() >= self.chunk {
            self.flush();
        }
    }
    fn count(&self) -> usize {
        self.count
    }
    fn finish(&mut self) {
        self.flush();
    }
}

impl Collect for Vec<Entry> {
    fn push(&mut self, entry: EncodedEntry) {
        let value = serde_json::from_str(&entry.value).expect("an encoded entry is JSON");
        Vec::push(
            self,
            Entry {
                key: entry.key,
                value,
            },
        );
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl Collect for Vec<EncodedEntry> {
    fn push(&mut self, entry: EncodedEntry) {
        Vec::push(self, entry);
    }
    fn count(&self) -> usize {
        self.len()
    }
}

/// Builds every section entry by entry (the provisioning view added to each
/// hierarchy and users entry), tallies what the planning section reads of them,
/// and builds the planning section.
fn assemble<C: Collect>(
    snapshot: &Snapshot,
    plan: &Plan,
    logins: &LoginAnswers,
    initial_backup: &InitialBackupOptions,
    provisioning: Option<&ProvisioningView<'_>>,
    keep: &(dyn Fn(Section) -> bool + Sync),
    collector: &(dyn Fn(Section) -> C + Sync),
) -> (Value, BTreeMap<Section, C>) {
    let names: HashMap<&str, &str> = snapshot
        .groups
        .iter()
        .map(|g| (g.id.as_str(), g.name.as_str()))
        .collect();
    let group_name = |id: &str| -> &str { names.get(id).copied().unwrap_or_default() };
    let users: HashMap<&str, &super::plan::input::User> =
        snapshot.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let tenants: HashMap<&str, &PlannedTenant> =
        plan.tenants.iter().map(|t| (t.key.as_str(), t)).collect();
    let view = provisioning.map(|p| provisioning::Provisioning::new(p, snapshot, plan));
    let view = view.as_ref();
    let users_section = || {
        let mut out = collector(Section::Users);
        let mut tally = Tally::default();
        for u in &plan.users {
            let quota = view.map(|view| view.user(&u.user_id));
            tally.users_over_quota += usize::from(quota.is_some_and(|q| q.data_exceeds_quota));
            let name = group_name(&u.group_id);
            let value = json_text(&UserEntry {
                changes: &u.changes,
                contact: (&u.contact).into(),
                data_exceeds_quota: quota.map(|q| q.data_exceeds_quota),
                data_size_bytes: quota.map(|q| q.data_size_bytes),
                group_id: &u.group_id,
                group_name: name,
                segments: &u.login.segments,
                storage_quota_bytes: quota.map(|q| q.storage_quota_bytes),
                source_login: &u.login.source,
                target_login: &u.login.target,
                tenant_key: &u.tenant_key,
                unverified: u.unverified,
                user_id: &u.user_id,
            });
            out.push(EncodedEntry {
                key: u.user_id.clone(),
                value,
            });
        }
        out.finish();
        (out, tally)
    };
    // The users section is the largest: it is built beside the others, on a second core.
    let ((users_entries, users_tally), (mut sections, mut tally, lengths)) =
        std::thread::scope(|scope| {
            let users_entries = scope.spawn(users_section);
            let mut tally = Tally::default();
            let mut sections: BTreeMap<Section, C> = BTreeMap::new();
            let mut lengths: BTreeMap<Section, usize> = BTreeMap::new();
            // Written as text (no tree), and not at all when not kept (only counted).
            let actions_kept = keep(Section::Actions).then(|| {
                sections
                    .entry(Section::Actions)
                    .or_insert_with(|| collector(Section::Actions))
            });
            let mut length = 0;
            match actions_kept {
                Some(out) => {
                    for e in actions(plan, &users, &group_name) {
                        length += 1;
                        out.push(e);
                    }
                }
                None => length = actions_count(plan),
            }
            lengths.insert(Section::Actions, length);
            for section in [
                Section::Contacts,
                Section::Hierarchy,
                Section::Groups,
                Section::InitialBackup,
            ] {
                lengths.insert(section, 0);
                if keep(section) {
                    sections.insert(section, collector(section));
                }
            }
            // Each entry is counted, and written as text only when its section is kept.
            let mut collect = |section: Section, key: &str, text: &dyn Fn() -> String| {
                *lengths.entry(section).or_default() += 1;
                if let Some(out) = sections.get_mut(&section) {
                    out.push(EncodedEntry {
                        key: key.to_string(),
                        value: text(),
                    });
                }
            };
            for (user_id, e) in contacts(plan, &users, &group_name) {
                for reason in &e.reasons {
                    *tally.contact_reasons.entry(*reason).or_default() += 1;
                }
                collect(Section::Contacts, user_id, &|| json_text(&e));
            }
            for g in &plan.groups {
                let e = hierarchy_entry(g, &tenants, &group_name, view);
                tally.tenants_over_quota += [&e.tenant, &e.users_tenant]
                    .into_iter()
                    .flatten()
                    .filter(|t| t.data_exceeds_quota == Some(true))
                    .count();
                collect(Section::Hierarchy, &g.group_id, &|| json_text(&e));
            }
            for (group_id, e) in groups(plan, &group_name) {
                tally.groups_without_admin += usize::from(matches!(e, GroupEntry::NoAdmin { .. }));
                collect(Section::Groups, group_id, &|| json_text(&e));
            }
            for e in initial_backup::entries(plan, initial_backup, &group_name) {
                tally.initial_backup.add(&e);
                collect(Section::InitialBackup, e.key(), &|| json_text(&e));
            }
            sections.values_mut().for_each(Collect::finish);
            (
                users_entries.join().expect("building the users section"),
                (sections, tally, lengths),
            )
        });
    let mut lengths = lengths;
    lengths.insert(Section::Users, users_entries.count());
    if keep(Section::Users) {
        sections.insert(Section::Users, users_entries);
    }
    tally.users_over_quota += users_tally.users_over_quota;
    let mut planning = planning(plan, &tally, &lengths, logins, initial_backup);
    if let Some(view) = view {
        planning["provisioning"] = view.summary(tally.tenants_over_quota, tally.users_over_quota);
    }
    (planning, sections)
}

/// An entry of the users section, written as JSON text without a JSON tree
/// between (the largest section: 100,000 entries at `large`, where building
/// and then writing a tree per entry was most of the report's time). Its text is
/// the tree's: the same fields, in the tree's (alphabetical) order.
#[derive(Serialize)]
struct UserEntry<'a> {
    changes: &'a [super::logins::LoginChange],
    contact: SortedContact<'a>,
    /// This and the other two quota fields: with the provisioning view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_exceeds_quota: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_size_bytes: Option<u64>,
    group_id: &'a str,
    group_name: &'a str,
    segments: &'a [super::segments::Segment],
    source_login: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_quota_bytes: Option<Option<u64>>,
    target_login: &'a str,
    tenant_key: &'a str,
    unverified: bool,
    user_id: &'a str,
}

/// A contact's fields in alphabetical order (as in a JSON tree).
#[derive(Serialize)]
struct SortedContact<'a> {
    email: &'a Option<String>,
    first_name: &'a Option<String>,
    last_name: &'a Option<String>,
    login: &'a str,
    phone: &'a Option<String>,
}

impl<'a> From<&'a super::plan::input::Contact> for SortedContact<'a> {
    fn from(c: &'a super::plan::input::Contact) -> Self {
        Self {
            email: &c.email,
            first_name: &c.first_name,
            last_name: &c.last_name,
            login: &c.login,
            phone: &c.phone,
        }
    }
}

/// What the planning section reads of the other sections' entries.
#[derive(Default)]
struct Tally {
    /// Contacts' reasons, each counted once per user.
    contact_reasons: BTreeMap<ContactReason, usize>,
    groups_without_admin: usize,
    initial_backup: initial_backup::Totals,
    tenants_over_quota: usize,
    users_over_quota: usize,
}

/// An entry's JSON text. Entries are written straight to text, without a JSON
/// tree between (at `large` the report is about 100 MB, and a tree per entry
/// was most of its time); each entry's fields are in alphabetical order, as a
/// tree writes them, so that the text is the one a tree of the same fields gives.
fn json_text(entry: &impl Serialize) -> String {
    serde_json::to_string(entry).expect("a report entry is JSON")
}

/// An entry of the contacts section: a user to contact, why, and the machines why.
#[derive(Serialize)]
struct ContactEntry<'a> {
    email: &'a Option<String>,
    first_name: &'a Option<String>,
    group_id: &'a str,
    group_name: &'a str,
    last_name: &'a Option<String>,
    login: &'a str,
    machines: Vec<ContactMachine<'a>>,
    reasons: Vec<ContactReason>,
    user_id: &'a str,
}

#[derive(Serialize)]
struct ContactMachine<'a> {
    client_version: &'a Option<String>,
    hostname: &'a str,
    last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    machine_id: &'a str,
    reasons: &'a [ContactReason],
}

/// The contacts section, by user id.
fn contacts<'a>(
    plan: &'a Plan,
    users: &'a HashMap<&str, &super::plan::input::User>,
    group_name: &'a dyn Fn(&str) -> &'a str,
) -> impl Iterator<Item = (&'a str, ContactEntry<'a>)> + 'a {
    let mut by_user: BTreeMap<&str, Vec<&PlannedMachine>> = BTreeMap::new();
    for m in plan.machines.iter().filter(|m| !m.contact.is_empty()) {
        by_user.entry(m.user_id.as_str()).or_default().push(m);
    }
    by_user.into_iter().filter_map(move |(user_id, machines)| {
        let user = users.get(user_id)?;
        let mut reasons: Vec<ContactReason> = machines
            .iter()
            .flat_map(|m| m.contact.iter().copied())
            .collect();
        reasons.sort();
        reasons.dedup();
        let machines = machines
            .iter()
            .map(|m| ContactMachine {
                client_version: &m.client_version,
                hostname: &m.hostname,
                last_seen_at: m.last_seen_at,
                machine_id: &m.machine_id,
                reasons: &m.contact,
            })
            .collect();
        Some((
            user_id,
            ContactEntry {
                email: &user.email,
                first_name: &user.first_name,
                group_id: &user.group_id,
                group_name: group_name(&user.group_id),
                last_name: &user.last_name,
                login: &user.login,
                machines,
                reasons,
                user_id,
            },
        ))
    })
}

fn actions<'a>(
    plan: &'a Plan,
    users: &'a HashMap<&str, &super::plan::input::User>,
    group_name: &'a dyn Fn(&str) -> &'a str,
) -> impl Iterator<Item = EncodedEntry> + 'a {
    ActionCause::ALL.into_iter().flat_map(move |cause| {
        plan.machines
            .iter()
            .filter(move |m| m.actions.contains(&cause))
            .map(move |m| {
                let user = users.get(m.user_id.as_str());
                let plans: Vec<ActionPlan> = m
                    .plans
                    .iter()
                    .filter(|p| concerns(cause, p))
                    .map(|p| ActionPlan {
                        name: &p.name,
                        plan_id: &p.plan_id,
                        kind: &p.kind,
                    })
                    .collect();
                let value = json_text(&ActionEntry {
                    cause,
                    email: user.and_then(|u| u.email.as_deref()),
                    group_id: &m.group_id,
                    group_name: group_name(&m.group_id),
                    hostname: &m.hostname,
                    login: user.map(|u| u.login.as_str()),
                    machine_id: &m.machine_id,
                    os_name: &m.os_name,
                    plans,
                    readiness: m.readiness,
                    user_id: &m.user_id,
                });
                EncodedEntry {
                    key: format!("{}/{}", serde_plain(&cause), m.machine_id),
                    value,
                }
            })
    })
}

/// Whether a machine's backup plan is one `cause` asks action for (every plan of
/// a machine whose system is unsupported).
pub(super) fn concerns(cause: ActionCause, plan: &super::plan::PlannedBackupPlan) -> bool {
    match cause {
        ActionCause::UnsupportedOs => true,
        ActionCause::SqlServerRegistration => plan.kind == "sql_server",
        ActionCause::ExchangeRegistration => plan.kind == "exchange",
        ActionCause::UnsupportedPlanType => plan.support == super::support::PlanSupport::Manual,
    }
}

/// The actions section's length: a machine once per cause it needs action for.
fn actions_count(plan: &Plan) -> usize {
    ActionCause::ALL
        .iter()
        .map(|cause| {
            plan.machines
                .iter()
                .filter(|m| m.actions.contains(cause))
                .count()
        })
        .sum()
}

/// An entry of the actions section, written as JSON text (as [`UserEntry`]).
#[derive(Serialize)]
struct ActionEntry<'a> {
    cause: ActionCause,
    email: Option<&'a str>,
    group_id: &'a str,
    group_name: &'a str,
    hostname: &'a str,
    login: Option<&'a str>,
    machine_id: &'a str,
    os_name: &'a str,
    plans: Vec<ActionPlan<'a>>,
    readiness: Readiness,
    user_id: &'a str,
}

#[derive(Serialize)]
struct ActionPlan<'a> {
    name: &'a str,
    plan_id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

fn serde_plain<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// An entry of the hierarchy section: a source group beside what it becomes.
#[derive(Serialize)]
struct HierarchyEntry<'a> {
    depth: usize,
    group_id: &'a str,
    parent_id: &'a Option<String>,
    plan: GroupPlan,
    selected: bool,
    source_name: &'a str,
    tenant: Option<TenantEntry<'a>>,
    /// A customer's users live in the group's own tenant: no second one then.
    users_tenant: Option<TenantEntry<'a>>,
}

/// A tenant of the hierarchy section, with the provisioning view's fields when
/// the view has services for it.
#[derive(Serialize)]
struct TenantEntry<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data_exceeds_quota: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_size_bytes: Option<u64>,
    key: &'a str,
    kind: TenantKind,
    name: &'a str,
    parent_key: &'a Option<String>,
    segments: &'a [super::segments::Segment],
    #[serde(skip_serializing_if = "Option::is_none")]
    services: Option<Vec<provisioning::Service>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unavailable: Option<Vec<provisioning::Unavailable<'a>>>,
}

fn hierarchy_entry<'a>(
    g: &'a super::plan::PlannedGroup,
    tenants: &HashMap<&str, &'a PlannedTenant>,
    group_name: &dyn Fn(&str) -> &'a str,
    view: Option<&provisioning::Provisioning<'a>>,
) -> HierarchyEntry<'a> {
    let tenant = |key: &Option<String>| {
        let t = tenants.get(key.as_deref()?)?;
        let quota = view.and_then(|view| view.tenant(&t.key));
        let (data_exceeds_quota, data_size_bytes, services, unavailable) = match quota {
            Some(q) => (
                Some(q.data_exceeds_quota),
                Some(q.data_size_bytes),
                Some(q.services),
                Some(q.unavailable),
            ),
            None => (None, None, None, None),
        };
        Some(TenantEntry {
            data_exceeds_quota,
            data_size_bytes,
            key: &t.key,
            kind: t.kind,
            name: &t.name.target,
            parent_key: &t.parent_key,
            segments: &t.name.segments,
            services,
            unavailable,
        })
    };
    HierarchyEntry {
        depth: g.depth,
        group_id: &g.group_id,
        parent_id: &g.parent_id,
        plan: g.plan,
        selected: g.selected,
        source_name: group_name(&g.group_id),
        tenant: tenant(&g.tenant_key),
        users_tenant: if g.users_tenant_key == g.tenant_key {
            None
        } else {
            tenant(&g.users_tenant_key)
        },
    }
}

/// An entry of the groups section: a selected group that becomes a tenant, and
/// its admin's login in the cloud (or none).
#[derive(Serialize)]
#[serde(untagged)]
enum GroupEntry<'a> {
    Admin {
        activation_required: bool,
        changes: &'a [super::logins::LoginChange],
        contact: SortedContact<'a>,
        group_id: &'a str,
        group_name: &'a str,
        role: super::plan::AdminRole,
        segments: &'a [super::segments::Segment],
        source_login: &'a str,
        target_login: &'a str,
        tenant_key: &'a str,
        unverified: bool,
    },
    NoAdmin {
        group_id: &'a str,
        group_name: &'a str,
        note: &'static str,
        source_login: Option<&'a str>,
        target_login: Option<&'a str>,
        tenant_key: &'a Option<String>,
    },
}

/// The groups section, by group id.
fn groups<'a>(
    plan: &'a Plan,
    group_name: &'a dyn Fn(&str) -> &'a str,
) -> impl Iterator<Item = (&'a str, GroupEntry<'a>)> + 'a {
    let admins: HashMap<&str, &super::plan::PlannedAdmin> = plan
        .admins
        .iter()
        .map(|a| (a.group_id.as_str(), a))
        .collect();
    plan.groups
        .iter()
        .filter(|g| {
            g.selected
                && matches!(
                    g.plan,
                    GroupPlan::Partner | GroupPlan::Customer | GroupPlan::PartnerWithCustomer
                )
        })
        .map(move |g| {
            let name = group_name(&g.group_id);
            let entry = match admins.get(g.group_id.as_str()) {
                Some(a) => GroupEntry::Admin {
                    activation_required: true,
                    changes: &a.changes,
                    contact: (&a.contact).into(),
                    group_id: &g.group_id,
                    group_name: name,
                    role: a.role,
                    segments: &a.login.segments,
                    source_login: &a.contact.login,
                    target_login: &a.login.target,
                    tenant_key: &a.tenant_key,
                    unverified: a.unverified,
                },
                None => GroupEntry::NoAdmin {
                    group_id: &g.group_id,
                    group_name: name,
                    note: "no_admin",
                    source_login: None,
                    target_login: None,
                    tenant_key: &g.tenant_key,
                },
            };
            (g.group_id.as_str(), entry)
        })
}

fn planning(
    plan: &Plan,
    tally: &Tally,
    lengths: &BTreeMap<Section, usize>,
    logins: &LoginAnswers,
    initial_backup: &InitialBackupOptions,
) -> Value {
    let count_tenants = |kind| plan.tenants.iter().filter(|t| t.kind == kind).count();
    let selected = plan
        .groups
        .iter()
        .filter(|g| g.selected && g.plan != GroupPlan::Root);
    let mut readiness: BTreeMap<Readiness, usize> =
        Readiness::ALL.into_iter().map(|r| (r, 0)).collect();
    let mut clients: BTreeMap<String, usize> = BTreeMap::new();
    let mut versions: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut data_size: u64 = 0;
    let mut backup_plans = 0;
    for m in &plan.machines {
        *readiness.entry(m.readiness).or_default() += 1;
        *clients.entry(serde_plain(&m.client)).or_default() += 1;
        *versions
            .entry((
                serde_plain(&m.platform),
                m.client_version.clone().unwrap_or_else(|| "unknown".into()),
            ))
            .or_default() += 1;
        data_size += m.data_size_bytes;
        backup_plans += m.plans.len();
    }
    for status in [
        ClientStatus::Current,
        ClientStatus::WillAutoUpdate,
        ClientStatus::AutoUpdateOff,
        ClientStatus::NeverReported,
    ] {
        clients.entry(serde_plain(&status)).or_default();
    }
    let mut to_contact: BTreeMap<String, usize> = ["auto_update_off", "never_reported", "offline"]
        .into_iter()
        .map(|r| (r.to_string(), 0))
        .collect();
    for (reason, users) in &tally.contact_reasons {
        *to_contact.entry(serde_plain(reason)).or_default() += users;
    }
    let actions: Vec<Value> = ActionCause::ALL
        .into_iter()
        .map(|cause| {
            let machines = plan
                .machines
                .iter()
                .filter(|m| m.actions.contains(&cause))
                .count();
            json!({"cause": cause, "machines": machines, "instructions": cause.instructions()})
        })
        .collect();
    let groups: Vec<_> = selected.collect();
    json!({
        "counts": {
            "companies": count_tenants(TenantKind::Customer),
            "partners": count_tenants(TenantKind::Partner),
            "groups": groups.len(),
            "empty_groups": groups.iter().filter(|g| g.plan == GroupPlan::Empty).count(),
            "groups_without_admin": tally.groups_without_admin,
            "admins": plan.admins.len(),
            "users": plan.users.len(),
            "machines": plan.machines.len(),
            "backup_plans": backup_plans,
            "data_size_bytes": data_size,
        },
        "machines_by_readiness": readiness,
        "clients": clients,
        "clients_that_will_auto_update": clients.get("will_auto_update").copied().unwrap_or_default(),
        "client_versions": versions.into_iter().map(|((platform, version), machines)| json!({"platform": platform, "version": version, "machines": machines})).collect::<Vec<_>>(),
        "users_to_contact": {"total": lengths[&Section::Contacts], "by_reason": to_contact},
        "actions": actions,
        "logins": logins,
        "initial_backup": tally.initial_backup.summary(initial_backup),
        "sections": Section::ALL.iter().map(|s| (s.as_str().to_string(), json!(lengths[s]))).collect::<serde_json::Map<_, _>>(),
    })
}
