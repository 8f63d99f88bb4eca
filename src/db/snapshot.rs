//! Reading the snapshot for browsing: children of a group, search, single
//! objects, ancestors, and subtree rollups computed in the database (recursive
//! CTE over the group tree, then the users and machines indexes), so nothing
//! here parses more than the page it returns.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult, Value};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::query;
use crate::domain::machines::MachineState;
use crate::domain::support::Readiness;

/// A kind of snapshot object.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Group,
    User,
    Machine,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Group, Kind::User, Kind::Machine];

    pub fn table(self) -> &'static str {
        match self {
            Kind::Group => "source_groups",
            Kind::User => "source_users",
            Kind::Machine => "source_machines",
        }
    }

    /// The columns of a [`Row`]; machines have no quota.
    fn row_columns(self) -> &'static str {
        match self {
            Kind::Group | Kind::User => {
                "source_id, parent_source_id, group_source_id, COALESCE(search, '') AS search, data, size_bytes, readiness, storage_quota_bytes, migration_state, removed_at, synced_at"
            }
            Kind::Machine => {
                "source_id, parent_source_id, group_source_id, COALESCE(search, '') AS search, data, size_bytes, readiness, CAST(NULL AS BIGINT) AS storage_quota_bytes, migration_state, removed_at, synced_at"
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Group => "group",
            Kind::User => "user",
            Kind::Machine => "machine",
        }
    }

    /// Listing order: groups, then users, then machines.
    fn rank(self) -> i32 {
        self as i32
    }
}

/// A position in a listing ordered by kind, then search text (lowercase name
/// first), then id: the last entry of the previous page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key(pub Kind, pub String, pub String);

/// One snapshot row, `data` as the source gave it.
#[derive(Clone, Debug)]
pub struct Row {
    pub kind: Kind,
    pub id: String,
    pub parent_id: Option<String>,
    pub group_id: Option<String>,
    pub search: String,
    pub data: String,
    pub size_bytes: i64,
    pub readiness: Option<String>,
    /// Groups and users: their storage quota in bytes, as the last sync stored it.
    pub storage_quota_bytes: Option<u64>,
    pub migration_state: String,
    pub removed_at: Option<DateTime<Utc>>,
    /// The sync that last changed the object (or added it); for an object gone
    /// from the source, the last sync that saw it. See [`Row::seen_at`].
    pub synced_at: DateTime<Utc>,
}

/// The columns of [`Kind::row_columns`] as stored.
#[derive(FromQueryResult)]
struct RowColumns {
    source_id: String,
    parent_source_id: Option<String>,
    group_source_id: Option<String>,
    search: String,
    data: String,
    size_bytes: i64,
    readiness: Option<String>,
    storage_quota_bytes: Option<i64>,
    migration_state: String,
    removed_at: Option<DateTime<Utc>>,
    synced_at: DateTime<Utc>,
}

impl Row {
    /// The last sync that found the object in the source: `snapshot_synced_at`, the
    /// workspace's last sync, for every object still there (a sync forgets or flags
    /// every object it does not find), and the stored time for one gone since. (A
    /// sync that committed after the workspace was read and changed the row: its time.)
    pub fn seen_at(&self, snapshot_synced_at: Option<DateTime<Utc>>) -> DateTime<Utc> {
        match (self.removed_at, snapshot_synced_at) {
            (None, Some(last_sync)) => last_sync.max(self.synced_at),
            _ => self.synced_at,
        }
    }

    fn read(kind: Kind, r: &QueryResult) -> Result<Self, DbErr> {
        let c = RowColumns::from_query_result(r, "")?;
        Ok(Self {
            kind,
            id: c.source_id,
            parent_id: c.parent_source_id,
            group_id: c.group_source_id,
            search: c.search,
            data: c.data,
            size_bytes: c.size_bytes,
            readiness: c.readiness,
            storage_quota_bytes: c.storage_quota_bytes.map(|q| q.max(0) as u64),
            migration_state: c.migration_state,
            removed_at: c.removed_at,
            synced_at: c.synced_at,
        })
    }
}

/// What a subtree holds. Objects gone from the source but kept because they
/// are mid-migration are counted, and counted again in `removed_from_source`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Rollup {
    /// Groups below the node.
    pub groups: u64,
    pub users: u64,
    pub machines: u64,
    /// Backed-up data of the machines, in bytes.
    pub data_size_bytes: u64,
    /// Every readiness, zero included.
    pub machines_by_readiness: BTreeMap<Readiness, u64>,
    /// Every machine state, zero included.
    pub machines_by_state: BTreeMap<MachineState, u64>,
    /// Groups, users and machines no longer in the source, kept because they are in a migration.
    pub removed_from_source: u64,
}

impl Rollup {
    fn empty() -> Self {
        Self {
            machines_by_readiness: Readiness::ALL.into_iter().map(|r| (r, 0)).collect(),
            machines_by_state: MachineState::ALL.into_iter().map(|s| (s, 0)).collect(),
            ..Self::default()
        }
    }
}

fn marks(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn count(r: &QueryResult, column: &str) -> Result<u64, DbErr> {
    Ok(r.try_get::<Option<i64>>("", column)?.unwrap_or(0).max(0) as u64)
}

/// The rollup of each group's subtree (the group included, its own row not
/// counted in `groups`); groups not in the snapshot are left out.
pub async fn rollups(
    db: &impl ConnectionTrait,
    workspace: Uuid,
    groups: &[String],
) -> Result<HashMap<String, Rollup>, DbErr> {
    let mut out = HashMap::new();
    for group in groups {
        if let Some(contents) = contents(db, workspace, group).await? {
            out.insert(group.clone(), contents.rollup);
        }
    }
    Ok(out)
}

/// What a group holds: directly, and in its whole subtree.
#[derive(Clone, Debug)]
pub struct Contents {
    pub subgroups: u64,
    pub users: u64,
    pub rollup: Rollup,
}

/// A group's contents in one statement; `None` when the group is not in the snapshot.
pub async fn contents(
    db: &impl ConnectionTrait,
    workspace: Uuid,
    group: &str,
) -> Result<Option<Contents>, DbErr> {
    let values = || vec![Value::from(workspace), group.into()];
    let rows = query(db, &contents_sql(Subtree::Span), values()).await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    if count(r, "found")? == 0 {
        return Ok(None);
    }
    let lo: Option<i64> = r.try_get("", "lo")?;
    if lo.is_some() {
        return read_contents(r).map(Some);
    }
    let rows = query(db, &contents_sql(Subtree::Walk), values()).await?;
    rows.first()
        .ok_or_else(|| DbErr::RecordNotFound("contents".into()))
        .and_then(read_contents)
        .map(Some)
}

/// Where a subtree's groups, users and machines are found.
#[derive(Clone, Copy)]
enum Subtree {
    /// Their positions, from the group's number to its subtree's last
    /// (`snapshot_tree`): three range scans of the `*_tree_idx` indexes, which
    /// hold what is summed.
    Span,
    /// A walk down the group tree from the group, and each group's users and
    /// machines by index: a snapshot not synced since positions came.
    Walk,
}

/// A group's contents in one row (`$1` the workspace, `$2` the group), with a
/// count per readiness and state (`FILTER`) rather than `GROUP BY`: SQLite
/// groups by sorting, and sorting the 150,000 machines of `large` doubled the
/// root's rollup.
fn contents_sql(subtree: Subtree) -> String {
    let removed =
        |alias: &str| format!("SUM(CASE WHEN {alias}.removed_at IS NULL THEN 0 ELSE 1 END)");
    // Our own names, never input: safe to write into the statement.
    let by_readiness: String = Readiness::ALL
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                ", COUNT(*) FILTER (WHERE m.readiness = '{}') AS r{i}",
                r.as_str()
            )
        })
        .collect();
    let by_state: String = MachineState::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                ", COUNT(*) FILTER (WHERE m.migration_state = '{}') AS s{i}",
                s.as_str()
            )
        })
        .collect();
    let (with, groups, users, machines) = match subtree {
        Subtree::Span => (
            "WITH span AS (SELECT tree_lo AS lo, tree_hi AS hi FROM source_groups WHERE workspace_id = $1 AND source_id = $2) ",
            "span CROSS JOIN source_groups g WHERE g.workspace_id = $1 AND g.tree_lo BETWEEN span.lo AND span.hi",
            "span CROSS JOIN source_users u WHERE u.workspace_id = $1 AND u.tree_pos BETWEEN span.lo AND span.hi",
            "span CROSS JOIN source_machines m WHERE m.workspace_id = $1 AND m.tree_pos BETWEEN span.lo AND span.hi",
        ),
        // `CROSS JOIN` makes SQLite walk the subtree first and look up each group's
        // users and machines by index (PostgreSQL plans it as the inner join it is);
        // left to itself SQLite was seen to take the walk's groups as the outer loop
        // and scan them all per step.
        Subtree::Walk => (
            "WITH RECURSIVE sub(id) AS ( \
               SELECT source_id FROM source_groups WHERE workspace_id = $1 AND source_id = $2 \
               UNION ALL \
               SELECT g.source_id FROM sub CROSS JOIN source_groups g WHERE g.workspace_id = $1 AND g.parent_source_id = sub.id \
             ), span(lo) AS (SELECT CAST(NULL AS BIGINT)) ",
            "sub CROSS JOIN source_groups g WHERE g.workspace_id = $1 AND g.source_id = sub.id",
            "sub CROSS JOIN source_users u WHERE u.workspace_id = $1 AND u.parent_source_id = sub.id",
            "sub CROSS JOIN source_machines m WHERE m.workspace_id = $1 AND m.group_source_id = sub.id",
        ),
    };
    let counts: String = (0..Readiness::ALL.len())
        .map(|i| format!(", CAST(m_sum.r{i} AS BIGINT) AS r{i}"))
        .chain(
            (0..MachineState::ALL.len()).map(|i| format!(", CAST(m_sum.s{i} AS BIGINT) AS s{i}")),
        )
        .collect();
    format!(
        "{with}SELECT (SELECT COUNT(*) FROM source_groups WHERE workspace_id = $1 AND source_id = $2) AS found, (SELECT lo FROM span) AS lo, \
                (SELECT COUNT(*) FROM source_groups WHERE workspace_id = $1 AND parent_source_id = $2) AS subgroups, \
                (SELECT COUNT(*) FROM source_users WHERE workspace_id = $1 AND parent_source_id = $2) AS direct_users, \
                CAST(g_sum.n AS BIGINT) AS groups, CAST(g_sum.removed AS BIGINT) AS groups_removed, \
                CAST(u_sum.n AS BIGINT) AS users, CAST(u_sum.removed AS BIGINT) AS users_removed, \
                CAST(m_sum.n AS BIGINT) AS machines, CAST(m_sum.size AS BIGINT) AS size, CAST(m_sum.removed AS BIGINT) AS machines_removed{counts} \
         FROM (SELECT COUNT(*) AS n, {groups_removed} AS removed FROM {groups}) g_sum \
         CROSS JOIN (SELECT COUNT(*) AS n, {users_removed} AS removed FROM {users}) u_sum \
         CROSS JOIN (SELECT COUNT(*) AS n, SUM(m.size_bytes) AS size, {machines_removed} AS removed{by_readiness}{by_state} FROM {machines}) m_sum",
        groups_removed = removed("g"),
        users_removed = removed("u"),
        machines_removed = removed("m"),
    )
}

fn read_contents(r: &QueryResult) -> Result<Contents, DbErr> {
    let mut rollup = Rollup::empty();
    rollup.groups = count(r, "groups")?.saturating_sub(1);
    rollup.users = count(r, "users")?;
    rollup.machines = count(r, "machines")?;
    rollup.data_size_bytes = count(r, "size")?;
    rollup.removed_from_source =
        count(r, "groups_removed")? + count(r, "users_removed")? + count(r, "machines_removed")?;
    for (i, readiness) in Readiness::ALL.into_iter().enumerate() {
        rollup
            .machines_by_readiness
            .insert(readiness, count(r, &format!("r{i}"))?);
    }
    for (i, state) in MachineState::ALL.into_iter().enumerate() {
        rollup
            .machines_by_state
            .insert(state, count(r, &format!("s{i}"))?);
    }
    Ok(Contents {
        subgroups: count(r, "subgroups")?,
        users: count(r, "direct_users")?,
        rollup,
    })
}

/// The root group: the one without a parent.
pub async fn root(db: &impl ConnectionTrait, workspace: Uuid) -> Result<Option<Row>, DbErr> {
    let sql = format!(
        "SELECT {} FROM source_groups WHERE workspace_id = $1 AND parent_source_id IS NULL ORDER BY source_id LIMIT 1",
        Kind::Group.row_columns()
    );
    query(db, &sql, vec![workspace.into()])
        .await?
        .first()
        .map(|r| Row::read(Kind::Group, r))
        .transpose()
}

pub async fn find(
    db: &impl ConnectionTrait,
    workspace: Uuid,
    kind: Kind,
    id: &str,
) -> Result<Option<Row>, DbErr> {
    Ok(rows(db, workspace, kind, &[id.to_string()]).await?.pop())
}

/// The rows of `kind` with these ids, in no particular order.
pub async fn rows(
    db: &impl ConnectionTrait,
    workspace: Uuid,
    kind: Kind,
    ids: &[String],
) -> Result<Vec<Row>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {} FROM {} WHERE workspace_id = $1 AND source_id IN ({})",
        kind.row_columns(),
        kind.table(),
        marks(2, ids.len())
    );
    let mut values: Vec<Value> = vec![workspace.into()];
    values.extend(ids.iter().map(|id| Value::from(id.clone())));
    query(db, &sql, values)
        .await?
        .iter()
        .map(|r| Row::read(kind, r))
        .collect()
}

/// A machine and its user (`None` when the user is not in the snapshot), in one
/// statement; `None` when the machine is not in the snapshot.
pub async fn machine_with_user(
    db: &impl ConnectionTrait,
    workspace: Uuid,
    machine: &str,
) -> Result<Option<(Row, Option<Row>)>, DbErr> {
    let sql = format!(
        "SELECT 'machine' AS kind, {} FROM source_machines WHERE workspace_id = $1 AND source_id = $2 \
         UNION ALL \
         SELECT 'user' AS kind, {} FROM source_users WHERE workspace_id = $1 AND source_id = \
           (SELECT parent_source_id FROM source_machines WHERE workspace_id = $1 AND source_id = $2)",
        Kind::Machine.row_columns(),
        Kind::User.row_columns()
    );
    let (mut found, mut user) = (None, None);
    for r in query(db, &sql, vec![workspace.into(), machine.into()]).await? {
        let kind: String = r.try_get("", "kind")?;
        if kind == "user" {
            user = Some(Row::read(Kind::User, &r)?);
        } else {
            found = Some(Row::read(Kind::Machine, &r)?);
        }
    }
    Ok(found.map(|m| (m, user)))
}

/// The rows of `kind` whose parent is `parent` (a user's machines), by id.
pub async fn rows_of(
    db: &impl ConnectionTrait,
    workspace: Uuid,
    kind: Kind,
    parent: &str,
) -> Result<Vec<Row>, DbErr> {
    let sql = format!(
        "SELECT {} FROM {} WHERE workspace_id = $1 AND parent_source_id = $2 ORDER BY source_id",
        kind.row_columns(),
        kind.table()
    );
    query(db, &sql, vec![workspace.into(), parent.into()])
        .await?
        .iter()
        .map(|r| Row::read(kind, r))
        .collect()
}

/// The rows of `kind` whose parent is `parent` (a machine's plans): id and data, by id.
pub async fn rows_under(
    db: &impl ConnectionTrait,
    workspace: Uuid,
    table: &str,
    parent: &str,
) -> Result<Vec<(String, String)>, DbErr> {
    let sql = format!(
        "SELECT source_id, data FROM {table} WHERE workspace_id = $1 AND parent_source_id = $2 ORDER BY source_id"
    );
    query(db, &sql, vec![workspace.into(), parent.into()])
        .await?
        .iter()
        .map(|r| Ok((r.try_get("", "source_id")?, r.try_get("", "data")?)))
        .collect()
}

/// A group and its ancestors, root first: (id, data).
pub async fn path(
    db: &impl ConnectionTrait,
    workspace: Uuid,
    group: &str,
) -> Result<Vec<(String, String)>, DbErr> {
    let sql = "WITH RECURSIVE up(id, parent, depth) AS ( \
                 SELECT source_id, parent_source_id, 0 FROM source_groups WHERE workspace_id = $1 AND source_id = $2 \
                 UNION ALL \
                 SELECT g.source_id, g.parent_source_id, up.depth + 1 FROM up CROSS JOIN source_groups g WHERE g.workspace_id = $1 AND g.source_id = up.parent \
                 AND up.depth < 1000 \
               ) \
               SELECT up.id AS id, g.data AS data FROM up JOIN source_groups g ON g.workspace_id = $1 AND g.source_id = up.id ORDER BY up.depth DESC";
    query(db, sql, vec![workspace.into(), group.into()])
        .await?
        .iter()
        .map(|r| Ok((r.try_get("", "id")?, r.try_get("", "data")?)))
        .collect()
}

/// A child in a listing, with its direct contents.
#[derive(Clone, Debug)]
pub struct Child {
    pub row: Row,
    /// Groups: subgroups. Users: 0.
    pub subgroups: u64,
    /// Groups: backup users. Users: 0.
    pub users: u64,
    /// Users: machines. Groups: 0.
    pub machines: u64,
}

/// A page of a group's children: subgroups, then users, each by name, after `after`.
pub async fn children(
    db: &impl ConnectionTrait,
    workspace: Uuid,
    group: &str,
    kinds: &[Kind],
    after: Option<&Key>,
    limit: u64,
) -> Result<Vec<Child>, DbErr> {
    let mut branches = Vec::new();
    if kinds.contains(&Kind::Group) {
        branches.push((Kind::Group, format!(
            "SELECT {rank} AS rank, 'group' AS kind, source_id, COALESCE(search, '') AS search, \
               (SELECT COUNT(*) FROM source_groups x WHERE x.workspace_id = $1 AND x.parent_source_id = g.source_id) AS subgroups, \
               (SELECT COUNT(*) FROM source_users x WHERE x.workspace_id = $1 AND x.parent_source_id = g.source_id) AS users, \
               CAST(0 AS BIGINT) AS machines \
             FROM source_groups g WHERE g.workspace_id = $1 AND g.parent_source_id = $2",
            rank = Kind::Group.rank()
        )));
    }
    if kinds.contains(&Kind::User) {
        branches.push((Kind::User, format!(
            "SELECT {rank} AS rank, 'user' AS kind, source_id, COALESCE(search, '') AS search, CAST(0 AS BIGINT) AS subgroups, \
               CAST(0 AS BIGINT) AS users, \
               (SELECT COUNT(*) FROM source_machines x WHERE x.workspace_id = $1 AND x.parent_source_id = u.source_id) AS machines \
             FROM source_users u WHERE u.workspace_id = $1 AND u.parent_source_id = $2",
            rank = Kind::User.rank()
        )));
    }
    if branches.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Value> = vec![workspace.into(), group.into()];
    let keys = page(db, branches, after, limit, values).await?;
    let mut counts = HashMap::new();
    for r in &keys.rows {
        counts.insert(
            (r.kind, r.id.clone()),
            (
                count(&r.result, "subgroups")?,
                count(&r.result, "users")?,
                count(&r.result, "machines")?,
            ),
        );
    }
    let rows = keys.fetch(db, workspace).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (subgroups, users, machines) = counts
                .get(&(row.kind, row.id.clone()))
                .copied()
                .unwrap_or_default();
            Child {
                row,
                subgroups,
                users,
                machines,
            }
        })
        .collect())
}

/// A page of objects whose name, login, email or hostname contains `text`
/// (case-insensitive), groups first, then users, then machines.
pub async fn search(
    db: &impl ConnectionTrait,
    workspace: Uuid,
    text: &str,
    kinds: &[Kind],
    after: Option<&Key>,
    limit: u64,
) -> Result<Vec<Row>, DbErr> {
    let escaped = super::like_literal(&text.to_lowercase());
    let branches: Vec<(Kind, String)> = kinds
        .iter()
        .map(|k| {
            let sql = format!(
                "SELECT {rank} AS rank, '{kind}' AS kind, source_id, search FROM {table} \
                 WHERE workspace_id = $1 AND search LIKE $2 ESCAPE '\\'",
                rank = k.rank(),
                kind = k.as_str(),
                table = k.table()
            );
            (*k, sql)
        })
        .collect();
    let values: Vec<Value> = vec![workspace.into(), format!("%{escaped}%").into()];
    page(db, branches, after, limit, values)
        .await?
        .fetch(db, workspace)
        .await
}

struct Keyed {
    kind: Kind,
    id: String,
    result: QueryResult,
}

struct Keys {
    rows: Vec<Keyed>,
}

impl Keys {
    /// The full rows, in the page's order.
    async fn fetch(&self, db: &impl ConnectionTrait, workspace: Uuid) -> Result<Vec<Row>, DbErr> {
        let mut found: HashMap<(Kind, String), Row> = HashMap::new();
        for kind in Kind::ALL {
            let ids: Vec<String> = self
                .rows
                .iter()
                .filter(|k| k.kind == kind)
                .map(|k| k.id.clone())
                .collect();
            for row in rows(db, workspace, kind, &ids).await? {
                found.insert((kind, row.id.clone()), row);
            }
        }
        Ok(self
            .rows
            .iter()
            .filter_map(|k| found.remove(&(k.kind, k.id.clone())))
            .collect())
    }
}

/// The page of `limit` rows after `after` in the listing that `branches` make
/// (each selecting `rank, kind, source_id, search` first), ordered by (rank,
/// search, id): one kind at a time, each read in (search, id) order from where
/// the page stands and only as far as the page needs, so that a search whose
/// page fills with groups or users scans no machines. `values` are the
/// branches' parameters.
async fn page(
    db: &impl ConnectionTrait,
    mut branches: Vec<(Kind, String)>,
    after: Option<&Key>,
    limit: u64,
    values: Vec<Value>,
) -> Result<Keys, DbErr> {
    branches.sort_by_key(|(kind, _)| kind.rank());
    let mut rows = Vec::new();
    for (kind, branch) in branches {
        let left = limit.saturating_sub(rows.len() as u64);
        if left == 0 {
            break;
        }
        let mut values = values.clone();
        let n = values.len();
        let from = match after {
            Some(Key(at, _, _)) if at.rank() > kind.rank() => continue,
            Some(Key(at, search, id)) if *at == kind => {
                values.extend([Value::from(search.clone()), id.clone().into()]);
                format!(
                    " WHERE b.search > ${a} OR (b.search = ${a} AND b.source_id > ${b})",
                    a = n + 1,
                    b = n + 2
                )
            }
            _ => String::new(),
        };
        values.push(Value::from(i64::try_from(left).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT * FROM ({branch}) b{from} ORDER BY b.search, b.source_id LIMIT ${}",
            values.len()
        );
        for result in query(db, &sql, values).await? {
            rows.push(Keyed {
                kind,
                id: result.try_get("", "source_id")?,
                result,
            });
        }
    }
    Ok(Keys { rows })
}
