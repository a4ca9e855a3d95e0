//! When a job runs by itself, on the wire: `{"kind": "manual" | "interval" | "cron", ...}`.

use crate::tagged_union::{self, Variant};
use jobcenter_core::schedule::{DstGap, DstRepeat, ScheduleSpec};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::{schema::Schema, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// When a job runs by itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduleBody {
    Manual(ManualSchedule),
    Interval(IntervalSchedule),
    Cron(CronSchedule),
}

/// Only when triggered.
// Other fields are ignored, as they were when `manual` was a unit variant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ManualSchedule {}

/// Every `every_seconds` seconds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntervalSchedule {
    pub every_seconds: u64,
}

/// A 5-field cron expression, or 6 fields with seconds first, in an IANA time zone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CronSchedule {
    pub expression: String,
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default, deserialize_with = "dst_gap_field")]
    pub dst_gap: DstGapBody,
    #[serde(default, deserialize_with = "dst_repeat_field")]
    pub dst_repeat: DstRepeatBody,
}

fn variants() -> Vec<Variant> {
    vec![
        Variant::of::<ManualSchedule>("manual"),
        Variant::of::<IntervalSchedule>("interval"),
        Variant::of::<CronSchedule>("cron"),
    ]
}

impl PartialSchema for ScheduleBody {
    fn schema() -> RefOr<Schema> {
        tagged_union::schema("When a job runs by itself.", &variants())
    }
}

impl ToSchema for ScheduleBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        tagged_union::components(variants(), schemas);
    }
}

/// Fields inside an internally tagged enum lose their JSON path in serde: these name
/// themselves (`invalid field `…``), so that a 400 names `schedule.dst_gap`.
fn dst_gap_field<'de, D: Deserializer<'de>>(de: D) -> Result<DstGapBody, D::Error> {
    DstGapBody::deserialize(de)
        .map_err(|e| serde::de::Error::custom(format!("invalid field `dst_gap`: {e}")))
}

fn dst_repeat_field<'de, D: Deserializer<'de>>(de: D) -> Result<DstRepeatBody, D::Error> {
    DstRepeatBody::deserialize(de)
        .map_err(|e| serde::de::Error::custom(format!("invalid field `dst_repeat`: {e}")))
}

fn utc() -> String {
    "UTC".to_string()
}

/// A matching local time that does not exist (spring-forward gap): `next` runs at the
/// first valid instant after the gap (default), `skip` does not run.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DstGapBody {
    #[default]
    Next,
    Skip,
}

/// A matching local time that occurs twice (fall-back): `once` runs at its first
/// occurrence (default), `twice` at both.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DstRepeatBody {
    #[default]
    Once,
    Twice,
}

impl From<DstGapBody> for DstGap {
    fn from(body: DstGapBody) -> Self {
        match body {
            DstGapBody::Next => DstGap::Next,
            DstGapBody::Skip => DstGap::Skip,
        }
    }
}

impl From<DstGap> for DstGapBody {
    fn from(gap: DstGap) -> Self {
        match gap {
            DstGap::Next => DstGapBody::Next,
            DstGap::Skip => DstGapBody::Skip,
        }
    }
}

impl From<DstRepeatBody> for DstRepeat {
    fn from(body: DstRepeatBody) -> Self {
        match body {
            DstRepeatBody::Once => DstRepeat::Once,
            DstRepeatBody::Twice => DstRepeat::Twice,
        }
    }
}

impl From<DstRepeat> for DstRepeatBody {
    fn from(repeat: DstRepeat) -> Self {
        match repeat {
            DstRepeat::Once => DstRepeatBody::Once,
            DstRepeat::Twice => DstRepeatBody::Twice,
        }
    }
}

impl From<ScheduleBody> for ScheduleSpec {
    fn from(body: ScheduleBody) -> Self {
        match body {
            ScheduleBody::Manual(ManualSchedule {}) => ScheduleSpec::Manual,
            ScheduleBody::Interval(IntervalSchedule { every_seconds }) => {
                ScheduleSpec::Interval { every_seconds }
            }
            ScheduleBody::Cron(CronSchedule {
                expression,
                timezone,
                dst_gap,
                dst_repeat,
            }) => ScheduleSpec::Cron {
                expression,
                timezone,
                dst_gap: dst_gap.into(),
                dst_repeat: dst_repeat.into(),
            },
        }
    }
}

impl From<ScheduleSpec> for ScheduleBody {
    fn from(spec: ScheduleSpec) -> Self {
        match spec {
            ScheduleSpec::Manual => ScheduleBody::Manual(ManualSchedule {}),
            ScheduleSpec::Interval { every_seconds } => {
                ScheduleBody::Interval(IntervalSchedule { every_seconds })
            }
            ScheduleSpec::Cron {
                expression,
                timezone,
                dst_gap,
                dst_repeat,
            } => ScheduleBody::Cron(CronSchedule {
                expression,
                timezone,
                dst_gap: dst_gap.into(),
                dst_repeat: dst_repeat.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ScheduleBody;
    use serde_json::json;

    /// The wire format of every kind, with defaults filled in, reads and writes unchanged.
    #[test]
    fn each_kind_round_trips() {
        for wire in [
            json!({"kind": "manual"}),
            json!({"kind": "interval", "every_seconds": 60}),
            json!({"kind": "cron", "expression": "0 3 * * *", "timezone": "Europe/Paris", "dst_gap": "skip", "dst_repeat": "twice"}),
        ] {
            let body: ScheduleBody = serde_json::from_value(wire.clone()).unwrap();
            assert_eq!(serde_json::to_value(body).unwrap(), wire);
        }
        let extra = json!({"kind": "interval", "every_seconds": 60, "jitter": 1});
        assert!(serde_json::from_value::<ScheduleBody>(extra).is_err());
    }
}
