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
    let client_id = raw
        .client_id
        .get_ref()
        .parse::<crate::net::addr::ClientId>()
        .map_err(|e| Refusal::at(&raw.client_id, format!("[expect] lease: client_id: {e}")))?;
    let address = raw
        .address
        .get_ref()
        .parse::<std::net::Ipv4Addr>()
        .map_err(|e| {
            Refusal::at(
                &raw.address,
                format!("[expect] lease: address = {:?}: {e}", raw.address.get_ref()),
            )
        })?;
    Ok(LeaseExpect { client_id, address })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::scenario::testing::{parsed, refused_at, with};

    fn expect(keys: &str) -> String {
        with(&format!("[network]\ndhcp = \"udhcpc\"\n[expect]\n{keys}"))
    }

    #[test]
    fn a_good_expect_is_kept_as_written() {
        let s = parsed(&expect(
            "timeout = \"2m\"\nfailure = \"unknown-symbol\"\naddress = \"10.0.2.0/24\"\n\
             console = [\"a+\"]\nlease = { client_id = \"ff:00:01\", address = \"10.77.0.5\" }\n\
             [expect.phases]\nipxe-dhcp = \"30s\"\n[[expect.shell]]\ncommand = \"ip a\"\npatterns = [\"eth0\"]",
        ));
        assert_eq!(s.expect.timeout, Duration::from_secs(120));
        assert_eq!(
            s.expect.phase_timeouts,
            [(
                crate::verdict::phases::Phase::IpxeDhcp,
                Duration::from_secs(30)
            )]
        );
        assert_eq!(s.expect.shell[0].command, "ip a");
        // Kept parsed: the judge compares it with the lease file as it is.
        let lease = s.expect.lease.unwrap();
        assert_eq!(lease.client_id, "ff:00:01".parse().unwrap());
        assert_eq!(lease.address, std::net::Ipv4Addr::new(10, 77, 0, 5));
        assert_eq!(
            parsed(&with("")).expect.timeout,
            crate::scenario::DEFAULT_TIMEOUT
        );
    }

    #[test]
    fn each_bad_value_is_refused_where_it_is_written() {
        let id256 = vec!["ab"; 256].join(":");
        for (keys, at, says) in [
            (
                "timeout = \"0s\"".to_string(),
                "\"0s\"",
                "timeout = \"0s\": out of range; write a duration from 1s to 24h",
            ),
            (
                "timeout = \"18446744073709551615s\"".into(),
                "\"1844",
                "out of range",
            ),
            ("timeout = \"soon\"".into(), "\"soon\"", "e.g. \"120s\""),
            (
                "timeout = 120".into(),
                "120",
                "invalid type: integer `120`, expected a string",
            ),
            (
                "[expect.phases]\nipxe_dhcp = \"30s\"".into(),
                "ipxe_dhcp",
                "did you mean \"ipxe-dhcp\"?",
            ),
            (
                "[expect.phases]\nkernel = \"0s\"".into(),
                "\"0s\"",
                "[expect.phases] kernel = \"0s\": out of range",
            ),
            (
                "failure = \"unknown-symbl\"".into(),
                "\"unknown-symbl\"",
                "did you mean \"unknown-symbol\"",
            ),
            (
                "address = \"10.0.2/24\"".into(),
                "\"10.0.2/24\"",
                "address = \"10.0.2/24\"",
            ),
            (
                "console = [\"ok\", \"(unclosed\"]".into(),
                "\"(unclosed",
                "is not a regular expression",
            ),
            (
                "not_console = [\"[\"]".into(),
                "\"[\"",
                "is not a regular expression",
            ),
            (
                "[[expect.shell]]\ncommand = \" \"".into(),
                "\" \"",
                "command: one non-empty line",
            ),
            (
                "[[expect.shell]]\ncommand = \"x\"\npatterns = [\"(\"]".into(),
                "\"(\"",
                "not a regular expression",
            ),
            (
                "[[expect.shell]]\ncomand = \"x\"".into(),
                "comand",
                "did you mean `command`?",
            ),
            (
                "[[expect.shell]]\ncommand = \"x\"\nstatus = \"0\"".into(),
                "\"0\"",
                "invalid type: string",
            ),
            (
                "lease = { client_id = \"\", address = \"10.77.0.5\" }".into(),
                "\"\"",
                "lease: client_id: client-identifier \"\"",
            ),
            (
                "lease = { client_id = \"01\", address = \"10.77.0.5\" }".into(),
                "\"01\"",
                "1 byte(s)",
            ),
            (
                format!("lease = {{ client_id = \"{id256}\", address = \"10.77.0.5\" }}"),
                "\"ab:",
                "256 bytes",
            ),
            (
                "lease = { client_id = \"xyz\", address = \"10.77.0.5\" }".into(),
                "\"xyz\"",
                "not a hex digit",
            ),
            (
                "lease = { client_id = \"ff:00:01\", address = \"lots\" }".into(),
                "\"lots\"",
                "address = \"lots\"",
            ),
            (
                "lease = { client_id = \"ff:00:01\" }".into(),
                "{ client_id",
                "missing field `address`",
            ),
            (
                "rdma = [\"verbs\"]".into(),
                "[\"verbs\"]",
                "there is no RDMA device to check",
            ),
            (
                "rdma = [\"rping\"]".into(),
                "\"rping\"",
                "unknown variant `rping`",
            ),
            (
                "modules_in_order = \"yes\"".into(),
                "\"yes\"",
                "invalid type: string",
            ),
        ] {
            refused_at(&expect(&keys), at, says);
        }
        // No address to expect when the network configures none.
        refused_at(
            &with("[expect]\naddress = \"10.0.2.0/24\""),
            "\"10.0.2.0/24\"",
            "configures no address on eth0",
        );
    }

    /// `interfce` is near `[network] interface`, no key of `[expect]`.
    #[test]
    fn the_key_suggested_is_one_of_this_table() {
        let e = refused_at(&expect("interfce = \"x\""), "interfce", "unknown field");
        assert!(!e.contains("did you mean"), "{e}");
        let e = refused_at(&expect("timout = \"1m\""), "timout", "unknown field");
        assert!(e.ends_with("did you mean `timeout`?"), "{e}");
    }
}
