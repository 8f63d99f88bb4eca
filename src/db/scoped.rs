//! What a partner reaches through one of its workspaces (pre-checks,
//! migrations): found and listed under the tenant and the workspace, so that
//! another tenant's id is not found.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Select};
use uuid::Uuid;

use super::Page;

/// An entity kept per workspace, with the columns that scope it.
pub trait InWorkspace: EntityTrait {
    const TENANT_ID: Self::Column;
    const WORKSPACE_ID: Self::Column;
    const ID: Self::Column;
}

impl InWorkspace for entity::migration::Entity {
    const TENANT_ID: Self::Column = entity::migration::Column::TenantId;
    const WORKSPACE_ID: Self::Column = entity::migration::Column::WorkspaceId;
    const ID: Self::Column = entity::migration::Column::Id;
}

impl InWorkspace for entity::precheck::Entity {
    const TENANT_ID: Self::Column = entity::precheck::Column::TenantId;
    const WORKSPACE_ID: Self::Column = entity::precheck::Column::WorkspaceId;
    const ID: Self::Column = entity::precheck::Column::Id;
}

fn in_workspace<E: InWorkspace>(tenant_id: Uuid, workspace_id: Uuid) -> Select<E> {
    E::find()
        .filter(E::TENANT_ID.eq(tenant_id))
        .filter(E::WORKSPACE_ID.eq(workspace_id))
}

/// The row `id` of this tenant's workspace.
pub async fn find<E: InWorkspace>(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<E::Model>, DbErr> {
    in_workspace::<E>(tenant_id, workspace_id)
        .filter(E::ID.eq(id))
        .one(db)
        .await
}

/// Up to `page.limit + 1` rows of this tenant's workspace after the cursor, oldest first.
pub async fn list<E: InWorkspace>(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    workspace_id: Uuid,
    page: Page,
) -> Result<Vec<E::Model>, DbErr> {
    page.of(db, in_workspace::<E>(tenant_id, workspace_id), E::ID)
        .await
}
