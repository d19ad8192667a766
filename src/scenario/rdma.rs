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
        Some(d) if !crate::net::config::valid_ifname(d.get_ref()) => return Err(Refusal::at(
            d,
            format!(
                "[rdma] device = {:?}: a device name such as \"rxe0\" (letters, digits, up to 15)",
                d.get_ref()
            ),
        )),
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
