//! CSV exports of a report's contact lists, mappings and estimates (and of the
//! decommission plan), safe to open in a spreadsheet.

use serde_json::Value;

use crate::domain::report::{Entry, Section};

/// A column: its header and the JSON Pointer of its value in an entry.
pub struct Column(pub &'static str, pub &'static str);

pub fn columns(section: Section) -> Option<&'static [Column]> {
    Some(match section {
        Section::Contacts => &[
            Column("user_id", "/user_id"),
            Column("login", "/login"),
            Column("email", "/email"),
            Column("first_name", "/first_name"),
            Column("last_name", "/last_name"),
            Column("group", "/group_name"),
            Column("reasons", "/reasons"),
            Column("machines", "/machines"),
        ],
        Section::Actions => &[
            Column("cause", "/cause"),
            Column("machine_id", "/machine_id"),
            Column("hostname", "/hostname"),
            Column("os", "/os_name"),
            Column("login", "/login"),
            Column("email", "/email"),
            Column("group", "/group_name"),
            Column("plans", "/plans"),
        ],
        Section::Groups => &[
            Column("group_id", "/group_id"),
            Column("group", "/group_name"),
            Column("role", "/role"),
            Column("source_login", "/source_login"),
            Column("target_login", "/target_login"),
            Column("changes", "/changes"),
            Column("activation_required", "/activation_required"),
            Column("email", "/contact/email"),
            Column("first_name", "/contact/first_name"),
            Column("last_name", "/contact/last_name"),
            Column("phone", "/contact/phone"),
        ],
        Section::Users => &[
            Column("user_id", "/user_id"),
            Column("group", "/group_name"),
            Column("source_login", "/source_login"),
            Column("target_login", "/target_login"),
            Column("changes", "/changes"),
            Column("unverified", "/unverified"),
            Column("email", "/contact/email"),
            Column("first_name", "/contact/first_name"),
            Column("last_name", "/contact/last_name"),
        ],
        Section::InitialBackup => &[
            Column("tenant_key", "/tenant_key"),
            Column("tenant_name", "/tenant_name"),
            Column("group_id", "/group_id"),
            Column("group", "/group_name"),
            Column("machines", "/machines"),
            Column("data_size_bytes", "/data_size_bytes"),
            Column("duration_seconds", "/duration_seconds"),
            Column("duration_days", "/duration_days"),
            Column("physical_data_shipping", "/physical_data_shipping"),
        ],
        Section::Hierarchy => return None,
    })
}

pub fn write(columns: &[Column], entries: &[Entry]) -> anyhow::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(columns.iter().map(|c| c.0))?;
    for entry in entries {
        out.write_record(
            columns
                .iter()
                .map(|c| neutralised(cell(entry.value.pointer(c.1).unwrap_or(&Value::Null)))),
        )?;
    }
    Ok(out.into_inner()?)
}

/// A cell's text: lists joined with `; `, machines and plans by their names.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Object(o) => o
                    .get("hostname")
                    .or_else(|| o.get("name"))
                    .map(cell)
                    .unwrap_or_default(),
                other => cell(other),
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// A spreadsheet runs a cell starting with these as a formula (CSV injection).
fn neutralised(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formulas_are_neutralised_and_lists_joined() {
        let cases = [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("a=b", "a=b"),
            ("plain", "plain"),
        ];
        for (text, expected) in cases {
            assert_eq!(neutralised(text.to_string()), expected, "{text:?}");
        }
        let entry = Entry {
            key: "u".into(),
            value: json!({"user_id": "u-1", "login": "=cmd", "reasons": ["offline", "never_reported"], "machines": [{"hostname": "a"}, {"hostname": "b"}]}),
        };
        let written = String::from_utf8(
            write(columns(Section::Contacts).unwrap_or_default(), &[entry]).unwrap_or_default(),
        )
        .unwrap_or_default();
        let mut reader = csv::Reader::from_reader(written.as_bytes());
        let row = reader.records().next().and_then(Result::ok).expect("a row");
        assert_eq!(&row[1], "'=cmd");
        assert_eq!(&row[6], "offline; never_reported");
        assert_eq!(&row[7], "a; b");
    }
}
