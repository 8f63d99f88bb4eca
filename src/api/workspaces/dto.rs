//! Request and response bodies of the workspaces resource.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::{Validate, ValidationError};

use entity::workspace::Model;

use crate::connectors::Limit;
use crate::connectors::check::ConnectionCheck;
use crate::domain::provisioning::Profile;

/// A password or client secret: deserialized, never serialized or printed in clear.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Secret(pub SecretString);

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Connect a BackupAgent install base to the caller's cloud tenant.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// A name for people, e.g. the partner's brand.
    #[validate(custom(function = "display_name"))]
    #[schema(
        example = "Contoso Backup",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    #[validate(nested)]
    pub source: SourceCredentials,
    #[validate(nested)]
    pub target: TargetCredentials,
    /// Pace toward each system; defaults to 50 req/s and 8 in flight toward the source,
    /// 100 req/s and 16 in flight toward the cloud.
    #[validate(nested)]
    pub limits: Option<Limits>,
    /// The services migrated tenants get; the standard profile when absent.
    #[validate(nested)]
    pub provisioning: Option<Profile>,
}

/// Requests per second and in flight, toward the BackupAgent server and the cloud.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, Validate, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[validate(nested)]
    pub source: Limit,
    #[validate(nested)]
    pub target: Limit,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            source: Limit::SOURCE_DEFAULT,
            target: Limit::TARGET_DEFAULT,
        }
    }
}

/// The BackupAgent server and its top-level group's login (A).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceCredentials {
    /// The BackupAgent server, http or https.
    #[validate(custom(function = "http_url"))]
    #[schema(
        example = "https://backup.contoso.example",
        format = "uri",
        max_length = 2048
    )]
    pub url: String,
    /// The top-level group's login.
    #[validate(custom(function = "login"))]
    #[schema(
        example = "contoso-root",
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub login: String,
    /// Stored encrypted; never returned.
    #[validate(custom(function = "secret"))]
    #[schema(value_type = String, format = Password, write_only, min_length = 1, max_length = 1024)]
    pub password: Secret,
}

/// The cloud datacenter and the API client the worker uses for days after the
/// caller's token has expired.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetCredentials {
    /// The cloud datacenter, http or https (`/api/2` is added).
    #[validate(custom(function = "http_url"))]
    #[schema(
        example = "https://eu2-cloud.acronis.com",
        format = "uri",
        max_length = 2048
    )]
    pub url: String,
    #[validate(custom(function = "login"))]
    #[schema(
        example = "0b6e7d2a-1c1e-4d0e-9a55-7a8f6f1e2b3c",
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub client_id: String,
    /// Stored encrypted; never returned.
    #[validate(custom(function = "secret"))]
    #[schema(value_type = String, format = Password, write_only, min_length = 1, max_length = 1024)]
    pub client_secret: Secret,
}

/// Change the name or replace a whole set of credentials; absent parts are kept.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "some_change"))]
pub struct UpdateWorkspace {
    #[validate(custom(function = "display_name"))]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    #[validate(nested)]
    pub source: Option<SourceCredentials>,
    #[validate(nested)]
    pub target: Option<TargetCredentials>,
    #[validate(nested)]
    pub limits: Option<Limits>,
    /// Replaces the whole provisioning profile.
    #[validate(nested)]
    pub provisioning: Option<Profile>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub source: SourceView,
    pub target: TargetView,
    /// Increases with every change; sent as the `ETag`, accepted in `If-Match`.
    pub version: i32,
    /// The last connection check: run at creation and by `POST /workspaces/{id}/check`.
    pub connection_check: Option<ConnectionCheck>,
    pub limits: Limits,
    /// The services migrated tenants get (the standard profile unless set).
    pub provisioning: Profile,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    pub url: String,
    pub login: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    pub url: String,
    pub client_id: String,
}

impl From<Model> for Workspace {
    fn from(m: Model) -> Self {
        let connection_check = crate::db::workspaces::connection_check(&m);
        let limits = Limits {
            source: crate::db::workspaces::source_limit(&m),
            target: crate::db::workspaces::target_limit(&m),
        };
        Self {
            limits,
            provisioning: crate::db::workspaces::provisioning(&m),
            connection_check,
            id: m.id,
            name: m.name,
            source: SourceView {
                url: m.source_url,
                login: m.source_login,
            },
            target: TargetView {
                url: m.target_url,
                client_id: m.target_client_id,
            },
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

fn rule(code: &'static str, message: &'static str) -> ValidationError {
    ValidationError::new(code).with_message(message.into())
}

fn display_name(value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(rule("blank", "must not be blank"));
    }
    // Counted as sent (surrounding spaces too, which are trimmed off), as the document's maxLength counts.
    if value.chars().count() > 200 {
        return Err(rule("too_long", "must be at most 200 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(rule(
            "control_characters",
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn login(value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(rule("blank", "must not be blank"));
    }
    if value.chars().count() > 256 {
        return Err(rule("too_long", "must be at most 256 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(rule(
            "control_characters",
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn secret(value: &Secret) -> Result<(), ValidationError> {
    match value.0.expose_secret().chars().count() {
        0 => Err(rule("blank", "must not be empty")),
        1..=1024 => Ok(()),
        _ => Err(rule("too_long", "must be at most 1024 characters")),
    }
}

/// The longest workspace URL, as browsers and proxies commonly allow.
const MAX_URL_CHARS: usize = 2048;

fn http_url(value: &str) -> Result<(), ValidationError> {
    if value.chars().count() > MAX_URL_CHARS {
        return Err(rule("too_long", "must be at most 2048 characters"));
    }
    let url =
        url::Url::parse(value).map_err(|_| rule("url", "must be an absolute http or https URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(rule("url", "must be an absolute http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(rule(
            "url_credentials",
            "must not carry credentials; use the login and password fields",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(rule("url_query", "must not have a query or fragment"));
    }
    Ok(())
}

fn some_change(update: &UpdateWorkspace) -> Result<(), ValidationError> {
    if update.name.is_none()
        && update.source.is_none()
        && update.target.is_none()
        && update.limits.is_none()
        && update.provisioning.is_none()
    {
        return Err(rule(
            "empty_update",
            "name, source, target, limits or provisioning is required",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_plain_http_or_https() {
        let cases = [
            ("https://backup.example.com", true),
            ("http://127.0.0.1:8081/base", true),
            ("ftp://backup.example.com", false),
            ("javascript:alert(1)", false),
            ("file:///etc/passwd", false),
            ("backup.example.com", false),
            ("https://user:pw@backup.example.com", false),
            ("https://backup.example.com/?token=x", false),
            ("", false),
            (
                &format!("https://a.example/{}", "x".repeat(2048 - 18)),
                true,
            ),
            (
                &format!("https://a.example/{}", "x".repeat(2048 - 17)),
                false,
            ),
        ];
        for (url, ok) in cases {
            assert_eq!(http_url(url).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn names_are_non_blank_short_and_printable() {
        let cases = [
            ("Contoso", true),
            ("   ", false),
            ("", false),
            ("a\u{7}b", false),
            (&"x".repeat(200), true),
            (&"x".repeat(201), false),
        ];
        for (name, ok) in cases {
            assert_eq!(display_name(name).is_ok(), ok, "{name:?}");
        }
    }
}
