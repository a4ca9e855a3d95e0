//! What a job runs: the `target` field of a job, stored as jsonb and sent over the API.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest command line accepted, in arguments; a limit on everything.
pub const MAX_COMMAND_ARGS: usize = 256;

/// The `target` of a job. Only `command` is executable today; `binary` and `http`
/// are part of the public contract and arrive with artifacts and HTTP targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// Run `command[0]` with the remaining elements as arguments (no shell unless asked).
    Command { command: Vec<String> },
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
        }
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
