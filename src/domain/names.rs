//! Target tenant names: trimmed, inner whitespace collapsed,
//! characters the target refuses replaced, at most 128 characters, unique among
//! siblings case-insensitively with a numbered suffix; every change as segments.

use std::collections::HashSet;

use super::segments::Segments;

/// What the target accepts in a tenant name. The cloud's rule is unconfirmed,
/// so this is configuration with a conservative default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRules {
    pub refused: Vec<char>,
    pub replacement: char,
    pub max_chars: usize,
}

impl Default for NameRules {
    fn default() -> Self {
        Self {
            refused: vec!['<', '>', '"', '\\', '/', '|', ';'],
            replacement: '-',
            max_chars: 128,
        }
    }
}

/// A source name and what it becomes, with the changes shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedName {
    pub segments: Segments,
}

impl PlannedName {
    pub fn target(&self) -> String {
        self.segments.target()
    }
}

/// Cleans one name; uniqueness among siblings is [`Siblings::claim`]'s job.
pub fn clean(source: &str, rules: &NameRules) -> PlannedName {
    let mut segments = Segments::default();
    let start = source.len() - source.trim_start().len();
    let end = source.trim_end().len().max(start);
    segments.removed(&source[..start]);
    let mut previous_space = false;
    for c in source[start..end].chars() {
        let mut buf = [0u8; 4];
        let text: &str = c.encode_utf8(&mut buf);
        let space = c.is_whitespace();
        if space && previous_space {
            segments.removed(text);
        } else if space && c != ' ' {
            segments.substituted(text, " ");
        } else if c.is_control() {
            segments.removed(text);
        } else if rules.refused.contains(&c) {
            segments.substituted(text, rules.replacement.encode_utf8(&mut [0u8; 4]));
        } else {
            segments.kept(text);
        }
        previous_space = space;
    }
    segments.removed(&source[end..]);
    let mut segments = trim_end(truncate(&segments, rules.max_chars));
    if segments.target().is_empty() {
        segments.added("Unnamed group");
    }
    PlannedName { segments }
}

/// Keeps the first `keep` characters of the target; the rest become removed
/// (substitutions give back their source text; additions just go).
fn truncate(segments: &Segments, keep: usize) -> Segments {
    use super::segments::SegmentKind::{Added, Kept, Removed, Substituted};
    let mut out = Segments::default();
    let mut left = keep;
    for segment in segments.as_slice() {
        let chars = segment.text.chars().count();
        match segment.kind {
            Removed => out.removed(&segment.text),
            _ if chars <= left => {
                left -= chars;
                match segment.kind {
                    Kept => out.kept(&segment.text),
                    Added => out.added(&segment.text),
                    _ => out.substituted(
                        segment.original.as_deref().unwrap_or_default(),
                        &segment.text,
                    ),
                }
            }
            Kept => {
                let cut = byte_index(&segment.text, left);
                out.kept(&segment.text[..cut]);
                out.removed(&segment.text[cut..]);
                left = 0;
            }
            Added => {
                let cut = byte_index(&segment.text, left);
                out.added(&segment.text[..cut]);
                left = 0;
            }
            // A substitution is one source run for one target run: kept whole or dropped whole.
            Substituted => {
                out.removed(segment.original.as_deref().unwrap_or_default());
                left = 0;
            }
        }
    }
    out
}

/// At most `chars` target characters, without a trailing space.
pub fn fit(segments: &Segments, chars: usize) -> Segments {
    trim_end(truncate(segments, chars))
}

fn trim_end(segments: Segments) -> Segments {
    let target = segments.target();
    let kept = target.trim_end().chars().count();
    if kept == target.chars().count() {
        segments
    } else {
        truncate(&segments, kept)
    }
}

fn byte_index(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i)
}

/// The names already used under one parent, compared case-insensitively.
#[derive(Default)]
pub struct Siblings {
    taken: HashSet<String>,
}

impl Siblings {
    /// Marks a name as taken (e.g. an existing tenant in the target).
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_lowercase());
    }

    /// Makes `name` unique here with " (2)", " (3)", … (shown as added), keeping it within `max_chars`.
    pub fn claim(&mut self, name: PlannedName, max_chars: usize) -> PlannedName {
        if self.taken.insert(name.target().to_lowercase()) {
            return name;
        }
        for n in 2.. {
            let suffix = format!(" ({n})");
            let room = max_chars.saturating_sub(suffix.chars().count());
            let mut segments = trim_end(truncate(&name.segments, room));
            segments.added(&suffix);
            if self.taken.insert(segments.target().to_lowercase()) {
                return PlannedName { segments };
            }
        }
        unreachable!("some numbered suffix is free")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::segments::SegmentKind::{Added, Kept, Removed, Substituted};

    fn shape(name: &PlannedName) -> Vec<(crate::domain::segments::SegmentKind, String)> {
        name.segments
            .as_slice()
            .iter()
            .map(|s| (s.kind, s.text.clone()))
            .collect()
    }

    #[test]
    fn names_are_cleaned_as_the_rules_say() {
        let rules = NameRules::default();
        let long = "x".repeat(130);
        let cases: Vec<(
            &str,
            &str,
            Vec<(crate::domain::segments::SegmentKind, &str)>,
        )> = vec![
            ("Acme Corp", "Acme Corp", vec![(Kept, "Acme Corp")]),
            (
                "  Acme Corp ",
                "Acme Corp",
                vec![(Removed, "  "), (Kept, "Acme Corp"), (Removed, " ")],
            ),
            (
                "Acme   Corp",
                "Acme Corp",
                vec![(Kept, "Acme "), (Removed, "  "), (Kept, "Corp")],
            ),
            (
                "Acme\tCorp",
                "Acme Corp",
                vec![(Kept, "Acme"), (Substituted, " "), (Kept, "Corp")],
            ),
            (
                "Acme/Corp <EU>",
                "Acme-Corp -EU-",
                vec![
                    (Kept, "Acme"),
                    (Substituted, "-"),
                    (Kept, "Corp "),
                    (Substituted, "-"),
                    (Kept, "EU"),
                    (Substituted, "-"),
                ],
            ),
            (
                "Acme\u{7}Corp",
                "AcmeCorp",
                vec![(Kept, "Acme"), (Removed, "\u{7}"), (Kept, "Corp")],
            ),
            (
                &long,
                &long[..128],
                vec![(Kept, &long[..128]), (Removed, "xx")],
            ),
            (
                "   ",
                "Unnamed group",
                vec![(Removed, "   "), (Added, "Unnamed group")],
            ),
        ];
        for (source, target, segments) in cases {
            let planned = clean(source, &rules);
            assert_eq!(planned.target(), target, "{source:?}");
            assert_eq!(
                planned.segments.source(),
                source,
                "segments keep the whole source: {source:?}"
            );
            let expected: Vec<_> = segments
                .into_iter()
                .map(|(k, t)| (k, t.to_string()))
                .collect();
            assert_eq!(shape(&planned), expected, "{source:?}");
        }
    }

    #[test]
    fn a_cut_never_leaves_a_trailing_space() {
        let source = format!("{} tail", "y".repeat(127));
        let planned = clean(&source, &NameRules::default());
        assert_eq!(planned.target(), "y".repeat(127));
        assert_eq!(planned.segments.source(), source);
    }

    #[test]
    fn sibling_duplicates_get_numbered_case_insensitively() {
        let rules = NameRules::default();
        let mut siblings = Siblings::default();
        siblings.reserve("Existing");
        let cases = [
            ("Acme", "Acme"),
            ("ACME", "ACME (2)"),
            ("acme ", "acme (3)"),
            ("existing", "existing (2)"),
            ("Other", "Other"),
        ];
        for (source, target) in cases {
            let planned = siblings.claim(clean(source, &rules), rules.max_chars);
            assert_eq!(planned.target(), target, "{source}");
        }
        let numbered = siblings.claim(clean("Acme", &rules), rules.max_chars);
        assert_eq!(
            numbered
                .segments
                .as_slice()
                .last()
                .map(|s| (s.kind, s.text.as_str())),
            Some((Added, " (4)"))
        );
    }

    #[test]
    fn a_numbered_suffix_still_fits_the_length_limit() {
        let rules = NameRules::default();
        let long = "z".repeat(128);
        let mut siblings = Siblings::default();
        assert_eq!(siblings.claim(clean(&long, &rules), 128).target(), long);
        let second = siblings.claim(clean(&long, &rules), 128);
        assert_eq!(second.target(), format!("{} (2)", "z".repeat(124)));
        assert_eq!(second.target().chars().count(), 128);
        assert_eq!(second.segments.source(), long);
    }
}
