//! The body half of the rule: a string-aware scan of the raw JSON, escapes
//! decoded, that names the offending string by its JSON Pointer.

use crate::api::input::forbidden_in_body;
use crate::error::{ApiError, FieldError};

/// The body's first string (a value or a key) holding a character refused in
/// bodies, as a problem naming its JSON Pointer. Reads the raw bytes, escapes
/// decoded (`\u0000`, `\b`, `\f`), before the body is parsed; a body that is
/// not JSON is left to the parser.
pub fn control_character_in_json(raw: &[u8]) -> Option<ApiError> {
    let pointer = first_string_holding(raw, forbidden_in_body)?;
    let detail = "must not contain control characters (U+0000 to U+001F except tab, line feed and carriage return; U+007F to U+009F)";
    Some(ApiError::Validation(vec![FieldError {
        pointer,
        detail: detail.into(),
    }]))
}

enum Frame {
    /// An object, with the key of the member being read.
    Object(String),
    /// An array, with the index of the element being read.
    Array(usize),
}

/// The JSON Pointer of the first string (a value or a key) of `raw` holding a
/// character `forbidden` refuses.
pub fn first_string_holding(raw: &[u8], forbidden: fn(char) -> bool) -> Option<String> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut expecting_key = false;
    let mut at = 0;
    while at < raw.len() {
        match raw[at] {
            b'{' => {
                stack.push(Frame::Object(String::new()));
                expecting_key = true;
            }
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
                expecting_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(index)) => *index += 1,
                Some(Frame::Object(_)) => expecting_key = true,
                None => {}
            },
            b'"' => {
                let (end, holds) = scan_string(raw, at + 1, forbidden);
                if expecting_key {
                    expecting_key = false;
                    if let Some(Frame::Object(key)) = stack.last_mut() {
                        *key = decode_key(&raw[at..end]);
                    }
                }
                if holds {
                    return Some(pointer(&stack));
                }
                at = end;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    None
}

/// Reads the string whose content starts at `start`: where it ends (after its
/// closing quote) and whether it holds a `refused` character, plain or escaped.
fn scan_string(raw: &[u8], start: usize, refused: fn(char) -> bool) -> (usize, bool) {
    let mut holds = false;
    let mut at = start;
    loop {
        // Plain text up to the next quote or escape.
        let run = raw[at..]
            .iter()
            .position(|b| matches!(b, b'"' | b'\\'))
            .map_or(raw.len(), |n| at + n);
        holds |= String::from_utf8_lossy(&raw[at..run]).chars().any(refused);
        at = run;
        match raw.get(at) {
            None => return (raw.len(), holds),
            Some(b'"') => return (at + 1, holds),
            Some(_) => {
                let (escaped, length) = match raw.get(at + 1) {
                    Some(b'b') => (Some('\u{8}'), 2),
                    Some(b'f') => (Some('\u{c}'), 2),
                    Some(b'u') => match raw.get(at + 2..at + 6).and_then(hex) {
                        Some(unit) => (char::from_u32(unit), 6),
                        None => (None, 2),
                    },
                    Some(b'n') => (Some('\n'), 2),
                    Some(b'r') => (Some('\r'), 2),
                    Some(b't') => (Some('\t'), 2),
                    _ => (None, 2),
                };
                holds |= escaped.is_some_and(refused);
                at = (at + length).min(raw.len());
            }
        }
    }
}

/// Four hex digits: a UTF-16 code unit (a lone surrogate is not a character, so never refused).
fn hex(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |unit, d| {
        char::from(*d).to_digit(16).map(|v| unit * 16 + v)
    })
}

/// A key as the parser will read it (lossy when it is not valid JSON).
fn decode_key(quoted: &[u8]) -> String {
    serde_json::from_slice(quoted).unwrap_or_else(|_| {
        String::from_utf8_lossy(
            quoted
                .get(1..quoted.len().saturating_sub(1))
                .unwrap_or_default(),
        )
        .into_owned()
    })
}

fn pointer(stack: &[Frame]) -> String {
    stack
        .iter()
        .map(|frame| match frame {
            Frame::Object(key) => format!("/{}", key.replace('~', "~0").replace('/', "~1")),
            Frame::Array(index) => format!("/{index}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::input::tests::CHARACTERS;

    #[test]
    fn the_body_scanner_agrees_with_the_rule_on_every_string_of_the_table() {
        for (text, _, in_body) in CHARACTERS {
            let expected = in_body.then(|| "/field".to_string());
            let plain = serde_json::json!({"field": text}).to_string();
            assert_eq!(
                first_string_holding(plain.as_bytes(), forbidden_in_body),
                expected,
                "{plain}"
            );
            // Every character escaped as \uXXXX (surrogate pairs beyond U+FFFF), as some clients send them.
            let escaped: String = text
                .encode_utf16()
                .map(|unit| format!("\\u{unit:04x}"))
                .collect();
            let escaped = format!(r#"{{"field": "{escaped}"}}"#);
            assert_eq!(
                first_string_holding(escaped.as_bytes(), forbidden_in_body),
                expected,
                "{escaped}"
            );
        }
    }

    #[test]
    fn the_body_scanner_reads_escapes_and_names_the_pointer() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"a": "x"}"#, None),
            (r#"{"a": "\u0000"}"#, Some("/a")),
            (r#"{"a": "\u001F"}"#, Some("/a")),
            (r#"{"a": "\u001f\u0020"}"#, Some("/a")),
            (r#"{"a": "\u0009\u000a\u000D"}"#, None),
            (r#"{"a": "\b"}"#, Some("/a")),
            (r#"{"a": "\f"}"#, Some("/a")),
            (r#"{"a": "\n\r\t\"\\\/"}"#, None),
            // An escaped backslash followed by the letters is text, not an escape.
            (r#"{"a": "\\u0000"}"#, None),
            (r#"{"a": "\\\u0000"}"#, Some("/a")),
            (r#"{"a": "\\\\u0000"}"#, None),
            (r#"{"a": "\"\u0000"}"#, Some("/a")),
            (r#"{"a": "\u007f"}"#, Some("/a")),
            (r#"{"a": "\u0085"}"#, Some("/a")),
            (r#"{"a": "\u00a0"}"#, None),
            (r#"{"a": "\ud83d\ude42"}"#, None),
            (r#"{"a": "\u00"}"#, None),
            ("{\"a\": \"\u{85}\"}", Some("/a")),
            ("{\"a\": \"\u{7f}\"}", Some("/a")),
            ("{\"a\": \"\u{0}\"}", Some("/a")),
            // Keys too, with the key in the pointer.
            (r#"{"a\u0000b": 1}"#, Some("/a\u{0}b")),
            (r#"{"ok": "x", "b": {"c\u0001": true}}"#, Some("/b/c\u{1}")),
            // Nested objects and arrays: the pointer of the string.
            (
                r#"{"selection": [{"kind": "group", "id": "g-1"}, {"kind": "user", "id": "u\u00002"}]}"#,
                Some("/selection/1/id"),
            ),
            (r#"{"a": [[1, "x"], ["y", "\u0000"]]}"#, Some("/a/1/1")),
            (r#"{"a": {"b": 1}, "c": [], "d": "\u0000"}"#, Some("/d")),
            (r#"{"a/b~c": "\u0000"}"#, Some("/a~1b~0c")),
            (r#"["\u0000"]"#, Some("/0")),
            (r#""\u0000""#, Some("")),
            (
                r#"{"a": "text with \"quotes\" and a \\ backslash", "b": "\u0000"}"#,
                Some("/b"),
            ),
            // Not JSON, or cut short: left to the parser unless a refused character is plain to see.
            ("{\"a\": ", None),
            ("{\"a\": \"\\", None),
            ("{\"a\": \"\\u00", None),
            ("not json", None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                first_string_holding(body.as_bytes(), forbidden_in_body).as_deref(),
                *expected,
                "{body}"
            );
        }
    }
}
