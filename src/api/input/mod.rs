//! Control characters in any input are refused before a handler sees it: in the
//! path and the query string by [`refuse_control_characters`] (the whole app),
//! in JSON bodies by [`json::control_character_in_json`] (in `ValidJson`). The
//! same rule is declared as a `pattern` on every string the document lists
//! ([`declare::declare_input_rules`]), so clients know it before they send.
//!
//! Refused: Unicode control characters (category Cc: U+0000 to U+001F and U+007F
//! to U+009F). PostgreSQL cannot store U+0000 and SQLite cuts a LIKE pattern at
//! it; the others have no meaning in ids, names or filters and can rewrite a
//! terminal or a log line (U+001B, U+009B). Free text in bodies may hold tab,
//! line feed and carriage return.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, web};
use percent_encoding::percent_decode_str;

use crate::api::RouteTable;
use crate::error::ApiError;

pub mod declare;
pub mod json;

/// What a path or query parameter must match.
pub const PARAMETER_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
/// What a string in a JSON body must match: tab, line feed and carriage return are allowed.
pub const BODY_PATTERN: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";

/// Refused in a path or query parameter.
pub fn forbidden_in_parameter(c: char) -> bool {
    c.is_control()
}

/// Refused in a string of a JSON body.
pub fn forbidden_in_body(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Answers 400 when the percent-decoded path or query string holds a control
/// character, naming the parameter; otherwise passes the request on.
pub async fn refuse_control_characters(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(problem) = in_path(req.request()).or_else(|| in_query(req.query_string())) {
        return Ok(req.error_response(problem));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

fn first_forbidden(text: &str) -> Option<char> {
    text.chars().find(|c| forbidden_in_parameter(*c))
}

fn refused(detail: String) -> ApiError {
    ApiError::bad_request(
        "control_character",
        format!(
            "{detail} Control characters (U+0000 to U+001F, U+007F to U+009F) are refused in paths and query strings."
        ),
    )
}

fn in_path(req: &HttpRequest) -> Option<ApiError> {
    let path = req.uri().path();
    let (index, c) = path.split('/').enumerate().find_map(|(i, segment)| {
        first_forbidden(&percent_decode_str(segment).decode_utf8_lossy()).map(|c| (i, c))
    })?;
    let parameter = req
        .app_data::<web::Data<RouteTable>>()
        .and_then(|routes| routes.parameter_at(path, index));
    Some(refused(match parameter {
        Some(name) => format!("The path parameter `{name}` holds U+{:04X}.", u32::from(c)),
        None => format!("The path holds U+{:04X}.", u32::from(c)),
    }))
}

fn in_query(query: &str) -> Option<ApiError> {
    url::form_urlencoded::parse(query.as_bytes()).find_map(|(name, value)| {
        if let Some(c) = first_forbidden(&name) {
            return Some(refused(format!(
                "A query parameter's name holds U+{:04X}.",
                u32::from(c)
            )));
        }
        first_forbidden(&value).map(|c| {
            refused(format!(
                "The query parameter `{name}` holds U+{:04X}.",
                u32::from(c)
            ))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (string, refused in a parameter, refused in a body)
    pub(super) const CHARACTERS: &[(&str, bool, bool)] = &[
        ("", false, false),
        ("plain text", false, false),
        ("a\u{0}b", true, true),
        ("\u{1}", true, true),
        ("tab\there", true, false),
        ("line\nbreak", true, false),
        ("carriage\rreturn", true, false),
        ("\u{b}", true, true),
        ("\u{c}", true, true),
        ("\u{1b}[31m", true, true),
        ("\u{1f}", true, true),
        ("\u{7f}", true, true),
        ("\u{80}", true, true),
        ("\u{9b}", true, true),
        ("\u{9f}", true, true),
        ("\u{a0}non-breaking", false, false),
        ("é ü ß 中文 🙂", false, false),
        ("\u{2028}\u{feff}\u{200b}", false, false),
        ("\\u0000 spelled out", false, false),
    ];

    #[test]
    fn the_patterns_and_the_rules_agree_on_every_character() {
        let parameter = regex::Regex::new(PARAMETER_PATTERN).expect("parameter pattern");
        let body = regex::Regex::new(BODY_PATTERN).expect("body pattern");
        for (text, in_parameter, in_body) in CHARACTERS {
            assert_eq!(
                text.chars().any(forbidden_in_parameter),
                *in_parameter,
                "rule, parameter: {text:?}"
            );
            assert_eq!(
                text.chars().any(forbidden_in_body),
                *in_body,
                "rule, body: {text:?}"
            );
            assert_eq!(
                !parameter.is_match(text),
                *in_parameter,
                "pattern, parameter: {text:?}"
            );
            assert_eq!(!body.is_match(text), *in_body, "pattern, body: {text:?}");
        }
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let text = c.to_string();
            assert_eq!(
                !parameter.is_match(&text),
                forbidden_in_parameter(c),
                "parameter: U+{:04X}",
                u32::from(c)
            );
            assert_eq!(
                !body.is_match(&text),
                forbidden_in_body(c),
                "body: U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn parameters_are_refused_percent_decoded_and_named() {
        let problem = |e: Option<ApiError>| e.map(|e| e.to_string());
        assert!(
            in_query("q=a%00b").is_some_and(|e| e.to_string().contains("`q` holds U+0000")),
            "{:?}",
            problem(in_query("q=a%00b"))
        );
        assert!(
            in_query("kind=x&subject=%1b")
                .is_some_and(|e| e.to_string().contains("`subject` holds U+001B"))
        );
        assert!(in_query("a%00=1").is_some_and(|e| e.to_string().contains("name holds U+0000")));
        assert!(in_query("q=%C2%9B").is_some_and(|e| e.to_string().contains("U+009B")));
        for fine in [
            "",
            "q=a+b",
            "q=%2500",
            "q=%C3%A9",
            "q=%E2%80%A8",
            "limit=5&cursor=abc",
            "q=%FF",
        ] {
            assert!(in_query(fine).is_none(), "{fine}");
        }
    }
}
