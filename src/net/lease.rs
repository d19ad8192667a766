//! dnsmasq's lease file: one lease a line, `EXPIRY HWADDR ADDRESS HOSTNAME CLIENT-ID`, `*` for
//! an absent hostname or client-id (and `duid …` lines for DHCPv6, skipped).

use std::net::Ipv4Addr;

use serde::Serialize;
use thiserror::Error;

use super::addr::{AddrError, ClientId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// Unix time the lease ends; 0 for an infinite lease.
    pub expiry: u64,
    /// The hardware address as dnsmasq writes it: `aa:bb:…` for Ethernet, `TYPE-aa:bb:…` for
    /// other hardware types (IPoIB is type 32).
    pub mac: String,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    pub client_id: Option<ClientId>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("lease file line {line} (byte {offset}): {what}; expected `EXPIRY HWADDR IPV4 HOSTNAME CLIENT-ID`")]
pub struct LeaseError {
    pub line: usize,
    pub offset: usize,
    pub what: String,
    /// Why the client-id field did not parse, when that was the problem (boxed: `NetError`
    /// holds a `LeaseError` and stays small).
    #[source]
    pub source: Option<Box<AddrError>>,
}

pub fn parse_leases(text: &str) -> Result<Vec<Lease>, LeaseError> {
    let mut leases = Vec::new();
    let mut line_start = 0;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let start = line_start;
        line_start += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() || line.starts_with("duid ") {
            continue;
        }
        let mut fields = Vec::new();
        let mut pos = 0;
        for word in line.split(' ') {
            if !word.is_empty() {
                fields.push((start + pos, word));
            }
            pos += word.len() + 1;
        }
        let err = |offset: usize, what: String| LeaseError {
            line: index + 1,
            offset,
            what,
            source: None,
        };
        if fields.len() != 5 {
            return Err(err(start, format!("{} fields, not 5", fields.len())));
        }
        let expiry = fields[0].1.parse::<u64>().map_err(|_| {
            err(
                fields[0].0,
                format!("expiry {:?} is not a number", fields[0].1),
            )
        })?;
        let ip = fields[2].1.parse::<Ipv4Addr>().map_err(|_| {
            err(
                fields[2].0,
                format!("{:?} is not an IPv4 address", fields[2].1),
            )
        })?;
        let optional = |(_, w): (usize, &str)| (w != "*").then(|| w.to_owned());
        let client_id = match optional(fields[4]) {
            None => None,
            Some(text) => Some(text.parse::<ClientId>().map_err(|e| LeaseError {
                source: Some(Box::new(e)),
                ..err(fields[4].0, "the client-id does not parse".into())
            })?),
        };
        leases.push(Lease {
            expiry,
            mac: fields[1].1.to_owned(),
            ip,
            hostname: optional(fields[3]),
            client_id,
        });
    }
    Ok(leases)
}

/// The address the lease file gives `client_id`, if any.
pub fn address_of(leases: &[Lease], client_id: &ClientId) -> Option<Ipv4Addr> {
    leases
        .iter()
        .find(|l| l.client_id.as_ref() == Some(client_id))
        .map(|l| l.ip)
}

/// A lease line as dnsmasq writes it (to pre-load a lease file, e.g. for an exhausted pool).
pub fn format_lease(lease: &Lease) -> String {
    format!(
        "{} {} {} {} {}\n",
        lease.expiry,
        lease.mac,
        lease.ip,
        lease.hostname.as_deref().unwrap_or("*"),
        lease
            .client_id
            .as_ref()
            .map_or_else(|| "*".to_owned(), ToString::to_string)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by dnsmasq 2.90 here (udhcpc with a 21-byte id, then without one).
    const REAL: &str = "1795659308 06:d4:80:4d:32:87 10.77.0.17 * ff:00:00:00:00:00:02:00:00:02:02:c9:00:00:02:c9:03:00:12:34:56\n\
1795659291 fe:5a:3e:d4:74:b5 10.77.0.15 bbox 01:fe:5a:3e:d4:74:b5\n\
duid 00:01:00:01:2c:8e:00:00:52:54:00:12:34:56\n";

    #[test]
    fn parses_real_leases_and_finds_a_client_id() {
        let leases = parse_leases(REAL).unwrap();
        assert_eq!(leases.len(), 2);
        assert_eq!(leases[0].expiry, 1795659308);
        assert_eq!(leases[0].hostname, None);
        assert_eq!(leases[1].hostname.as_deref(), Some("bbox"));
        let id: ClientId = "01:fe:5a:3e:d4:74:b5".parse().unwrap();
        assert_eq!(address_of(&leases, &id), Some(Ipv4Addr::new(10, 77, 0, 15)));
        let other: ClientId = "01:fe:5a:3e:d4:74:b6".parse().unwrap();
        assert_eq!(address_of(&leases, &other), None);
        assert_eq!(
            format_lease(&leases[1]),
            REAL.lines().nth(1).unwrap().to_owned() + "\n"
        );
    }

    #[test]
    fn malformed_lines_name_line_and_offset() {
        let text = "1 aa:bb 10.0.0.1 * *\n2 aa:bb 10.0.0.x * *\n";
        let e = parse_leases(text).unwrap_err();
        assert_eq!((e.line, e.offset), (2, 29), "{e}");
        let e = parse_leases("x aa 10.0.0.1 * *\n").unwrap_err();
        assert_eq!((e.line, e.offset), (1, 0));
        assert!(parse_leases("1 aa 10.0.0.1 *\n").is_err());
        let e = parse_leases("1 aa 10.0.0.1 * f\n").unwrap_err();
        assert_eq!(e.offset, 16);
        // The client-id's own error is the source, said once.
        let cause = std::error::Error::source(&e)
            .expect("the client-id error is the source")
            .to_string();
        let chain = crate::error_chain(&e);
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
        assert_eq!(parse_leases("").unwrap(), vec![]);
    }
}
