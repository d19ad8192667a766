//! `[network.dhcp_server]`: what the dnsmasq backend's DHCP server does. Each value is checked
//! where it is written; then the whole configuration is rendered once, as the run will, so what
//! only the renderer knows (the range inside the subnet, duplicate reservations) is refused here
//! too, at the table.

use toml::Spanned;

use super::duration::{duration, LEASE_TIME_RANGE};
use super::error::Refusal;
use std::net::Ipv4Addr;

use super::model::{DhcpServer, ReservationSpec};
use super::raw::{RawDhcpServer, RawReservation};
use crate::net::addr::{ClientId, Ipv4Subnet, MacAddr};
use crate::net::config::{ClientMatch, DhcpConfig, Reservation};

/// The subnet a `backend = "dnsmasq"` scenario gets without `subnet`: 10.77.0.0/24.
fn default_subnet() -> Ipv4Subnet {
    DhcpConfig::default_lab().subnet
}

/// The server a `backend = "dnsmasq"` scenario gets without a `[network.dhcp_server]` table.
fn default_server() -> DhcpServer {
    DhcpServer {
        subnet: default_subnet(),
        range: Some([Ipv4Addr::new(10, 77, 0, 10), Ipv4Addr::new(10, 77, 0, 99)]),
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
    let subnet = match &raw.subnet {
        Some(subnet) => subnet
            .get_ref()
            .parse::<Ipv4Subnet>()
            .map_err(|e| Refusal::at(subnet, format!("[network.dhcp_server] subnet: {e}")))?,
        None => default_subnet(),
    };
    let range = raw.range.as_ref().map(range).transpose()?;
    let lease_time = raw
        .lease_time
        .as_ref()
        .map(|t| duration("[network.dhcp_server] lease_time", t, &LEASE_TIME_RANGE))
        .transpose()?;
    let reservations = raw
        .reservations
        .iter()
        .map(reservation)
        .collect::<Result<Vec<_>, _>>()?;
    let server = DhcpServer {
        subnet,
        range,
        reservations,
        lease_time,
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
fn range(r: &Spanned<Vec<String>>) -> Result<[Ipv4Addr; 2], Refusal> {
    let refuse = |why: String| {
        Refusal::at(
            r,
            format!("[network.dhcp_server] range: {why}; write [\"FIRST\", \"LAST\"], e.g. [\"10.77.0.10\", \"10.77.0.99\"]"),
        )
    };
    let [first, last] = r.get_ref().as_slice() else {
        return Err(refuse(format!("{} addresses", r.get_ref().len())));
    };
    let addr = |a: &String| {
        a.parse::<Ipv4Addr>()
            .map_err(|e| refuse(format!("{a:?}: {e}")))
    };
    Ok([addr(first)?, addr(last)?])
}

fn reservation(r: &Spanned<RawReservation>) -> Result<ReservationSpec, Refusal> {
    let key = "[network.dhcp_server] reservations";
    let raw = r.get_ref();
    let client = match (&raw.client_id, &raw.mac) {
        (Some(id), None) => ClientMatch::ClientId(
            id.get_ref()
                .parse::<ClientId>()
                .map_err(|e| Refusal::at(id, format!("{key}: client_id: {e}")))?,
        ),
        (None, Some(mac)) => ClientMatch::Mac(
            mac.get_ref()
                .parse::<MacAddr>()
                .map_err(|e| Refusal::at(mac, format!("{key}: mac: {e}")))?,
        ),
        _ => {
            return Err(Refusal::at(
                r,
                format!("{key}: each gives client_id or mac (one)"),
            ))
        }
    };
    let address = raw.address.get_ref().parse::<Ipv4Addr>().map_err(|e| {
        Refusal::at(
            &raw.address,
            format!("{key}: address = {:?}: {e}", raw.address.get_ref()),
        )
    })?;
    Ok(ReservationSpec { client, address })
}

impl DhcpServer {
    /// The server's configuration (boot file and TFTP root are the run's to add). Every value
    /// is parsed already; what is refused here is only what the renderer knows: the range
    /// inside the subnet, duplicate reservations.
    pub fn config(&self) -> Result<DhcpConfig, String> {
        let mut config = DhcpConfig::default_lab();
        config.subnet = self.subnet;
        config.range = self.range.map(|[first, last]| (first, last));
        if let Some(d) = self.lease_time {
            // LEASE_TIME_RANGE ends at a year, well inside u32 seconds.
            config.lease_secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        }
        config.reservations = self
            .reservations
            .iter()
            .map(|r| Reservation {
                client: r.client.clone(),
                address: r.address,
            })
            .collect();
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
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use crate::net::config::ClientMatch;
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
        // Kept parsed: config() has nothing left to parse or to let through.
        assert_eq!(server.subnet, "10.9.0.0/24".parse().unwrap());
        assert_eq!(
            server.range,
            Some([Ipv4Addr::new(10, 9, 0, 10), Ipv4Addr::new(10, 9, 0, 20)])
        );
        assert_eq!(server.lease_time, Some(Duration::from_secs(120)));
        assert_eq!(server.reservations[0].address, Ipv4Addr::new(10, 9, 0, 5));
        assert_eq!(
            server.reservations[0].client,
            ClientMatch::Mac("52:54:00:12:34:56".parse().unwrap())
        );
        assert_eq!(server.config().unwrap().lease_secs, 120);
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
