//! `[network.dhcp_server]`: what the dnsmasq backend's DHCP server does. Each value is checked
//! where it is written; then the whole configuration is rendered once, as the run will, so what
//! only the renderer knows (the range inside the subnet, duplicate reservations) is refused here
//! too, at the table.

use toml::Spanned;

use super::duration::{duration, LEASE_TIME_RANGE};
use super::error::Refusal;
use super::model::{DhcpServer, ReservationSpec};
use super::raw::{RawDhcpServer, RawReservation};
use crate::net::addr::{ClientId, MacAddr};

pub(super) fn default_subnet() -> String {
    "10.77.0.0/24".into()
}

/// The server a `backend = "dnsmasq"` scenario gets without a `[network.dhcp_server]` table.
fn default_server() -> DhcpServer {
    DhcpServer {
        subnet: default_subnet(),
        range: Some(["10.77.0.10".into(), "10.77.0.99".into()]),
        reservations: Vec::new(),
        lease_time: None,
        boot_file: None,
        fault: None,
    }
}

/// `[network.dhcp_server]`, checked value by value and then as a whole.
pub(super) fn dhcp_server_from(raw: Option<Spanned<RawDhcpServer>>) -> Result<DhcpServer, Refusal> {
    let Some(spanned) = raw else {
        return Ok(default_server());
    };
    let table_at = spanned.span().start;
    let raw = spanned.into_inner();
    if let Some(subnet) = &raw.subnet {
        subnet
            .get_ref()
            .parse::<crate::net::addr::Ipv4Subnet>()
            .map_err(|e| Refusal::at(subnet, format!("[network.dhcp_server] subnet: {e}")))?;
    }
    let range = raw.range.as_ref().map(range).transpose()?;
    if let Some(t) = &raw.lease_time {
        duration("[network.dhcp_server] lease_time", t, &LEASE_TIME_RANGE)?;
    }
    let reservations = raw
        .reservations
        .iter()
        .map(reservation)
        .collect::<Result<Vec<_>, _>>()?;
    let server = DhcpServer {
        subnet: raw
            .subnet
            .map(Spanned::into_inner)
            .unwrap_or_else(default_subnet),
        range,
        reservations,
        lease_time: raw.lease_time.map(Spanned::into_inner),
        boot_file: raw.boot_file.map(Spanned::into_inner),
        fault: raw.fault,
    };
    server.config().map_err(|message| Refusal {
        at: table_at,
        message,
    })?;
    Ok(server)
}

/// `range = ["FIRST", "LAST"]`: two addresses, no more (a third was silently dropped).
fn range(r: &Spanned<Vec<String>>) -> Result<[String; 2], Refusal> {
    let refuse = |why: String| {
        Refusal::at(
            r,
            format!("[network.dhcp_server] range: {why}; write [\"FIRST\", \"LAST\"], e.g. [\"10.77.0.10\", \"10.77.0.99\"]"),
        )
    };
    let [first, last] = r.get_ref().as_slice() else {
        return Err(refuse(format!("{} addresses", r.get_ref().len())));
    };
    for a in [first, last] {
        a.parse::<std::net::Ipv4Addr>()
            .map_err(|e| refuse(format!("{a:?}: {e}")))?;
    }
    Ok([first.clone(), last.clone()])
}

fn reservation(r: &Spanned<RawReservation>) -> Result<ReservationSpec, Refusal> {
    let key = "[network.dhcp_server] reservations";
    let raw = r.get_ref();
    match (&raw.client_id, &raw.mac) {
        (Some(id), None) => {
            id.get_ref()
                .parse::<ClientId>()
                .map_err(|e| Refusal::at(id, format!("{key}: client_id: {e}")))?;
        }
        (None, Some(mac)) => {
            mac.get_ref()
                .parse::<MacAddr>()
                .map_err(|e| Refusal::at(mac, format!("{key}: mac: {e}")))?;
        }
        _ => {
            return Err(Refusal::at(
                r,
                format!("{key}: each gives client_id or mac (one)"),
            ))
        }
    }
    raw.address
        .get_ref()
        .parse::<std::net::Ipv4Addr>()
        .map_err(|e| {
            Refusal::at(
                &raw.address,
                format!("{key}: address = {:?}: {e}", raw.address.get_ref()),
            )
        })?;
    Ok(ReservationSpec {
        client_id: raw.client_id.as_ref().map(|s| s.get_ref().clone()),
        mac: raw.mac.as_ref().map(|s| s.get_ref().clone()),
        address: raw.address.get_ref().clone(),
    })
}

impl DhcpServer {
    /// The server's configuration, checked (boot file and TFTP root are the run's to add).
    pub fn config(&self) -> Result<crate::net::config::DhcpConfig, String> {
        use crate::net::config::{ClientMatch, DhcpConfig, Reservation};
        let mut config = DhcpConfig::default_lab();
        config.subnet = self
            .subnet
            .parse()
            .map_err(|e| format!("[network.dhcp_server] subnet = {:?}: {e}", self.subnet))?;
        let addr = |key: &str, text: &str| {
            text.parse::<std::net::Ipv4Addr>()
                .map_err(|e| format!("[network.dhcp_server] {key} = {text:?}: {e}"))
        };
        config.range = match &self.range {
            Some([first, last]) => Some((addr("range", first)?, addr("range", last)?)),
            None => None,
        };
        if let Some(t) = &self.lease_time {
            let d = humantime::parse_duration(t)
                .map_err(|e| format!("[network.dhcp_server] lease_time = {t:?}: {e}"))?;
            config.lease_secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        }
        for r in &self.reservations {
            let client = match (&r.client_id, &r.mac) {
                (Some(id), None) => ClientMatch::ClientId(id.parse().map_err(|e| {
                    format!("[network.dhcp_server] reservation client_id = {id:?}: {e}")
                })?),
                (None, Some(mac)) => ClientMatch::Mac(mac.parse().map_err(|e| {
                    format!("[network.dhcp_server] reservation mac = {mac:?}: {e}")
                })?),
                _ => {
                    return Err(
                        "[network.dhcp_server] reservations: each gives client_id or mac (one)"
                            .into(),
                    )
                }
            };
            config.reservations.push(Reservation {
                client,
                address: addr("reservation address", &r.address)?,
            });
        }
        // The renderer checks the rest against the subnet (range inside it, lease length).
        crate::net::config::render(
            &config,
            "br0",
            &crate::net::config::DnsmasqFiles::in_dir(std::path::Path::new("/")),
        )
        .map_err(|e| format!("[network.dhcp_server]: {e}"))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::testing::{parsed, refused_at, with};
    use crate::scenario::Backend;

    fn server(table: &str) -> String {
        with(&format!(
            "[network]\ndhcp = \"udhcpc\"\nbackend = \"dnsmasq\"\n[network.dhcp_server]\n{table}"
        ))
    }

    #[test]
    fn a_good_server_is_kept_as_written() {
        let s = parsed(&server(
            "subnet = \"10.9.0.0/24\"\nrange = [\"10.9.0.10\", \"10.9.0.20\"]\nlease_time = \"2m\"\n\
             reservations = [{ mac = \"52:54:00:12:34:56\", address = \"10.9.0.5\" }]",
        ));
        let Backend::Dnsmasq(server) = s.network.backend else {
            panic!("{:?}", s.network.backend)
        };
        assert_eq!(server.subnet, "10.9.0.0/24");
        assert_eq!(server.range, Some(["10.9.0.10".into(), "10.9.0.20".into()]));
        assert_eq!(server.reservations[0].address, "10.9.0.5");
        let default = parsed(&with("[network]\ndhcp = \"udhcpc\"\nbackend = \"dnsmasq\""));
        assert!(matches!(default.network.backend, Backend::Dnsmasq(_)));
    }

    #[test]
    fn each_bad_value_is_refused_where_it_is_written() {
        for (table, at, says) in [
            ("rnage = []", "rnage", "unknown field `rnage`"),
            (
                "range = [\"10.77.0.10\", \"10.77.0.20\", \"10.77.0.30\"]",
                "[\"10.77.0.10\"",
                "range: 3 addresses; write [\"FIRST\", \"LAST\"]",
            ),
            ("range = [\"10.77.0.10\"]", "[\"10.77", "range: 1 addresses"),
            (
                "range = [\"10.77.0.10\", \"x\"]",
                "[\"10.77",
                "\"x\": invalid IPv4",
            ),
            ("range = \"10.77.0.10\"", "\"10.77", "invalid type: string"),
            (
                "subnet = \"10.77.0.0\"",
                "\"10.77",
                "subnet \"10.77.0.0\": expected",
            ),
            (
                "lease_time = \"1m\"",
                "\"1m\"",
                "out of range; write a duration from 2m to 365d",
            ),
            (
                "lease_time = \"forever\"",
                "\"forever\"",
                "lease_time = \"forever\"",
            ),
            (
                "reservations = [{ address = \"10.77.0.5\" }]",
                "{ address",
                "each gives client_id or mac (one)",
            ),
            (
                "reservations = [{ mac = \"52:54:00:12:34\", address = \"10.77.0.5\" }]",
                "\"52:54",
                "mac: MAC address \"52:54:00:12:34\"",
            ),
            (
                "reservations = [{ client_id = \"zz\", address = \"10.77.0.5\" }]",
                "\"zz\"",
                "client_id: client-identifier \"zz\"",
            ),
            (
                "reservations = [{ mac = \"52:54:00:12:34:56\", address = \"10.77.0\" }]",
                "\"10.77.0\"",
                "address = \"10.77.0\"",
            ),
        ] {
            refused_at(&server(table), at, says);
        }
    }

    #[test]
    fn the_key_suggested_is_one_of_this_table() {
        let e = refused_at(&server("rnage = []"), "rnage", "unknown field");
        assert!(e.ends_with("did you mean `range`?"), "{e}");
        // `adress` is near `[expect] address`, which is no key here.
        let e = refused_at(
            &server("reservations = [{ mac = \"52:54:00:12:34:56\", adress = \"10.77.0.5\" }]"),
            "adress",
            "unknown field",
        );
        assert!(e.ends_with("did you mean `address`?"), "{e}");
        let e = refused_at(&server("lease = \"1h\""), "lease", "unknown field");
        assert!(e.ends_with("did you mean `lease_time`?"), "{e}");
    }

    /// What only the renderer knows is refused at the table.
    #[test]
    fn a_range_outside_the_subnet_is_refused_at_the_table() {
        let text = server("range = [\"10.1.0.10\", \"10.1.0.20\"]");
        let e = crate::scenario::Scenario::parse(&text, std::path::Path::new("dir/s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("dir/s.toml:"), "{e}");
        assert!(
            e.starts_with("dir/s.toml:9:1: [network.dhcp_server]: DHCP range start 10.1.0.10"),
            "{e}"
        );
    }
}
