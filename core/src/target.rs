//! What a job runs: the `target` field of a job, stored as jsonb and sent over the API.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest command line accepted, in arguments; a limit on everything.
pub const MAX_COMMAND_ARGS: usize = 256;

/// Largest HTTP request body a job may send (bytes).
pub const MAX_HTTP_BODY_BYTES: usize = 1 << 20;
/// Most headers an HTTP target may set.
pub const MAX_HTTP_HEADERS: usize = 64;
/// Methods an HTTP target may use.
pub const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The `target` of a job: a command, an HTTP call, or an uploaded artifact (binary or bundle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// Run `command[0]` with the remaining elements as arguments (no shell unless asked).
    Command { command: Vec<String> },
    /// Send one HTTP request; a 2xx answer is success.
    Http(HttpRequest),
    /// Run an uploaded artifact of the job's project: the file itself, or with an
    /// `entrypoint`, that path inside the unpacked bundle (.tar.gz or .zip).
    /// `version` None follows the latest version at the moment the run starts.
    Binary(BinaryTarget),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryTarget {
    pub artifact: String,
    #[serde(default)]
    pub version: Option<i32>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub entrypoint: Option<String>,
}

/// An HTTP call: `method` to `url` (http or https) with `headers` and `body`. Its `Debug`
/// hides the headers' values (an `Authorization`, a cookie) and the body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    #[serde(default = "get")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &crate::config::RedactedValues(&self.headers))
            .field(
                "body",
                &self.body.as_ref().map(|_| crate::config::Secret::new("")),
            )
            .finish()
    }
}

fn get() -> String {
    "GET".into()
}

/// Why a target is invalid; `field` is the JSON path in the job body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidTarget {
    pub field: &'static str,
    pub reason: String,
}

impl Target {
    /// Checks what serde cannot: non-empty program, bounded argument count, no NUL bytes.
    pub fn validate(&self) -> Result<(), InvalidTarget> {
        match self {
            Target::Command { command } => {
                let invalid = |reason: &str| InvalidTarget {
                    field: "target.command",
                    reason: reason.to_string(),
                };
                if command.first().is_none_or(|program| program.is_empty()) {
                    return Err(invalid("must name a program as its first element"));
                }
                if command.len() > MAX_COMMAND_ARGS {
                    return Err(invalid(&format!("at most {MAX_COMMAND_ARGS} elements")));
                }
                if command.iter().any(|arg| arg.contains('\0')) {
                    return Err(invalid("must not contain NUL bytes"));
                }
                Ok(())
            }
            Target::Http(request) => request.validate(),
            Target::Binary(binary) => binary.validate(),
        }
    }
}

impl HttpRequest {
    fn validate(&self) -> Result<(), InvalidTarget> {
        let invalid = |field: &'static str, reason: String| InvalidTarget { field, reason };
        if !HTTP_METHODS.contains(&self.method.as_str()) {
            return Err(invalid(
                "target.method",
                format!("must be one of {}", HTTP_METHODS.join(", ")),
            ));
        }
        let scheme_ok = self.url.starts_with("http://") || self.url.starts_with("https://");
        let host = self
            .url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
            .unwrap_or("");
        if !scheme_ok
            || host.is_empty()
            || self.url.len() > 2048
            || self.url.contains(char::is_whitespace)
        {
            return Err(invalid(
                "target.url",
                "must be an absolute http:// or https:// URL of at most 2048 characters".into(),
            ));
        }
        if host.contains('@') {
            return Err(invalid(
                "target.url",
                "must not carry credentials; use an Authorization header".into(),
            ));
        }
        if self.headers.len() > MAX_HTTP_HEADERS {
            return Err(invalid(
                "target.headers",
                format!("at most {MAX_HTTP_HEADERS} headers"),
            ));
        }
        for (name, value) in &self.headers {
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !name_ok || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(invalid(
                    "target.headers",
                    format!("{name:?} is not a valid header"),
                ));
            }
            if name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("content-length") {
                return Err(invalid(
                    "target.headers",
                    format!("{name} is set by the worker"),
                ));
            }
        }
        if self
            .body
            .as_ref()
            .is_some_and(|b| b.len() > MAX_HTTP_BODY_BYTES)
        {
            return Err(invalid(
                "target.body",
                format!("at most {MAX_HTTP_BODY_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

impl Target {
    /// The target's kind as spelled in the API (`command`, `http`, `binary`): a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Command { .. } => "command",
            Target::Http(_) => "http",
            Target::Binary(_) => "binary",
        }
    }
}

impl BinaryTarget {
    fn validate(&self) -> Result<(), InvalidTarget> {
        let invalid = |field: &'static str, reason: &str| InvalidTarget {
            field,
            reason: reason.to_string(),
        };
        let name_ok = !self.artifact.is_empty()
            && self.artifact.len() <= 128
            && self
                .artifact
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !name_ok {
            return Err(invalid(
                "target.artifact",
                "must be 1 to 128 of [A-Za-z0-9._-]",
            ));
        }
        if self.version.is_some_and(|v| v < 1) {
            return Err(invalid(
                "target.version",
                "must be a version number (1 or more), or null for the latest",
            ));
        }
        if self.args.len() > MAX_COMMAND_ARGS || self.args.iter().any(|a| a.contains('\0')) {
            return Err(invalid(
                "target.args",
                "at most 256 arguments, without NUL bytes",
            ));
        }
        if let Some(entrypoint) = &self.entrypoint {
            let path = std::path::Path::new(entrypoint);
            let inside = !entrypoint.is_empty()
                && path.components().all(|c| {
                    matches!(
                        c,
                        std::path::Component::Normal(_) | std::path::Component::CurDir
                    )
                });
            if !inside {
                return Err(invalid(
                    "target.entrypoint",
                    "must be a relative path inside the bundle",
                ));
            }
        }
        Ok(())
    }
}

/// Environment a job adds to its runs (`env`), validated for names a process accepts.
pub fn validate_env(env: &BTreeMap<String, String>) -> Result<(), InvalidTarget> {
    for (name, value) in env {
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(InvalidTarget {
                field: "env",
                reason: format!("{name:?} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"),
            });
        }
        if name.starts_with("JOBCENTER_") {
            return Err(InvalidTarget {
                field: "env",
                reason: format!("{name} is reserved: JOBCENTER_ variables are set by the worker"),
            });
        }
        if value.contains('\0') {
            return Err(InvalidTarget {
                field: "env",
                reason: format!("value of {name} contains a NUL byte"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_hides_http_header_values_and_body() {
        let request = super::HttpRequest {
            method: "POST".into(),
            url: "https://example.com/hook".into(),
            headers: [("Authorization".to_string(), "Bearer s3cret".to_string())].into(),
            body: Some("s3cret body".into()),
        };
        let printed = format!("{:?}", super::Target::Http(request));
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("Authorization") && printed.contains("[redacted]"),
            "{printed}"
        );
        assert!(printed.contains("https://example.com/hook"), "{printed}");
    }

    use super::*;

    #[test]
    fn command_target_rules() {
        let ok = Target::Command {
            command: vec!["true".into()],
        };
        assert!(ok.validate().is_ok());
        let empty = Target::Command { command: vec![] };
        assert_eq!(empty.validate().unwrap_err().field, "target.command");
        let blank = Target::Command {
            command: vec!["".into()],
        };
        assert!(blank.validate().is_err());
    }

    #[test]
    fn http_target_rules() {
        let request = |method: &str, url: &str| {
            Target::Http(HttpRequest {
                method: method.into(),
                url: url.into(),
                headers: BTreeMap::new(),
                body: None,
            })
        };
        assert!(request("POST", "https://example.com/hook?x=1")
            .validate()
            .is_ok());
        let field = |t: Target| t.validate().unwrap_err().field;
        assert_eq!(
            field(request("BREW", "http://example.com")),
            "target.method"
        );
        assert_eq!(field(request("GET", "ftp://example.com")), "target.url");
        assert_eq!(field(request("GET", "http://")), "target.url");
        assert_eq!(
            field(request("GET", "http://user:pw@example.com/")),
            "target.url"
        );
        let mut bad_header = HttpRequest {
            method: "GET".into(),
            url: "http://example.com".into(),
            headers: BTreeMap::new(),
            body: None,
        };
        bad_header
            .headers
            .insert("X-Ok".into(), "a\r\nInjected: yes".into());
        assert_eq!(field(Target::Http(bad_header)), "target.headers");
        let parsed: Target =
            serde_json::from_str(r#"{"kind":"http","url":"http://example.com"}"#).unwrap();
        assert!(matches!(parsed, Target::Http(HttpRequest { ref method, .. }) if method == "GET"));
    }

    #[test]
    fn unknown_kind_is_a_serde_error() {
        let err = serde_json::from_str::<Target>(r#"{"kind":"teleport"}"#).unwrap_err();
        assert!(err.to_string().contains("teleport"), "{err}");
    }

    #[test]
    fn env_names_are_checked() {
        let mut env = BTreeMap::new();
        env.insert("GOOD_1".to_string(), "x".to_string());
        assert!(validate_env(&env).is_ok());
        env.insert("1BAD".to_string(), "x".to_string());
        assert!(validate_env(&env).is_err());
        let mut reserved = BTreeMap::new();
        reserved.insert("JOBCENTER_RUN_ID".to_string(), "x".to_string());
        assert!(validate_env(&reserved).is_err());
    }
}
