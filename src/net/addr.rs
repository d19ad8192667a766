//! The address types of a test segment: an IPv4 subnet, a MAC address, an InfiniBand port GUID
//! and a DHCP client-identifier, each parsed with a typed error naming the byte offset of what is
//! wrong. The one place these are parsed: scenarios, the lab inventory, the initrd's DHCP client
//! and the test segment's server all use these types.

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
    #[error("client-identifier {text:?} at byte {offset}: {why}; write it as colon-separated hex bytes, e.g. ff:00:00:00:00:00:02:00:00:02:c9:00:00:02:c9:03:00:00:10:39")]
    ClientId {
        text: String,
        offset: usize,
        why: String,
    },
    #[error("GUID {text:?} at byte {offset}: {why}; write it as 0002:c903:0000:1039, 0002c90300001039 or 00:02:c9:03:00:00:10:39")]
    Guid {
        text: String,
        offset: usize,
        why: String,
    },
}

/// Option 61's length is one byte; the shortest is a type byte and one more (RFC 2132 9.14).
const CLIENT_ID_LEN: std::ops::RangeInclusive<usize> = 2..=255;

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
        match client_id_len_error(bytes.len()) {
            None => Ok(Self(bytes)),
            Some(why) => Err(AddrError::ClientId {
                text: colon_hex(&bytes),
                offset: 0,
                why,
            }),
        }
    }

    /// The 20-byte IPoIB client-identifier of the port with this GUID (RFC 4390; the layout is
    /// taken apart in `patch::dhcp`).
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

fn client_id_len_error(len: usize) -> Option<String> {
    if len < *CLIENT_ID_LEN.start() {
        Some(format!(
            "{len} byte(s); a client-identifier is a type byte and at least one more"
        ))
    } else if len > *CLIENT_ID_LEN.end() {
        Some(format!(
            "{len} bytes; DHCP options hold at most {}",
            CLIENT_ID_LEN.end()
        ))
    } else {
        None
    }
}

/// Accepts `ff:00:…` (one or two hex digits a byte, as ISC dhclient and dnsmasq read them) or
/// bare hex (`ff00…`, as udhcpc takes it), any case.
impl FromStr for ClientId {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, AddrError> {
        let err = |offset, why: String| AddrError::ClientId {
            text: s.to_owned(),
            offset,
            why,
        };
        let bytes = if s.contains(':') {
            let mut bytes = Vec::new();
            let mut offset = 0;
            for (i, part) in s.split(':').enumerate() {
                if part.is_empty() || part.len() > 2 {
                    return Err(err(
                        offset,
                        format!("byte {} is {part:?}, not 1-2 hex digits", i + 1),
                    ));
                }
                if !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err(offset, format!("byte {} ({part:?}) is not hex", i + 1)));
                }
                // Infallible: 1-2 hex digits.
                bytes.push(u8::from_str_radix(part, 16).map_err(|e| err(offset, e.to_string()))?);
                offset += part.len() + 1;
            }
            bytes
        } else {
            hex_digits(s).map_err(|(offset, why)| err(offset, why))?
        };
        match client_id_len_error(bytes.len()) {
            None => Ok(Self(bytes)),
            Some(why) => Err(err(0, why)),
        }
    }
}

/// Bytes from an even number of hex digits; `Err((offset, why))` names the first bad byte.
fn hex_digits(s: &str) -> Result<Vec<u8>, (usize, String)> {
    if let Some((i, c)) = s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err((i, format!("{c:?} at byte {i} is not a hex digit")));
    }
    if s.len() % 2 != 0 {
        return Err((s.len(), format!("{} hex digits: an odd number", s.len())));
    }
    // Every char is an ASCII hex digit, so byte slicing is on char boundaries.
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| (i, e.to_string())))
        .collect()
}

/// An InfiniBand port GUID: the 8 bytes an IPoIB client-identifier ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 8]);

impl fmt::Display for Guid {
    /// The `0002:c903:0000:1039` form `ibstat` and the manuals use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self
            .0
            .chunks(2)
            .map(|g| format!("{:02x}{:02x}", g[0], g[1]))
            .collect();
        f.write_str(&groups.join(":"))
    }
}

/// Accepts `0002:c903:0000:1039`, `0002c90300001039` or `00:02:c9:03:00:00:10:39`, any case.
impl FromStr for Guid {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, AddrError> {
        let err = |offset, why: String| AddrError::Guid {
            text: s.to_owned(),
            offset,
            why,
        };
        let groups: Vec<&str> = s.split(':').collect();
        let group_len = match groups.len() {
            1 => 16,
            4 => 4,
            8 => 2,
            n => {
                return Err(err(
                    0,
                    format!("{n} colon-separated groups (expected 1, 4 or 8)"),
                ))
            }
        };
        let mut offset = 0;
        let mut digits = String::with_capacity(16);
        for (i, g) in groups.iter().enumerate() {
            if g.len() != group_len {
                return Err(err(
                    offset,
                    format!(
                        "group {} is {g:?}: {} hex digits where {group_len} belong",
                        i + 1,
                        g.len()
                    ),
                ));
            }
            if let Some((j, c)) = g.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
                return Err(err(
                    offset + j,
                    format!("{c:?} at byte {} is not a hex digit", offset + j),
                ));
            }
            digits.push_str(g);
            offset += g.len() + 1;
        }
        let bytes = hex_digits(&digits).map_err(|(o, why)| err(o, why))?;
        // Infallible: every accepted form holds 16 hex digits.
        <[u8; 8]>::try_from(bytes.as_slice())
            .map(Guid)
            .map_err(|_| err(0, "not 8 bytes".into()))
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
        for (text, offset) in [("ff:100", 3), ("ff:zz", 3), ("ff", 0), ("ff::00", 3)] {
            match text.parse::<ClientId>() {
                Err(AddrError::ClientId { offset: o, .. }) => assert_eq!(o, offset, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!("52:54:00:12:34".parse::<MacAddr>().is_err());
        assert!("52:54:00:12:34:5g".parse::<MacAddr>().is_err());
        assert!("+1:54:00:12:34:56".parse::<MacAddr>().is_err());
    }

    const MANUAL_GUID: &str = "0002:c903:0000:1039";
    const MANUAL_ID: &str = "ff:00:00:00:00:00:02:00:00:02:c9:00:00:02:c9:03:00:00:10:39";

    /// The three GUID forms name the same port; the manual's GUID gives the manual's identifier.
    #[test]
    fn guid_forms_agree_and_other_guids_differ() {
        for form in [
            MANUAL_GUID,
            "0002c90300001039",
            "00:02:c9:03:00:00:10:39",
            "0002:C903:0000:1039",
        ] {
            let guid: Guid = form.parse().unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(guid.to_string(), MANUAL_GUID, "{form}");
            assert_eq!(ClientId::ipoib(guid.0).to_string(), MANUAL_ID, "{form}");
        }
        let other: Guid = "f452:1403:0011:2233".parse().unwrap();
        let id = ClientId::ipoib(other.0).to_string();
        assert!(id.ends_with(":00:f4:52:14:03:00:11:22:33"), "{id}");
        assert!(
            id.starts_with("ff:00:00:00:00:00:02:00:00:02:c9:00:"),
            "{id}"
        );
    }

    #[test]
    fn bad_guids_name_the_offset_and_the_forms() {
        for (guid, offset, says) in [
            ("0002:c903:0000", 0, "3 colon-separated groups"),
            ("0002:c903:0000:103", 15, "group 4 is \"103\": 3 hex digits"),
            (
                "0002c9030000103",
                0,
                "group 1 is \"0002c9030000103\": 15 hex digits",
            ),
            ("0002c903000010399", 0, "17 hex digits"),
            ("0002:c9g3:0000:1039", 7, "'g' at byte 7 is not a hex digit"),
            ("", 0, "group 1 is \"\""),
            ("00:02:c9:03:00:00:10:3", 21, "group 8"),
            ("0002:c903:0000:1é9", 16, "'é' at byte 16"),
        ] {
            let err = guid.parse::<Guid>().unwrap_err();
            assert!(
                matches!(err, AddrError::Guid { offset: o, .. } if o == offset),
                "{guid}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(says), "{guid}: {msg}");
            assert!(msg.contains(&format!("at byte {offset}")), "{guid}: {msg}");
            assert!(msg.contains(MANUAL_GUID), "names the accepted form: {msg}");
        }
    }

    /// The rules `patch::dhcp` (scenario `client_id`) and the segment's server (reservations,
    /// leases) used to disagree on: one or two digits a byte and bare hex are both accepted.
    #[test]
    fn client_ids_in_every_form_dhclient_and_udhcpc_take() {
        let parse = |s: &str| s.parse::<ClientId>().map(|id| id.to_string());
        assert_eq!(parse(&MANUAL_ID.to_uppercase()).unwrap(), MANUAL_ID);
        assert_eq!(parse("1:2:a").unwrap(), "01:02:0a");
        assert_eq!(parse("01525400123456").unwrap(), "01:52:54:00:12:34:56");
        assert_eq!(parse("ff:0").unwrap(), "ff:00");
        for (bad, offset, says) in [
            ("ff", 0, "1 byte(s)"),
            ("", 0, "0 byte(s)"),
            ("ff::00", 3, "byte 2 is \"\""),
            ("ff:100", 3, "byte 2 is \"100\""),
            ("ff:zz", 3, "byte 2 (\"zz\") is not hex"),
            ("fff", 3, "odd number"),
            ("ff0g", 3, "'g' at byte 3"),
            ("ff:+1", 3, "not hex"),
        ] {
            let err = bad.parse::<ClientId>().unwrap_err();
            assert!(
                matches!(err, AddrError::ClientId { offset: o, .. } if o == offset),
                "{bad}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(says), "{bad}: {msg}");
            assert!(
                msg.contains("colon-separated hex bytes"),
                "names the fix: {msg}"
            );
        }
        let long = vec!["00"; 256].join(":");
        assert!(parse(&long).unwrap_err().to_string().contains("256 bytes"));
        assert!(parse(&vec!["00"; 255].join(":")).is_ok());
        assert!(ClientId::new(vec![1]).is_err());
        assert!(ClientId::new(vec![0; 256]).is_err());
    }

    #[test]
    fn udhcpc_takes_the_identifier_as_plain_hex() {
        let id: ClientId = MANUAL_ID.parse().unwrap();
        assert_eq!(
            id.to_plain_hex(),
            "ff000000000002000002c9000002c90300001039"
        );
        assert_eq!("1:2".parse::<ClientId>().unwrap().to_plain_hex(), "0102");
    }
}
