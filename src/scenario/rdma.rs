//! `[rdma]`: a Soft-RoCE device the stanza creates over the scenario's interface, and which of
//! its checks `[expect] rdma` asks for.

use toml::Spanned;

use super::duration::{duration, TIMEOUT_RANGE};
use super::error::Refusal;
use super::model::{Addressing, Rdma, RdmaCheck};
use super::raw::RawRdma;
use strum::VariantArray;

/// `[rdma]`, checked: Soft-RoCE needs its module in the plan and an interface with an address
/// (the round trips run against it).
pub(super) fn rdma_from(
    raw: Option<RawRdma>,
    load: &[String],
    addressing: &Addressing,
) -> Result<Option<Rdma>, Refusal> {
    let Some(raw) = raw else { return Ok(None) };
    let on = &raw.soft_roce;
    if !on.get_ref() {
        if let Some(at) = raw.device.as_ref().or(raw.timeout.as_ref()) {
            return Err(Refusal::at(
                at,
                "[rdma]: device and timeout configure soft_roce, which is false; set soft_roce = true or remove them",
            ));
        }
        return Ok(None);
    }
    let listed = load.iter().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|n| n.replace('-', "_") == "rdma_rxe")
    });
    if !listed {
        return Err(Refusal::at(
            on,
            "[rdma] soft_roce: [initrd] load does not list rdma_rxe; add it (with ib_uverbs and rdma_ucm for the userspace tests)",
        ));
    }
    if matches!(addressing, Addressing::None) {
        return Err(Refusal::at(
            on,
            "[rdma] soft_roce: [network] configures no address; set dhcp or static (the device goes on that interface)",
        ));
    }
    let device = match &raw.device {
        Some(d) if !crate::net::config::valid_ifname(d.get_ref()) => {
            return Err(Refusal::at(
                d,
                format!(
                "[rdma] device = {:?}: a device name such as \"rxe0\" (letters, digits, up to 15)",
                d.get_ref()
            ),
            ))
        }
        Some(d) => d.get_ref().clone(),
        None => "rxe0".into(),
    };
    let timeout = match &raw.timeout {
        Some(t) => duration("[rdma] timeout", t, &TIMEOUT_RANGE)?,
        None => std::time::Duration::from_secs(20),
    };
    Ok(Some(Rdma { device, timeout }))
}

/// `[expect] rdma`: every check when `[rdma]` is on and the key is not given; an error when
/// there is no device to check.
pub(super) fn rdma_checks(
    rdma: Option<&Rdma>,
    asked: Option<Spanned<Vec<RdmaCheck>>>,
) -> Result<Vec<RdmaCheck>, Refusal> {
    match (rdma, asked) {
        (Some(_), None) => Ok(RdmaCheck::VARIANTS.to_vec()),
        (None, Some(a)) if !a.get_ref().is_empty() => Err(Refusal::at(
            &a,
            "[expect] rdma: there is no RDMA device to check; add [rdma] soft_roce = true",
        )),
        (Some(_), Some(a)) if a.get_ref().is_empty() => Ok(RdmaCheck::VARIANTS.to_vec()),
        (_, a) => Ok(a.map(Spanned::into_inner).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scenario::testing::{parsed, refused_at, with};

    fn rdma(table: &str) -> String {
        with(&format!(
            "load = [\"rdma_rxe\"]\n[network]\ndhcp = \"udhcpc\"\n[rdma]\n{table}"
        ))
    }

    #[test]
    fn soft_roce_checks_everything_unless_told() {
        let s = parsed(&rdma("soft_roce = true\ntimeout = \"5s\""));
        let r = s.rdma.unwrap();
        assert_eq!(
            (r.device.as_str(), r.timeout),
            ("rxe0", Duration::from_secs(5))
        );
        assert_eq!(s.expect.rdma, RdmaCheck::VARIANTS);
        let s = parsed(&rdma("soft_roce = true\n[expect]\nrdma = [\"cm\"]"));
        assert_eq!(s.expect.rdma, [RdmaCheck::Cm]);
        assert!(parsed(&rdma("soft_roce = false")).rdma.is_none());
    }

    #[test]
    fn each_bad_value_is_refused_where_it_is_written() {
        for (table, at, says) in [
            (
                "soft_roce = false\ndevice = \"rxe1\"",
                "\"rxe1\"",
                "which is false",
            ),
            (
                "soft_roce = true\ndevice = \"rxe 0\"",
                "\"rxe 0\"",
                "a device name such as",
            ),
            (
                "soft_roce = true\ntimeout = \"0s\"",
                "\"0s\"",
                "[rdma] timeout = \"0s\": out of range",
            ),
            (
                "soft_roce = true\ntimeout = \"10000h\"",
                "\"10000h\"",
                "out of range",
            ),
            ("soft_roce = \"yes\"", "\"yes\"", "invalid type: string"),
            ("device = \"rxe0\"", "[rdma]", "missing field `soft_roce`"),
        ] {
            refused_at(&rdma(table), at, says);
        }
        refused_at(
            &with("[network]\ndhcp = \"udhcpc\"\n[rdma]\nsoft_roce = true"),
            "true",
            "does not list rdma_rxe",
        );
        refused_at(
            &with("load = [\"rdma_rxe\"]\n[rdma]\nsoft_roce = true"),
            "true",
            "configures no address",
        );
    }

    #[test]
    fn the_key_suggested_is_one_of_this_table() {
        let e = refused_at(
            &rdma("soft_roce = true\ndevce = \"x\""),
            "devce",
            "unknown field",
        );
        assert!(e.ends_with("did you mean `device`?"), "{e}");
    }
}
