//! Install-base entities for tests, with what a test does not look at filled in.

use super::input::{Group, Machine, Os, User};

pub fn group(id: &str, parent: Option<&str>) -> Group {
    Group {
        id: id.into(),
        parent_id: parent.map(str::to_string),
        name: format!("Group {id}"),
        admin: None,
        storage_quota_bytes: None,
    }
}

pub fn user(id: &str, group: &str) -> User {
    User {
        id: id.into(),
        group_id: group.into(),
        login: format!("login-{id}"),
        email: None,
        first_name: None,
        last_name: None,
        auto_update: true,
        storage_quota_bytes: None,
    }
}

/// A Windows 10 machine named by its id, never seen online.
pub fn host(id: &str, user: &str, data_size_bytes: u64) -> Machine {
    let os = Os {
        family: "windows".into(),
        name: "Windows 10".into(),
    };
    Machine {
        id: id.into(),
        user_id: user.into(),
        hostname: id.into(),
        os,
        client_version: None,
        last_seen_at: None,
        data_size_bytes,
    }
}
