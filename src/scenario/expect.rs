//! `[expect]`: what a passing boot shows (or the failure it is expected to show).

use serde::de::IntoDeserializer;
use toml::Spanned;

use super::duration::{duration, TIMEOUT_RANGE};
use super::error::Refusal;
use super::model::{Addressing, Expect, LeaseExpect};
use super::network::validate_cidr;
use super::raw::{RawExpect, RawLease, RawShellStep};
use super::DEFAULT_TIMEOUT;
use crate::console::ShellStep;
use crate::verdict::cause::CauseKind;
use crate::verdict::phases::Phase;

/// `[expect]` but its `rdma` key, which [`super::rdma::rdma_checks`] reads.
pub(super) fn expect_from(
    raw: RawExpect,
    interface: &str,
    addressing: &Addressing,
) -> Result<Expect, Refusal> {
    let timeout = match &raw.timeout {
        Some(t) => duration("[expect] timeout", t, &TIMEOUT_RANGE)?,
        None => DEFAULT_TIMEOUT,
    };
    let phase_timeouts = raw
        .phases
        .iter()
        .map(|(name, limit)| {
            let key = format!("[expect.phases] {}", name.get_ref());
            Ok((phase(name)?, duration(&key, limit, &TIMEOUT_RANGE)?))
        })
        .collect::<Result<Vec<_>, Refusal>>()?;
    let failure = raw
        .failure
        .as_ref()
        .map(|f| {
            f.get_ref()
                .parse::<CauseKind>()
                .map_err(|e| Refusal::at(f, format!("[expect] failure: {e}")))
        })
        .transpose()?;
    if let Some(subnet) = &raw.address {
        validate_cidr(subnet.get_ref()).map_err(|m| {
            Refusal::at(
                subnet,
                format!("[expect] address = {:?}: {m}", subnet.get_ref()),
            )
        })?;
        if matches!(addressing, Addressing::None) {
            return Err(Refusal::at(
                subnet,
                format!("[expect] address: [network] configures no address on {interface}; set dhcp or static"),
            ));
        }
    }
    for pattern in raw.console.iter().chain(&raw.not_console) {
        regex(pattern)?;
    }
    let shell = raw
        .shell
        .into_iter()
        .map(shell_step)
        .collect::<Result<Vec<_>, _>>()?;
    let lease = raw.lease.map(lease).transpose()?;
    Ok(Expect {
        modules_in_order: raw.modules_in_order.unwrap_or(true),
        address: raw.address.map(Spanned::into_inner),
        failure,
        timeout,
        phase_timeouts,
        console: raw.console.into_iter().map(Spanned::into_inner).collect(),
        not_console: raw
            .not_console
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        shell,
        lease,
        rdma: Vec::new(),
    })
}

/// A phase named by its serde name; serde's message lists them (and `keys` suggests one).
fn phase(name: &Spanned<String>) -> Result<Phase, Refusal> {
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        name.get_ref().as_str().into_deserializer();
    serde::Deserialize::deserialize(de).map_err(|e: serde::de::value::Error| {
        let mut message = format!(
            "[expect.phases] {:?} is not a boot phase: {e}",
            name.get_ref()
        );
        if let Some(best) = super::keys::suggestion(&e.to_string()) {
            message.push_str(&format!("; did you mean {best:?}?"));
        }
        Refusal::at(name, message)
    })
}

fn regex(pattern: &Spanned<String>) -> Result<(), Refusal> {
    regex::Regex::new(pattern.get_ref()).map(drop).map_err(|e| {
        Refusal::at(
            pattern,
            format!(
                "[expect] pattern {:?} is not a regular expression: {e}",
                pattern.get_ref()
            ),
        )
    })
}

fn shell_step(raw: RawShellStep) -> Result<ShellStep, Refusal> {
    let command = raw.command.get_ref();
    if command.trim().is_empty() || command.contains('\n') {
        return Err(Refusal::at(
            &raw.command,
            "[[expect.shell]] command: one non-empty line",
        ));
    }
    for p in &raw.patterns {
        regex(p)?;
    }
    Ok(ShellStep {
        command: raw.command.into_inner(),
        patterns: raw.patterns.into_iter().map(Spanned::into_inner).collect(),
        status: raw.status,
    })
}

/// `[expect] lease`: the client-identifier through the one parser (`net::addr`), as every
/// other client-id is; the address an IPv4 address.
fn lease(raw: RawLease) -> Result<LeaseExpect, Refusal> {
    raw.client_id
        .get_ref()
        .parse::<crate::net::addr::ClientId>()
        .map_err(|e| Refusal::at(&raw.client_id, format!("[expect] lease: client_id: {e}")))?;
    raw.address
        .get_ref()
        .parse::<std::net::Ipv4Addr>()
        .map_err(|e| {
            Refusal::at(
                &raw.address,
                format!("[expect] lease: address = {:?}: {e}", raw.address.get_ref()),
            )
        })?;
    Ok(LeaseExpect {
        client_id: raw.client_id.into_inner(),
        address: raw.address.into_inner(),
    })
}
