//! Initial-backup planning (seed: the cloud agent's first backup sends the full
//! data volume): how long a customer's first backup takes at a given upload
//! bandwidth, and whether Physical Data Shipping (the first backup sent on a
//! drive) is advised instead.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

pub const DEFAULT_BANDWIDTH_MBPS: f64 = 100.0;
/// 1 kbit/s: the largest volume (u64::MAX bytes) takes 1.5e17 s, which fits the
/// whole seconds (u64) and stays finite in days; a smaller bandwidth would not.
pub const MIN_BANDWIDTH_MBPS: f64 = 0.001;
pub const DEFAULT_PHYSICAL_SHIPPING_AFTER_DAYS: f64 = 7.0;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// How initial backups are estimated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitialBackupOptions {
    /// A customer's upload bandwidth to the cloud, in Mbit/s (10^6 bits per second),
    /// shared by its machines; at least 0.001 (1 kbit/s), so that every duration fits in whole seconds.
    #[serde(default = "default_bandwidth")]
    #[schema(default = 100.0, minimum = 0.001, maximum = 1000000.0)]
    #[validate(range(min = MIN_BANDWIDTH_MBPS, max = 1_000_000.0, message = "bandwidth_mbps is at least 0.001 and at most 1000000"))]
    pub bandwidth_mbps: f64,
    /// Physical Data Shipping is advised for a customer whose initial backup
    /// would take longer than this many days.
    #[serde(default = "default_shipping_after")]
    #[schema(default = 7.0, exclusive_minimum = 0.0, maximum = 3650.0)]
    #[validate(range(
        exclusive_min = 0.0,
        max = 3650.0,
        message = "physical_shipping_after_days is more than 0 and at most 3650"
    ))]
    pub physical_shipping_after_days: f64,
}

fn default_bandwidth() -> f64 {
    DEFAULT_BANDWIDTH_MBPS
}

fn default_shipping_after() -> f64 {
    DEFAULT_PHYSICAL_SHIPPING_AFTER_DAYS
}

impl Default for InitialBackupOptions {
    fn default() -> Self {
        Self {
            bandwidth_mbps: DEFAULT_BANDWIDTH_MBPS,
            physical_shipping_after_days: DEFAULT_PHYSICAL_SHIPPING_AFTER_DAYS,
        }
    }
}

/// A customer's initial backup.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Whole seconds, rounded up.
    pub duration_seconds: u64,
    /// Days, to two decimals.
    pub duration_days: f64,
    pub physical_data_shipping: bool,
}

/// `data_size_bytes` sent at `bandwidth_mbps`: bytes x 8 / (Mbit/s x 10^6) seconds.
pub fn estimate(data_size_bytes: u64, options: &InitialBackupOptions) -> Estimate {
    let seconds = data_size_bytes as f64 * 8.0 / (options.bandwidth_mbps * 1e6);
    Estimate {
        duration_seconds: seconds.ceil() as u64,
        duration_days: (seconds / SECONDS_PER_DAY * 100.0).round() / 100.0,
        physical_data_shipping: seconds > options.physical_shipping_after_days * SECONDS_PER_DAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(bandwidth_mbps: f64, physical_shipping_after_days: f64) -> InitialBackupOptions {
        InitialBackupOptions {
            bandwidth_mbps,
            physical_shipping_after_days,
        }
    }

    #[test]
    fn the_full_volume_goes_over_the_bandwidth_and_long_uploads_go_by_drive() {
        const TB: u64 = 1_000_000_000_000;
        let cases = [
            // 2 TB at 100 Mbit/s: 2e12 x 8 / 1e8 = 160,000 s = 1.85 days, under a week.
            (
                "2 TB at 100 Mbit/s",
                2 * TB,
                at(100.0, 7.0),
                (160_000, 1.85, false),
            ),
            // The same 2 TB at 10 Mbit/s: 1,600,000 s = 18.52 days, over a week.
            (
                "2 TB at 10 Mbit/s",
                2 * TB,
                at(10.0, 7.0),
                (1_600_000, 18.52, true),
            ),
            // 1.85 days against a one-day threshold.
            (
                "over a lower threshold",
                2 * TB,
                at(100.0, 1.0),
                (160_000, 1.85, true),
            ),
            // Exactly at the threshold is not over it: 7 days = 604,800 s = 7.56e12 bytes at 100 Mbit/s.
            (
                "exactly the threshold",
                7_560_000_000_000,
                at(100.0, 7.0),
                (604_800, 7.0, false),
            ),
            (
                "one byte more",
                7_560_000_000_001,
                at(100.0, 7.0),
                (604_801, 7.0, true),
            ),
            // A fraction of a second rounds up: 1 byte = 8 bits at 1 Mbit/s = 8 µs.
            ("rounds up", 1, at(1.0, 7.0), (1, 0.0, false)),
            ("no data", 0, at(100.0, 7.0), (0, 0.0, false)),
            // Half a Mbit/s: 1 GB = 8e9 bits / 5e5 = 16,000 s.
            (
                "fractional bandwidth",
                1_000_000_000,
                at(0.5, 7.0),
                (16_000, 0.19, false),
            ),
        ];
        for (name, bytes, options, (seconds, days, shipping)) in cases {
            let estimate = estimate(bytes, &options);
            assert_eq!(
                (
                    estimate.duration_seconds,
                    estimate.duration_days,
                    estimate.physical_data_shipping
                ),
                (seconds, days, shipping),
                "{name}"
            );
        }
    }

    #[test]
    fn every_accepted_bandwidth_keeps_the_largest_volume_representable() {
        for bandwidth in [MIN_BANDWIDTH_MBPS, 1.0, 1_000_000.0] {
            let e = estimate(u64::MAX, &at(bandwidth, 7.0));
            let seconds = u64::MAX as f64 * 8.0 / (bandwidth * 1e6);
            assert!(
                seconds < u64::MAX as f64 && e.duration_seconds == seconds.ceil() as u64,
                "{bandwidth}: {e:?}"
            );
            assert!(
                e.duration_days.is_finite() && e.duration_days > 0.0,
                "{bandwidth}: {e:?}"
            );
        }
    }

    #[test]
    fn options_default_and_refuse_what_cannot_be_a_bandwidth_or_a_threshold() {
        let defaults: InitialBackupOptions = serde_json::from_str("{}").expect("defaults");
        assert_eq!(defaults, at(100.0, 7.0));
        let cases = [
            (at(100.0, 7.0), true),
            (at(0.0, 7.0), false),
            (at(-1.0, 7.0), false),
            (at(2e6, 7.0), false),
            (at(1e6, 7.0), true),
            (at(1.0, 0.0), false),
            (at(1.0, 3651.0), false),
            (at(0.001, 3650.0), true),
            (at(0.000_999, 7.0), false),
            (at(1e-300, 7.0), false),
        ];
        for (options, valid) in cases {
            assert_eq!(options.validate().is_ok(), valid, "{options:?}");
        }
        assert!(
            serde_json::from_str::<InitialBackupOptions>(r#"{"bandwidth": 5}"#).is_err(),
            "unknown fields are refused"
        );
    }
}
