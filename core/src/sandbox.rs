//! What the worker and the API share about a run's sandbox: the job's network choice
//! and what a worker reports about the isolation it enforces.

use serde::{Deserialize, Serialize};

/// A job's network inside its sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// An empty network namespace: no interface but a down loopback.
    None,
    /// The internet, but not the worker host's loopback, private, link-local or
    /// metadata addresses (the HTTP targets' address rules).
    #[default]
    Outbound,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Outbound => "outbound",
        }
    }

    pub fn parse(text: &str) -> Option<Network> {
        match text {
            "none" => Some(Network::None),
            "outbound" => Some(Network::Outbound),
            _ => None,
        }
    }
}

/// What a worker enforces, as registered and shown by `GET /api/v1/workers`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SandboxReport {
    /// Runs start in a sandbox of their own (`JOBCENTER_SANDBOX=on`, the default).
    pub enabled: bool,
    /// Protections this worker cannot enforce on this host, in words (empty: none).
    pub unenforced: Vec<String>,
}
