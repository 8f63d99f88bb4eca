//! Target logins. Backup-user logins are kept unless they
//! hold characters outside letters, digits and `. _ - @`, are shorter than 3, or
//! are taken in the target or inside the plan; admin logins are derived from the
//! group name (BackupAgent's admin login) and always need activation.

use std::collections::HashSet;

use serde::Serialize;
use utoipa::ToSchema;

use super::segments::Segments;

pub const MIN_CHARS: usize = 3;

/// Why a login changed; a login may change for several reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoginChange {
    /// Characters other than letters, digits and `. _ - @` were replaced or removed.
    Characters,
    /// Shorter than three characters: a suffix was added.
    TooShort,
    /// Taken in the target (`check_login`): numbered.
    TakenInTarget,
    /// Another login of this plan became the same (case-insensitively): numbered.
    TakenInPlan,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedLogin {
    pub segments: Segments,
    pub changes: Vec<LoginChange>,
    /// Some candidate's availability in the target was not known when planned.
    pub unverified: bool,
}

impl PlannedLogin {
    pub fn target(&self) -> String {
        self.segments.target()
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')
}

/// Replaces whitespace with `_`, removes other refused characters, pads short logins.
fn clean(source: &str, short_suffix: &str) -> (Segments, Vec<LoginChange>) {
    let mut segments = Segments::default();
    let mut changes = Vec::new();
    let trimmed = source.trim();
    let start = source.len() - source.trim_start().len();
    segments.removed(&source[..start]);
    for c in trimmed.chars() {
        let mut buf = [0u8; 4];
        let text = c.encode_utf8(&mut buf);
        if allowed(c) {
            segments.kept(text);
        } else if c.is_whitespace() {
            segments.substituted(text, "_");
        } else {
            segments.removed(text);
        }
    }
    segments.removed(&source[start + trimmed.len()..]);
    if segments.changed() && !trimmed.is_empty() && trimmed.chars().any(|c| !allowed(c)) {
        changes.push(LoginChange::Characters);
    }
    if segments.target().chars().count() < MIN_CHARS {
        segments.added(short_suffix);
        changes.push(LoginChange::TooShort);
    }
    (segments, changes)
}

/// The logins a plan has handed out, and what the target said of others.
pub struct LoginBook<'a> {
    in_plan: HashSet<String>,
    /// `Some(true)` taken, `Some(false)` free, `None` not asked (yet).
    in_target: &'a dyn Fn(&str) -> Option<bool>,
}

impl<'a> LoginBook<'a> {
    pub fn new(in_target: &'a dyn Fn(&str) -> Option<bool>) -> Self {
        Self {
            in_plan: HashSet::new(),
            in_target,
        }
    }

    /// A backup user's login: kept when it can be.
    pub fn backup_user(&mut self, source: &str) -> PlannedLogin {
        let (segments, changes) = clean(source, ".user");
        self.claim(segments, changes)
    }

    /// A group admin's login, from the group name BackupAgent uses as the login.
    pub fn admin(&mut self, group_name: &str) -> PlannedLogin {
        let (segments, changes) = clean(group_name, ".admin");
        self.claim(segments, changes)
    }

    /// Numbers the login (`-2`, `-3`, …) until neither the plan nor the target has it.
    fn claim(&mut self, segments: Segments, mut changes: Vec<LoginChange>) -> PlannedLogin {
        let base = segments.target();
        let mut unverified = false;
        for n in 1.. {
            let suffix = if n == 1 {
                String::new()
            } else {
                format!("-{n}")
            };
            let candidate = format!("{base}{suffix}");
            let key = candidate.to_lowercase();
            if self.in_plan.contains(&key) {
                if !changes.contains(&LoginChange::TakenInPlan) {
                    changes.push(LoginChange::TakenInPlan);
                }
                continue;
            }
            match (self.in_target)(&candidate) {
                Some(true) => {
                    if !changes.contains(&LoginChange::TakenInTarget) {
                        changes.push(LoginChange::TakenInTarget);
                    }
                    continue;
                }
                None => unverified = true,
                Some(false) => {}
            }
            self.in_plan.insert(key);
            let mut segments = segments;
            segments.added(&suffix);
            return PlannedLogin {
                segments,
                changes,
                unverified,
            };
        }
        unreachable!("some numbered login is free")
    }
}

#[cfg(test)]
mod tests {
    use super::LoginChange::*;
    use super::*;

    #[test]
    fn backup_user_logins_follow_the_rules() {
        let taken = |login: &str| {
            Some(matches!(
                login.to_lowercase().as_str(),
                "taken@example.com" | "bob" | "bob-2"
            ))
        };
        let mut book = LoginBook::new(&taken);
        let cases: Vec<(&str, &str, Vec<LoginChange>)> = vec![
            ("alice@example.com", "alice@example.com", vec![]),
            ("j.doe_01-x", "j.doe_01-x", vec![]),
            ("pay$roll#1", "payroll1", vec![Characters]),
            ("john smith", "john_smith", vec![Characters]),
            ("  padded  ", "padded", vec![]),
            ("ab", "ab.user", vec![TooShort]),
            ("a$", "a.user", vec![Characters, TooShort]),
            (
                "Taken@Example.com",
                "Taken@Example.com-2",
                vec![TakenInTarget],
            ),
            ("bob", "bob-3", vec![TakenInTarget]),
            (
                "ALICE@example.com",
                "ALICE@example.com-2",
                vec![TakenInPlan],
            ),
            ("payroll1", "payroll1-2", vec![TakenInPlan]),
        ];
        for (source, target, changes) in cases {
            let planned = book.backup_user(source);
            assert_eq!(planned.target(), target, "{source:?}");
            assert_eq!(planned.changes, changes, "{source:?}");
            assert_eq!(
                planned.segments.source(),
                source,
                "segments keep the source: {source:?}"
            );
            assert!(!planned.unverified);
        }
    }

    #[test]
    fn admin_logins_come_from_group_names() {
        let free = |_: &str| Some(false);
        let mut book = LoginBook::new(&free);
        for (group, login) in [
            ("Acme Corp", "Acme_Corp"),
            ("R&D <EU>", "RD_EU"),
            ("IT", "IT.admin"),
            ("acme corp", "acme_corp-2"),
        ] {
            assert_eq!(book.admin(group).target(), login, "{group}");
        }
    }

    #[test]
    fn a_login_the_target_was_not_asked_about_is_marked_unverified() {
        let unknown = |_: &str| None;
        let mut book = LoginBook::new(&unknown);
        let planned = book.backup_user("carol");
        assert_eq!(planned.target(), "carol");
        assert!(planned.unverified);
    }
}
