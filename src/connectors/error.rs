//! What a connector call answers when it gets no usable answer.

use reqwest::StatusCode;
use serde::Deserialize;

/// The remote's answer or why there is none. Remote errors keep the remote's code and message.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ConnectorError {
    /// A final answer from the remote (4xx other than 429, or 5xx after all attempts).
    #[error("{system} answered {status}{}: {message}", code.as_ref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Remote {
        system: &'static str,
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// No answer after all attempts (timeouts, refused connections, repeated 429s).
    #[error("{system} unreachable after {attempts} attempts: {last}")]
    Unavailable {
        system: &'static str,
        attempts: usize,
        last: String,
    },
    /// An answer that is not what the contract says.
    #[error("{system} answered something unreadable: {0}", system = .1)]
    Decode(String, &'static str),
    /// The address is one this service does not contact (loopback, private, link-local).
    #[error("{system} at a refused address: {reason}")]
    NotAllowed {
        system: &'static str,
        reason: String,
    },
}

impl ConnectorError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Remote { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn remote_code(&self) -> Option<&str> {
        match self {
            Self::Remote { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn is_status(&self, status: u16) -> bool {
        self.status() == Some(status)
    }

    /// The cloud refused a write made against a version that is no longer current
    /// (409, code 1001): read again, then decide.
    pub fn is_version_conflict(&self) -> bool {
        self.is_status(409) && self.remote_code() == Some("1001")
    }

    /// Worth trying again later: the remote did not give a final answer.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Remote { status, .. } => matches!(*status, 408 | 429) || *status >= 500,
            Self::Unavailable { .. } => true,
            Self::Decode(..) | Self::NotAllowed { .. } => false,
        }
    }
}

/// Both systems answer `{"error": {"code": …, "message": …}}`; the cloud's token
/// endpoint answers `{"error": "access_denied", "error_description": …}` (its
/// `tokenError`); anything else keeps the status.
pub(super) fn remote_error(
    system: &'static str,
    status: StatusCode,
    body: &[u8],
) -> ConnectorError {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Api {
            error: Detail,
        },
        OAuth {
            error: String,
            error_description: Option<String>,
        },
    }
    #[derive(Deserialize)]
    struct Detail {
        code: Option<serde_json::Value>,
        message: Option<String>,
    }
    let (code, message) = match serde_json::from_slice::<Body>(body) {
        Ok(Body::Api { error }) => (
            error
                .code
                .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string)),
            error.message.unwrap_or_default(),
        ),
        Ok(Body::OAuth {
            error,
            error_description,
        }) => (Some(error), error_description.unwrap_or_default()),
        Err(_) => (
            None,
            status.canonical_reason().unwrap_or("error").to_string(),
        ),
    };
    ConnectorError::Remote {
        system,
        status: status.as_u16(),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectorError;

    fn remote(status: u16) -> ConnectorError {
        ConnectorError::Remote {
            system: "cloud",
            status,
            code: None,
            message: "m".into(),
        }
    }

    #[test]
    fn answers_the_remote_did_not_act_on_are_transient_other_4xx_final() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(remote(status).is_transient(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 422] {
            assert!(!remote(status).is_transient(), "{status}");
        }
    }
}
