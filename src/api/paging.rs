//! Opaque cursor paging: `limit`, `cursor` in; `items`, `next_cursor` out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 500;
const CURSOR_VERSION: u8 = 1;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u64>,
    /// `next_cursor` from the previous page; absent for the first page.
    pub cursor: Option<String>,
}

pub use crate::db::Page;

impl PageParams {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit()?;
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(Page { limit, after })
    }

    /// For listings ordered by something other than id: the cursor holds the
    /// last entry's sort key.
    pub fn keyed<K: DeserializeOwned>(&self) -> Result<(u64, Option<K>), ApiError> {
        let limit = self.limit()?;
        let after = self.cursor.as_deref().map(decode_key).transpose()?;
        Ok((limit, after))
    }

    fn limit(&self) -> Result<u64, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be between 1 and {MAX_LIMIT}."),
            ));
        }
        Ok(limit)
    }
}

const KEY_CURSOR_VERSION: u8 = 2;

/// A cursor holding a sort key (see [`PageParams::keyed`]).
pub fn encode_key<K: Serialize>(key: &K) -> String {
    let mut bytes = vec![KEY_CURSOR_VERSION];
    bytes.extend(serde_json::to_vec(key).unwrap_or_default());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_key<K: DeserializeOwned>(cursor: &str) -> Result<K, ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid_cursor())?;
    match bytes.split_first() {
        // No stored text holds U+0000 (PostgreSQL cannot), so no cursor this API issued does.
        Some((&KEY_CURSOR_VERSION, key))
            if crate::api::input::json::first_string_holding(key, |c| c == '\0').is_none() =>
        {
            serde_json::from_slice(key).map_err(|_| invalid_cursor())
        }
        _ => Err(invalid_cursor()),
    }
}

pub fn invalid_cursor() -> ApiError {
    ApiError::bad_request("invalid_cursor", "The cursor is not one this API issued.")
}

pub fn encode_cursor(after: Uuid) -> String {
    let mut bytes = vec![CURSOR_VERSION];
    bytes.extend_from_slice(after.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(cursor: &str) -> Result<Uuid, ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid_cursor())?;
    match bytes.split_first() {
        Some((&CURSOR_VERSION, id)) => Uuid::from_slice(id).map_err(|_| invalid_cursor()),
        _ => Err(invalid_cursor()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// `rows` holds up to `limit + 1` items: one more than a page tells whether another follows.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        page: Page,
        id: impl Fn(&R) -> Uuid,
        map: impl Fn(R) -> T,
    ) -> Self {
        let more = rows.len() as u64 > page.limit;
        rows.truncate(page.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(id(r)))
        } else {
            None
        };
        Self {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}

/// What annotations cannot say of paging, applied to the whole document: every
/// `cursor` query parameter is one this API issued (non-empty base64url, any other
/// value is a 400), and `Paged<T>` lists `T` by reference (utoipa inlines generic
/// arguments, which would leave `T`'s own schema unused).
pub fn declare(spec: &mut OpenApi) {
    for operation in crate::api::docs::operations_mut(spec) {
        for parameter in operation.parameters.iter_mut().flatten() {
            if let RefOr::T(parameter) = parameter
                && parameter.name == "cursor"
                && parameter.parameter_in == ParameterIn::Query
            {
                parameter.schema = Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .pattern(Some("^[A-Za-z0-9_-]+$"))
                        .into(),
                );
            }
        }
    }
    let Some(components) = spec.components.as_mut() else {
        return;
    };
    let named: Vec<String> = components.schemas.keys().cloned().collect();
    for (name, schema) in &mut components.schemas {
        let Some(item) = name
            .strip_prefix("Paged_")
            .filter(|item| named.iter().any(|n| n == item))
        else {
            continue;
        };
        if let RefOr::T(Schema::Object(page)) = schema
            && let Some(RefOr::T(Schema::Array(items))) = page.properties.get_mut("items")
        {
            items.items = ArrayItems::RefOrSchema(Box::new(Ref::from_schema_name(item).into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_cursors_are_refused() {
        let id = Uuid::now_v7();
        let params = PageParams {
            limit: Some(10),
            cursor: Some(encode_cursor(id)),
        };
        assert_eq!(
            params.page().unwrap(),
            Page {
                limit: 10,
                after: Some(id)
            }
        );
        for bad in ["", "!!!", "AAAA", &URL_SAFE_NO_PAD.encode([2u8; 17])] {
            let params = PageParams {
                limit: None,
                cursor: Some(bad.to_string()),
            };
            assert!(params.page().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_cursors_round_trip_and_id_cursors_are_not_keys() {
        let key = ("group".to_string(), 7u32);
        let params = PageParams {
            limit: None,
            cursor: Some(encode_key(&key)),
        };
        assert_eq!(
            params.keyed::<(String, u32)>().unwrap(),
            (DEFAULT_LIMIT, Some(key))
        );
        assert!(params.page().is_err());
        let params = PageParams {
            limit: None,
            cursor: Some(encode_cursor(Uuid::now_v7())),
        };
        assert!(params.keyed::<(String, u32)>().is_err());
        // A crafted key holding U+0000 would reach the database (a 500 on PostgreSQL).
        let params = PageParams {
            limit: None,
            cursor: Some(encode_key(&("a\0b".to_string(), 7u32))),
        };
        assert!(params.keyed::<(String, u32)>().is_err());
        let params = PageParams {
            limit: None,
            cursor: Some(encode_key(&("a\tb \\u0000".to_string(), 7u32))),
        };
        assert!(params.keyed::<(String, u32)>().is_ok());
    }

    #[test]
    fn limits_outside_one_to_max_are_refused() {
        for (limit, ok) in [
            (Some(0), false),
            (Some(1), true),
            (Some(MAX_LIMIT), true),
            (Some(MAX_LIMIT + 1), false),
            (None, true),
        ] {
            assert_eq!(
                PageParams {
                    limit,
                    cursor: None
                }
                .page()
                .is_ok(),
                ok,
                "{limit:?}"
            );
        }
    }

    #[test]
    fn a_full_page_with_one_extra_row_names_the_next_cursor() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = Page {
            limit: 2,
            after: None,
        };
        let paged = Paged::from_rows(ids.clone(), page, |u| *u, |u| u);
        assert_eq!(paged.items, ids[..2]);
        assert_eq!(paged.next_cursor, Some(encode_cursor(ids[1])));
        let last = Paged::from_rows(ids[..2].to_vec(), page, |u| *u, |u| u);
        assert_eq!(last.next_cursor, None);
    }
}
