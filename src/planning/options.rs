//! What a pre-check or a migration request may set besides its selection;
//! kept with the pre-check or the migration, and read back by its job.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::connectors::Limit;
use crate::domain::initial_backup::InitialBackupOptions;
use crate::domain::provisioning::Profile;

/// What a pre-check request may set besides its selection; kept with the pre-check.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
    Validate,
    utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct PrecheckOptions {
    /// How the customers' initial backups are estimated.
    #[serde(default)]
    #[validate(nested)]
    pub initial_backup: InitialBackupOptions,
    /// The services migrated tenants get, instead of the workspace's profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(nested)]
    pub provisioning: Option<Profile>,
}

impl PrecheckOptions {
    /// As kept with a pre-check: none kept (an older pre-check) means the defaults.
    pub fn from_kept(kept: Option<&str>) -> Result<Self, serde_json::Error> {
        kept.map_or(Ok(Self::default()), serde_json::from_str)
    }
}

/// How a migration is carried out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationOptions {
    /// Send admins their activation email (backup users get their source password instead).
    #[serde(default = "yes")]
    pub send_activation_emails: bool,
    /// Pace toward the target for this migration; never above the workspace's own limit.
    #[validate(nested)]
    pub target: Option<Limit>,
    /// Record the data sent to the target in the operations log (secrets redacted).
    #[serde(default)]
    pub verbose: bool,
    /// The services migrated tenants get, instead of the workspace's profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(nested)]
    pub provisioning: Option<Profile>,
    /// Start even though the cloud cannot give some of the profile's items: those
    /// items are left out (the tenants get the rest). Without it such a migration
    /// fails before it creates anything, naming the items.
    #[serde(default)]
    pub skip_unavailable_items: bool,
}

impl Default for MigrationOptions {
    fn default() -> Self {
        Self {
            send_activation_emails: true,
            target: None,
            verbose: false,
            provisioning: None,
            skip_unavailable_items: false,
        }
    }
}

fn yes() -> bool {
    true
}
