//! Durations a scenario gives (`"120s"`, `"2m"`), each within a stated range, checked where it is
//! written. Without a bound, `timeout = "18446744073709551615s"` parsed and then overflowed the
//! `Instant` it was added to, in the middle of a run.

use std::ops::RangeInclusive;
use std::time::Duration;

use toml::Spanned;

use super::error::Refusal;

/// Timeouts (`[expect] timeout`, `[expect.phases]`, `[rdma] timeout`): more than zero, and a
/// day at most (a TCG boot of a distribution initrd takes minutes).
pub const TIMEOUT_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 60 * 60);

/// `[network.dhcp_server] lease_time`: dnsmasq's minimum (2 minutes) to a year.
pub const LEASE_TIME_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(120)..=Duration::from_secs(365 * 24 * 60 * 60);

/// `value` as a duration in `range`; `key` is how the message names it (`[expect] timeout`).
pub(super) fn duration(
    key: &str,
    value: &Spanned<String>,
    range: &RangeInclusive<Duration>,
) -> Result<Duration, Refusal> {
    let text = value.get_ref();
    let (low, high) = (words(*range.start()), words(*range.end()));
    let d = humantime::parse_duration(text).map_err(|e| {
        Refusal::at(
            value,
            format!("{key} = {text:?}: {e}; write a duration from {low} to {high}, e.g. \"120s\" or \"2m\""),
        )
    })?;
    if !range.contains(&d) {
        return Err(Refusal::at(
            value,
            format!("{key} = {text:?}: out of range; write a duration from {low} to {high}"),
        ));
    }
    Ok(d)
}

/// A bound in the unit a person would write it in: `1s`, `2m`, `24h`, `365d`.
fn words(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s >= 2 * 86400 && s % 86400 == 0 => format!("{}d", s / 86400),
        _ if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Spanned<String> {
        #[derive(serde::Deserialize)]
        struct T {
            v: Spanned<String>,
        }
        toml::from_str::<T>(&format!("v = {text:?}")).unwrap().v
    }

    #[test]
    fn durations_are_read_within_their_range() {
        let t = |s| duration("[expect] timeout", &at(s), &TIMEOUT_RANGE);
        assert_eq!(t("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(t("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(t("24h"), Ok(Duration::from_secs(86400)));
        for (bad, says) in [
            ("0s", "out of range; write a duration from 1s to 24h"),
            ("999ms", "out of range"),
            ("25h", "out of range"),
            ("18446744073709551615s", "out of range"),
            ("99999999999999999999999s", "number is too large"),
            ("-1s", "e.g. \"120s\""),
            ("soon", "e.g. \"120s\""),
            ("", "e.g. \"120s\""),
        ] {
            let e = t(bad).unwrap_err();
            assert_eq!(e.at, 4, "the value's place in `v = …`");
            assert!(
                e.message
                    .starts_with(&format!("[expect] timeout = {bad:?}: ")),
                "{e:?}"
            );
            assert!(e.message.contains(says), "{bad}: {e:?}");
        }
    }
}
