//! The address types of a test segment: an IPv4 subnet, a MAC address and a DHCP
//! client-identifier, each parsed with a typed error naming the byte offset of what is wrong.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddrError {
    #[error("subnet {text:?}: expected ADDRESS/PREFIX such as 10.77.0.0/24 (error at byte {offset}: {what})")]
    Subnet {
        text: String,
        offset: usize,
        what: &'static str,
    },
    #[error("MAC address {text:?}: expected six hex pairs such as 52:54:00:12:34:56 (error at byte {offset})")]
    Mac { text: String, offset: usize },
    #[error("client-identifier {text:?}: expected 2-255 colon-separated hex pairs such as ff:00:00:00:00:00:02:00:00:02:c9:00:… (error at byte {offset})")]
    ClientId { text: String, offset: usize },
}

/// An IPv4 subnet given by its network address and prefix length (8-30: room for a server
/// and at least one guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Subnet {
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Self, AddrError> {
        let err = |offset, what| AddrError::Subnet {
            text: format!("{network}/{prefix}"),
            offset,
            what,
        };
        if !(8..=30).contains(&prefix) {
            return Err(err(network.to_string().len() + 1, "prefix must be 8-30"));
        }
        let subnet = Self { network, prefix };
        if u32::from(network) & !subnet.mask_bits() != 0 {
            return Err(err(0, "host bits set: give the network address"));
        }
        Ok(subnet)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// Host number `n` (1 is the first host); `None` past the last host.
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        let hosts = !self.mask_bits() - 1;
        (1..=hosts)
            .contains(&n)
            .then(|| Ipv4Addr::from(u32::from(self.network) + n))
    }

    /// The DHCP/TFTP server's own address: the first host.
    pub fn server(&self) -> Ipv4Addr {
        // Invariant: a /30 or larger subnet has a first host.
        self.host(1).unwrap_or(self.network)
    }

    /// The last usable host (broadcast - 1).
    pub fn last_host(&self) -> Ipv4Addr {
        Ipv4Addr::from((u32::from(self.network) | !self.mask_bits()) - 1)
    }

    /// Whether `addr` is a host address of this subnet (not the network or broadcast address).
    pub fn contains_host(&self, addr: Ipv4Addr) -> bool {
        let a = u32::from(addr);
        let n = u32::from(self.network);
        a & self.mask_bits() == n && a != n && a != (n | !self.mask_bits())
    }
}

impl fmt::Display for Ipv4Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Subnet {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, AddrError> {
        let err = |offset, what| AddrError::Subnet {
            text: s.to_owned(),
            offset,
            what,
        };
        let slash = s.find('/').ok_or_else(|| err(s.len(), "no '/'"))?;
        let network: Ipv4Addr = s[..slash]
            .parse()
            .map_err(|_| err(0, "not an IPv4 address"))?;
        let prefix: u8 = s[slash + 1..]
            .parse()
            .map_err(|_| err(slash + 1, "prefix is not a number"))?;
        Ipv4Subnet::new(network, prefix).map_err(|e| match e {
            AddrError::Subnet { offset, what, .. } => err(offset, what),
            other => other,
        })
    }
}

/// Parses colon-separated hex pairs; `Err(offset)` points at the first bad byte.
fn hex_pairs(s: &str) -> Result<Vec<u8>, usize> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, part) in s.split(':').enumerate() {
        if i > 0 {
            offset += 1;
        }
        if part.len() != 2 {
            return Err(offset);
        }
        let byte = u8::from_str_radix(part, 16).map_err(|_| offset)?;
        if !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(offset);
        }
        out.push(byte);
        offset += 2;
    }
    Ok(out)
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&colon_hex(&self.0))
    }
}

impl FromStr for MacAddr {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, AddrError> {
        let err = |offset| AddrError::Mac {
            text: s.to_owned(),
            offset,
        };
        let bytes = hex_pairs(s).map_err(err)?;
        <[u8; 6]>::try_from(bytes.as_slice())
            .map(MacAddr)
            .map_err(|_| err(s.len().min(17)))
    }
}

/// A DHCP client-identifier (option 61) as raw bytes. dnsmasq writes it, in `dhcp-host=id:…`
/// and in its lease file, as lowercase colon-separated hex pairs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(Vec<u8>);

/// The first 12 bytes of the client-identifier Mellanox/NVIDIA IPoIB clients send (RFC 4390
/// type 0xff, IAID 0, then a DUID-EN with Mellanox's enterprise number 0x2c9 … as in OFED's
/// `dhclient.conf` examples); the port GUID's 8 bytes follow.
pub const IPOIB_CLIENT_ID_PREFIX: [u8; 12] = [
    0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x02, 0xc9, 0x00,
];

impl ClientId {
    pub fn new(bytes: Vec<u8>) -> Result<Self, AddrError> {
        if (2..=255).contains(&bytes.len()) {
            Ok(Self(bytes))
        } else {
            Err(AddrError::ClientId {
                text: colon_hex(&bytes),
                offset: 0,
            })
        }
    }

    /// The 20-byte IPoIB client-identifier of the port with this GUID.
    pub fn ipoib(port_guid: [u8; 8]) -> Self {
        let mut bytes = IPOIB_CLIENT_ID_PREFIX.to_vec();
        bytes.extend_from_slice(&port_guid);
        Self(bytes)
    }

    /// What an Ethernet client sends by default: hardware type 1, then its MAC.
    pub fn ethernet(mac: MacAddr) -> Self {
        let mut bytes = vec![1];
        bytes.extend_from_slice(&mac.0);
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Plain hex without separators (busybox `udhcpc -x 0x3d:HEX` takes this form).
    pub fn to_plain_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&colon_hex(&self.0))
    }
}

impl FromStr for ClientId {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, AddrError> {
        let err = |offset| AddrError::ClientId {
            text: s.to_owned(),
            offset,
        };
        let bytes = hex_pairs(s).map_err(err)?;
        if !(2..=255).contains(&bytes.len()) {
            return Err(err(0));
        }
        Ok(Self(bytes))
    }
}

impl Serialize for ClientId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_hosts_and_bounds() {
        let s: Ipv4Subnet = "10.77.0.0/24".parse().unwrap();
        assert_eq!(s.server(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(s.last_host(), Ipv4Addr::new(10, 77, 0, 254));
        assert_eq!(s.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(s.host(254), Some(Ipv4Addr::new(10, 77, 0, 254)));
        assert_eq!(s.host(255), None);
        assert_eq!(s.host(0), None);
        assert!(s.contains_host(Ipv4Addr::new(10, 77, 0, 9)));
        assert!(!s.contains_host(Ipv4Addr::new(10, 77, 0, 255)));
        assert!(!s.contains_host(Ipv4Addr::new(10, 77, 1, 9)));
        assert_eq!(s.to_string(), "10.77.0.0/24");
    }

    #[test]
    fn bad_subnets_name_the_offset() {
        let e = "10.77.0.1/24".parse::<Ipv4Subnet>().unwrap_err();
        assert!(matches!(e, AddrError::Subnet { offset: 0, .. }), "{e}");
        let e = "10.77.0.0/31".parse::<Ipv4Subnet>().unwrap_err();
        assert!(matches!(e, AddrError::Subnet { offset: 10, .. }), "{e}");
        let e = "10.77.0.0/x".parse::<Ipv4Subnet>().unwrap_err();
        assert!(matches!(e, AddrError::Subnet { offset: 10, .. }), "{e}");
        assert!("10.77.0.0".parse::<Ipv4Subnet>().is_err());
    }

    #[test]
    fn client_ids_round_trip_and_ipoib_is_twenty_bytes() {
        let guid = [0x00, 0x02, 0xc9, 0x03, 0x00, 0x12, 0x34, 0x56];
        let id = ClientId::ipoib(guid);
        assert_eq!(id.bytes().len(), 20);
        let text = id.to_string();
        assert_eq!(
            text,
            "ff:00:00:00:00:00:02:00:00:02:c9:00:00:02:c9:03:00:12:34:56"
        );
        assert_eq!(text.parse::<ClientId>().unwrap(), id);
        assert_eq!(id.to_plain_hex(), text.replace(':', ""));
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(ClientId::ethernet(mac).to_string(), "01:52:54:00:12:34:56");
    }

    #[test]
    fn malformed_ids_and_macs_are_errors_not_panics() {
        for (text, offset) in [("ff:0", 3), ("ff:zz", 3), ("ff", 0), ("ff::00", 3)] {
            match text.parse::<ClientId>() {
                Err(AddrError::ClientId { offset: o, .. }) => assert_eq!(o, offset, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!("52:54:00:12:34".parse::<MacAddr>().is_err());
        assert!("52:54:00:12:34:5g".parse::<MacAddr>().is_err());
        assert!("+1:54:00:12:34:56".parse::<MacAddr>().is_err());
    }
}
