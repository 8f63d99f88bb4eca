//! How a change to a name or login is shown: the seed's hierarchy review marks
//! removed text red, substituted text orange and added text green.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SegmentKind {
    Kept,
    /// In the source, not in the target (red).
    Removed,
    /// `text` in the target stands for `original` in the source (orange).
    Substituted,
    /// In the target only (green).
    Added,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Segment {
    pub kind: SegmentKind,
    /// The source text a substitution replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// (The fields are in alphabetical order: the report writes segments
    /// straight to text, which must be the text a JSON tree of them gives.)
    pub text: String,
}

/// Segments built left to right; neighbours of the same kind merge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Segments(Vec<Segment>);

impl Segments {
    pub fn kept(&mut self, text: &str) {
        self.push(SegmentKind::Kept, text, None);
    }

    pub fn removed(&mut self, text: &str) {
        self.push(SegmentKind::Removed, text, None);
    }

    pub fn added(&mut self, text: &str) {
        self.push(SegmentKind::Added, text, None);
    }

    pub fn substituted(&mut self, original: &str, text: &str) {
        self.push(SegmentKind::Substituted, text, Some(original));
    }

    fn push(&mut self, kind: SegmentKind, text: &str, original: Option<&str>) {
        if text.is_empty() && original.is_none_or(str::is_empty) {
            return;
        }
        if let Some(last) = self.0.last_mut().filter(|s| s.kind == kind) {
            last.text.push_str(text);
            if let (Some(o), Some(add)) = (last.original.as_mut(), original) {
                o.push_str(add);
            }
            return;
        }
        self.0.push(Segment {
            kind,
            text: text.to_string(),
            original: original.map(str::to_string),
        });
    }

    /// The source text: kept, removed and the originals of substitutions.
    pub fn source(&self) -> String {
        self.0
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Kept | SegmentKind::Removed => s.text.as_str(),
                SegmentKind::Substituted => s.original.as_deref().unwrap_or_default(),
                SegmentKind::Added => "",
            })
            .collect()
    }

    /// The target text: kept, substituted and added.
    pub fn target(&self) -> String {
        self.0
            .iter()
            .filter(|s| s.kind != SegmentKind::Removed)
            .map(|s| s.text.as_str())
            .collect()
    }

    pub fn changed(&self) -> bool {
        self.0.iter().any(|s| s.kind != SegmentKind::Kept)
    }

    pub fn into_vec(self) -> Vec<Segment> {
        self.0
    }

    pub fn as_slice(&self) -> &[Segment] {
        &self.0
    }
}
