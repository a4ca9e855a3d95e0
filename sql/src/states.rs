//! State enums shared by every component, spelled as in the database and the API.
//!
//! The allowed run transitions live in [`RunState::can_become`] and nowhere else.

use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// `queued → running → succeeded | failed | timed_out | cancelled`; `skipped` for a
    /// tick dropped by the skip policy; `queued → cancelled` when cancelled or disabled;
    /// `running → queued` when a worker shutting down hands an unfinished run back.
    RunState {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        TimedOut => "timed_out",
        Cancelled => "cancelled",
        Skipped => "skipped",
    }
);

text_enum!(
    /// What created a run (`parent`: a child job's run, started by its parent's outcome).
    RunTrigger {
        Manual => "manual",
        Schedule => "schedule",
        Webhook => "webhook",
        Retry => "retry",
        Parent => "parent",
        Backfill => "backfill",
    }
);

text_enum!(
    /// What happens when a run is due while another of the same job is in progress.
    Concurrency {
        Allow => "allow",
        Queue => "queue",
        Skip => "skip",
    }
);

text_enum!(
    Role {
        Admin => "admin",
        Developer => "developer",
    }
);

impl RunState {
    /// True for states a run never leaves.
    pub fn is_final(self) -> bool {
        !matches!(self, RunState::Queued | RunState::Running)
    }

    /// The run state machine: the only place that says which transitions exist.
    pub fn can_become(self, next: RunState) -> bool {
        use RunState::*;
        matches!(
            (self, next),
            (Queued, Running)
                | (Queued, Cancelled)
                | (Queued, Skipped)
                | (Running, Succeeded)
                | (Running, Failed)
                | (Running, TimedOut)
                | (Running, Cancelled)
                | (Running, Queued)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::RunState::{self, *};

    #[test]
    fn transition_table() {
        let allowed = [
            (Queued, Running),
            (Queued, Cancelled),
            (Queued, Skipped),
            (Running, Succeeded),
            (Running, Failed),
            (Running, TimedOut),
            (Running, Cancelled),
            (Running, Queued),
        ];
        for &from in RunState::ALL {
            for &to in RunState::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        for &state in RunState::ALL {
            let leaves = RunState::ALL.iter().any(|&to| state.can_become(to));
            assert_eq!(state.is_final(), !leaves, "{state}");
        }
    }

    #[test]
    fn text_round_trip() {
        for &state in RunState::ALL {
            assert_eq!(RunState::parse(state.as_str()), Some(state));
        }
        assert_eq!(RunState::parse("exploded"), None);
    }
}
