//! `[network]`: the guest's interface, how it gets an address, its client-identifier, and the
//! host side it is plugged into.

use toml::Spanned;

use super::error::Refusal;
use super::model::{Addressing, Backend, Network};
use super::raw::{RawBackend, RawNetwork};
use crate::net::addr::{ClientId, Guid};

pub(super) fn network_from(raw: RawNetwork) -> Result<Network, Refusal> {
    let interface = match &raw.interface {
        Some(i) => {
            interface_name(i.get_ref()).map_err(|why| {
                Refusal::at(i, format!("[network] interface = {:?}: {why}", i.get_ref()))
            })?;
            i.get_ref().clone()
        }
        None => "eth0".into(),
    };
    let addressing = match (raw.dhcp, &raw.static_addr) {
        (Some(_), Some(s)) => {
            return Err(Refusal::at(
                s,
                "[network]: both dhcp and static given; choose one",
            ));
        }
        (Some(d), None) => Addressing::Dhcp(d),
        (None, Some(cidr)) => {
            validate_cidr(cidr.get_ref()).map_err(|m| {
                Refusal::at(
                    cidr,
                    format!("[network] static = {:?}: {m}", cidr.get_ref()),
                )
            })?;
            let gateway = raw.gateway.as_ref().map(gateway).transpose()?;
            Addressing::Static {
                cidr: cidr.get_ref().clone(),
                gateway,
            }
        }
        (None, None) => Addressing::None,
    };
    if let (Some(_), Some(id)) = (&raw.guid, &raw.client_id) {
        return Err(Refusal::at(
            id,
            "[network]: both guid and client_id given; the client-identifier comes from one",
        ));
    }
    if let Some(g) = &raw.guid {
        g.get_ref()
            .parse::<Guid>()
            .map_err(|e| Refusal::at(g, format!("[network] guid: {e}")))?;
    }
    if let Some(id) = &raw.client_id {
        id.get_ref()
            .parse::<ClientId>()
            .map_err(|e| Refusal::at(id, format!("[network] client_id: {e}")))?;
    }
    let backend = backend_from(raw.backend, raw.dhcp_server)?;
    Ok(Network {
        interface,
        addressing,
        client_id: raw.client_id.map(Spanned::into_inner),
        guid: raw.guid.map(Spanned::into_inner),
        backend,
    })
}

fn gateway(g: &Spanned<String>) -> Result<String, Refusal> {
    g.get_ref().parse::<std::net::Ipv4Addr>().map_err(|e| {
        Refusal::at(
            g,
            format!(
                "[network] gateway = {:?}: {e}; write an IPv4 address",
                g.get_ref()
            ),
        )
    })?;
    Ok(g.get_ref().clone())
}

/// `backend` and `[network.dhcp_server]`, which goes with the dnsmasq backend only.
fn backend_from(
    backend: Option<Spanned<RawBackend>>,
    server: Option<Spanned<super::raw::RawDhcpServer>>,
) -> Result<Backend, Refusal> {
    let Some(backend) = backend else {
        return match server {
            None => Ok(Backend::User),
            Some(s) => Err(not_dnsmasq(&s)),
        };
    };
    match (backend.get_ref(), server) {
        (RawBackend::Name(n), None) if n == "user" => Ok(Backend::User),
        (RawBackend::Name(n), server) if n == "dnsmasq" => Ok(Backend::Dnsmasq(
            super::dhcp_server::dhcp_server_from(server)?,
        )),
        (RawBackend::Bridge { bridge }, None) => {
            if !crate::net::config::valid_ifname(bridge) {
                return Err(Refusal::at(
                    &backend,
                    format!("[network] backend = {{ bridge = {bridge:?} }}: not an interface name (letters, digits, '_', '.', '-'; up to 15)"),
                ));
            }
            Ok(Backend::Bridge(bridge.clone()))
        }
        (RawBackend::Name(n), None) => Err(Refusal::at(
            &backend,
            format!(
                "[network] backend = {n:?}: use \"user\", \"dnsmasq\" or {{ bridge = \"NAME\" }}"
            ),
        )),
        (_, Some(s)) => Err(not_dnsmasq(&s)),
    }
}

fn not_dnsmasq<T>(server: &Spanned<T>) -> Refusal {
    Refusal::at(
        server,
        "[network.dhcp_server] is for backend = \"dnsmasq\"; set it or remove the table",
    )
}

/// What Linux accepts as an interface name (`dev_valid_name`): 1 to 15 bytes (IFNAMSIZ with
/// its NUL), not `.` or `..`, no `/`, `:`, whitespace or NUL.
fn interface_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "empty".to_string()
    } else if name.len() > 15 {
        format!("{} bytes; Linux interface names are 1 to 15", name.len())
    } else if name == "." || name == ".." {
        "not a name Linux allows".into()
    } else if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || *c == '\0' || c.is_whitespace())
    {
        format!("{c:?} is not allowed in an interface name")
    } else {
        return Ok(());
    };
    Err(format!(
        "{why}; write the guest's interface name, e.g. \"eth0\" or \"ib0\""
    ))
}

pub(super) fn validate_cidr(cidr: &str) -> Result<(), String> {
    let (addr, len) = cidr
        .split_once('/')
        .ok_or("expected ADDRESS/PREFIX, e.g. 192.0.2.10/24")?;
    addr.parse::<std::net::Ipv4Addr>()
        .map_err(|e| format!("{addr}: {e}"))?;
    match len.parse::<u8>() {
        Ok(n) if n <= 32 => Ok(()),
        _ => Err(format!("prefix length {len:?} is not 0..32")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::testing::{parsed, refused_at, with};

    fn net(keys: &str) -> String {
        with(&format!("[network]\n{keys}"))
    }

    #[test]
    fn a_good_network_is_kept_as_written() {
        let s = parsed(&net(
            "interface = \"ib0\"\nstatic = \"192.0.2.10/24\"\ngateway = \"192.0.2.1\"\nclient_id = \"ff:00:01\"",
        ));
        assert_eq!(s.network.interface, "ib0");
        assert_eq!(s.network.client_id.as_deref(), Some("ff:00:01"));
        assert!(matches!(
            s.network.addressing,
            Addressing::Static { ref gateway, .. } if gateway.as_deref() == Some("192.0.2.1")
        ));
        assert_eq!(parsed(&with("")).network.interface, "eth0");
    }

    #[test]
    fn each_bad_value_is_refused_where_it_is_written() {
        let long = "x".repeat(200_000);
        let id256 = vec!["ab"; 256].join(":");
        for (keys, at, says) in [
            (
                "interface = \"\"".to_string(),
                "\"\"",
                "interface = \"\": empty",
            ),
            (format!("interface = \"{long}\""), "\"xxx", "200000 bytes"),
            (
                "interface = \"eth0 \"".into(),
                "\"eth0 ",
                "' ' is not allowed",
            ),
            (
                "interface = \"../../etc\"".into(),
                "\"../",
                "'/' is not allowed",
            ),
            (
                "interface = \"eth0; reboot\"".into(),
                "\"eth0;",
                "' ' is not allowed",
            ),
            (
                "interface = \"..\"".into(),
                "\"..\"",
                "not a name Linux allows",
            ),
            (
                "interface = 0".into(),
                "0",
                "invalid type: integer `0`, expected a string",
            ),
            (
                "dhcp = \"udhcpc\"\nstatic = \"192.0.2.10/24\"".into(),
                "\"192.0.2.10/24\"",
                "both dhcp and static given",
            ),
            ("static = \"192.0.2.300/24\"".into(), "\"192", "192.0.2.300"),
            (
                "static = \"192.0.2.3/33\"".into(),
                "\"192",
                "prefix length \"33\"",
            ),
            (
                "static = \"192.0.2.3/24\"\ngateway = \"gw\"".into(),
                "\"gw\"",
                "gateway = \"gw\"",
            ),
            (
                "dhcp = \"dhcpcd\"".into(),
                "\"dhcpcd\"",
                "unknown variant `dhcpcd`",
            ),
            (
                "guid = \"0002:c903:0000:1039\"\nclient_id = \"ff:00:01\"".into(),
                "\"ff:00:01\"",
                "both guid and client_id",
            ),
            (
                "guid = \"0002:c903\"".into(),
                "\"0002",
                "guid: GUID \"0002:c903\"",
            ),
            (
                "client_id = \"\"".into(),
                "\"\"",
                "client_id: client-identifier \"\"",
            ),
            ("client_id = \"01\"".into(), "\"01\"", "1 byte(s)"),
            (format!("client_id = \"{id256}\""), "\"ab:", "256 bytes"),
            ("client_id = \"zz:01\"".into(), "\"zz", "not hex"),
            (
                "backend = \"tap\"".into(),
                "\"tap\"",
                "backend = \"tap\": use \"user\"",
            ),
            (
                "backend = { bridge = \"br 0\" }".into(),
                "{ bridge",
                "not an interface name",
            ),
            (
                "backend = \"user\"\n[network.dhcp_server]\n".into(),
                "[network.dhcp_server]",
                "is for backend = \"dnsmasq\"",
            ),
            (
                "[network.dhcp_server]\n".into(),
                "[network.dhcp_server]",
                "is for backend = \"dnsmasq\"",
            ),
        ] {
            refused_at(&net(&keys), at, says);
        }
    }

    /// `adress` is near `[expect] address`, a key of another table: not offered here.
    #[test]
    fn the_key_suggested_is_one_of_this_table() {
        let e = refused_at(&net("adress = \"x\""), "adress", "unknown field `adress`");
        assert!(!e.contains("did you mean"), "{e}");
        let e = refused_at(&net("interfce = \"eth0\""), "interfce", "unknown field");
        assert!(e.ends_with("did you mean `interface`?"), "{e}");
        let e = refused_at(&net("clientid = \"ff:00\""), "clientid", "unknown field");
        assert!(e.ends_with("did you mean `client_id`?"), "{e}");
    }

    #[test]
    fn interface_names_are_what_linux_accepts() {
        for good in [
            "eth0",
            "ib0",
            "enp1s0f0np0",
            "a",
            "x.100",
            "fifteen-bytes-x",
        ] {
            assert_eq!(interface_name(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("", "empty"),
            ("sixteen-bytes-xx", "16 bytes"),
            (".", "not a name"),
            ("..", "not a name"),
            ("../../etc", "'/'"),
            ("eth0 ", "' '"),
            ("eth0; reboot", "' '"),
            ("eth0:1", "':'"),
            ("eth\u{0}", "'\\0'"),
            ("eth\t0", "'\\t'"),
        ] {
            let e = interface_name(bad).unwrap_err();
            assert!(e.contains(says) && e.ends_with("\"ib0\""), "{bad:?}: {e}");
        }
        assert!(interface_name(&"x".repeat(200_000))
            .unwrap_err()
            .contains("200000 bytes"));
    }
}
