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
