//! RFC 3339 timestamps in UTC, whole seconds (`2024-05-01T12:00:00Z`): the one form reports write,
//! and the one `report merge` reads back to order shards. humantime does the calendar.

use std::time::{SystemTime, UNIX_EPOCH};

/// `time` as `YYYY-MM-DDTHH:MM:SSZ`; times before 1970 (a broken clock) clamp to the epoch.
pub fn rfc3339_utc(time: SystemTime) -> String {
    // humantime panics on times before the epoch.
    let time = time.max(UNIX_EPOCH);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Seconds since the Unix epoch of a timestamp in the form [`rfc3339_utc`] writes (a fraction of
/// a second is accepted and dropped); `None` for anything else.
pub fn parse_rfc3339_utc(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339(text).ok()?;
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2000-02-29 (leap day of a century leap year) 23:59:59.
        let t = UNIX_EPOCH + Duration::from_secs(951_868_799);
        assert_eq!(rfc3339_utc(t), "2000-02-29T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        assert_eq!(rfc3339_utc(t), "2024-05-01T12:00:00Z");
        // Whole seconds, and a clock before 1970 clamps instead of panicking.
        assert_eq!(
            rfc3339_utc(t + Duration::from_millis(999)),
            "2024-05-01T12:00:00Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn parse_inverts_format() {
        for secs in [
            0_i64,
            951_868_799,
            1_714_564_800,
            4_102_444_800,
            253_402_300_799,
        ] {
            let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
            assert_eq!(parse_rfc3339_utc(&rfc3339_utc(t)), Some(secs), "{secs}");
        }
        assert_eq!(
            parse_rfc3339_utc("2024-05-01T12:00:00.250Z"),
            Some(1_714_564_800)
        );
    }

    #[test]
    fn parse_rejects_other_forms() {
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00+02:00",
            "2024-13-01T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "20x4-05-01T12:00:00Z",
            "2024-05-01T12:00:00Zjunk",
            "2024-05-01T12:00:0éZ",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad}");
        }
    }
}
