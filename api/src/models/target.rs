//! What a job runs, on the wire: `{"kind": "command" | "http" | "binary", ...}`.

use crate::tagged_union::{self, Variant};
use jobcenter_core::target::{self as core, HttpRequest, Target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::openapi::{schema::Schema, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// What a job runs.
// Its `Debug` is the core target's, which hides HTTP header values.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetBody {
    Command(CommandTarget),
    Http(HttpTarget),
    Binary(BinaryTarget),
}

/// Runs `command[0]` with the rest as arguments, without a shell unless you name one.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandTarget {
    pub command: Vec<String>,
}

/// Sends one HTTP request (default method GET); a 2xx answer is success. The run's
/// result is `{"status": N, "body": "<start of the body>"}`. Link-local and cloud
/// metadata addresses are refused, private ones unless the admin allows them.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTarget {
    #[serde(default = "http_get")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
}

/// Runs an uploaded artifact of the project: `version` null follows the latest version
/// when the run starts, a number pins it. A bundle (.tar.gz, .zip) names the
/// `entrypoint` to run inside it. The version that ran is the run's `artifact_version`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
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

fn http_get() -> String {
    "GET".to_string()
}

fn variants() -> Vec<Variant> {
    vec![
        Variant::of::<CommandTarget>("command"),
        Variant::of::<HttpTarget>("http"),
        Variant::of::<BinaryTarget>("binary"),
    ]
}

impl PartialSchema for TargetBody {
    fn schema() -> RefOr<Schema> {
        tagged_union::schema("What a job runs.", &variants())
    }
}

impl ToSchema for TargetBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        tagged_union::components(variants(), schemas);
    }
}

impl std::fmt::Debug for TargetBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Target::from(self.clone()).fmt(f)
    }
}

impl From<TargetBody> for Target {
    fn from(body: TargetBody) -> Self {
        match body {
            TargetBody::Command(CommandTarget { command }) => Target::Command { command },
            TargetBody::Http(HttpTarget {
                method,
                url,
                headers,
                body,
            }) => Target::Http(HttpRequest {
                method,
                url,
                headers,
                body,
            }),
            TargetBody::Binary(BinaryTarget {
                artifact,
                version,
                args,
                entrypoint,
            }) => Target::Binary(core::BinaryTarget {
                artifact,
                version,
                args,
                entrypoint,
            }),
        }
    }
}

impl From<Target> for TargetBody {
    fn from(target: Target) -> Self {
        match target {
            Target::Command { command } => TargetBody::Command(CommandTarget { command }),
            Target::Http(HttpRequest {
                method,
                url,
                headers,
                body,
            }) => TargetBody::Http(HttpTarget {
                method,
                url,
                headers,
                body,
            }),
            Target::Binary(core::BinaryTarget {
                artifact,
                version,
                args,
                entrypoint,
            }) => TargetBody::Binary(BinaryTarget {
                artifact,
                version,
                args,
                entrypoint,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TargetBody;
    use serde_json::json;

    /// The wire format of every kind, with defaults filled in, reads and writes unchanged.
    #[test]
    fn each_kind_round_trips() {
        for wire in [
            json!({"kind": "command", "command": ["sh", "-c", "echo hi"]}),
            json!({"kind": "http", "method": "POST", "url": "https://example.com/", "headers": {"a": "b"}, "body": "x"}),
            json!({"kind": "binary", "artifact": "tool", "version": 2, "args": ["-v"], "entrypoint": null}),
        ] {
            let body: TargetBody = serde_json::from_value(wire.clone()).unwrap();
            assert_eq!(serde_json::to_value(body).unwrap(), wire);
        }
        let extra = json!({"kind": "command", "command": ["true"], "shell": true});
        assert!(serde_json::from_value::<TargetBody>(extra).is_err());
    }
}
