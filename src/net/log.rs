//! dnsmasq's log file (`log-facility=FILE` with `log-dhcp`): the DHCP messages of each
//! transaction, the tags it matched (which reservation), and TFTP transfers. Lines that are
//! none of these are kept out; nothing in the log can make the reader fail.
//!
//! Shapes (dnsmasq 2.90): `Nov 26 02:13:08 dnsmasq-dhcp[PID]: XID DHCPOFFER(br0) 10.77.0.17
//! 06:d4:… [note]`, `… XID tags: res0, known, br0`, `dnsmasq-tftp[PID]: sent /root/f to 10.77.0.17`,
//! `dnsmasq-tftp[PID]: file /root/f not found for 10.77.0.17`. The client-identifier itself is
//! not logged: a reservation's tag (`resN`) or the lease file ties a client-id to an address.

use std::net::Ipv4Addr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DhcpMessage {
    Discover,
    Offer,
    Request,
    Ack,
    Nak,
    Decline,
    Release,
    Inform,
}

impl DhcpMessage {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "DHCPDISCOVER" => Self::Discover,
            "DHCPOFFER" => Self::Offer,
            "DHCPREQUEST" => Self::Request,
            "DHCPACK" => Self::Ack,
            "DHCPNAK" => Self::Nak,
            "DHCPDECLINE" => Self::Decline,
            "DHCPRELEASE" => Self::Release,
            "DHCPINFORM" => Self::Inform,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DhcpEvent {
    /// 1-based line in the log.
    pub line: usize,
    /// The transaction id (present with log-dhcp).
    pub xid: Option<u32>,
    pub message: DhcpMessage,
    pub interface: String,
    pub address: Option<Ipv4Addr>,
    pub hwaddr: Option<String>,
    /// What follows, e.g. `no address available`, `wrong address`.
    pub note: String,
    /// The tags the transaction matched (`res0` is reservation 0), from its `tags:` line.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TftpEvent {
    Sent {
        line: usize,
        file: String,
        to: String,
    },
    NotFound {
        line: usize,
        file: String,
        to: String,
    },
    Error {
        line: usize,
        text: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DhcpLog {
    pub dhcp: Vec<DhcpEvent>,
    pub tftp: Vec<TftpEvent>,
    /// How many times dnsmasq started (a restart shows twice).
    pub starts: usize,
}

impl DhcpLog {
    pub fn of(&self, message: DhcpMessage) -> impl Iterator<Item = &DhcpEvent> {
        self.dhcp.iter().filter(move |e| e.message == message)
    }

    /// Whether an ACK for `address` was sent in a transaction tagged with reservation `tag`.
    pub fn acked_with_tag(&self, address: Ipv4Addr, tag: &str) -> bool {
        self.of(DhcpMessage::Ack)
            .any(|e| e.address == Some(address) && e.tags.iter().any(|t| t == tag))
    }
}

/// The message part after `NAME[PID]: `, and which daemon part wrote it.
fn split_source(line: &str) -> Option<(&str, &str)> {
    let at = line.find("dnsmasq")?;
    let rest = &line[at..];
    let (source, message) = rest.split_once("]: ")?;
    let name = source.split('[').next()?;
    Some((name, message))
}

pub fn parse_log(text: &str) -> DhcpLog {
    let mut log = DhcpLog::default();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let Some((source, message)) = split_source(line) else {
            continue;
        };
        match source {
            "dnsmasq" if message.starts_with("started, version") => log.starts += 1,
            "dnsmasq-dhcp" => parse_dhcp(&mut log, number, message),
            "dnsmasq-tftp" => parse_tftp(&mut log, number, message),
            _ => {}
        }
    }
    log
}

fn parse_dhcp(log: &mut DhcpLog, line: usize, message: &str) {
    let mut words = message.split_whitespace().peekable();
    let xid = words.peek().and_then(|w| w.parse::<u32>().ok());
    if xid.is_some() {
        words.next();
    }
    let Some(first) = words.next() else {
        return;
    };
    if first == "tags:" {
        let tags: Vec<String> = message
            .split_once("tags:")
            .map(|(_, t)| t)
            .unwrap_or("")
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        // The tags line follows the request it belongs to (same xid).
        if let Some(event) = log.dhcp.iter_mut().rev().find(|e| e.xid == xid) {
            if event.tags.is_empty() {
                event.tags = tags;
            }
        }
        return;
    }
    let Some((kind, iface)) = first.split_once('(') else {
        return;
    };
    let Some(message_kind) = DhcpMessage::parse(kind) else {
        return;
    };
    let interface = iface.trim_end_matches(')').to_owned();
    let mut rest: Vec<&str> = words.collect();
    let address = rest
        .first()
        .and_then(|w| w.parse::<Ipv4Addr>().ok())
        .inspect(|_| {
            rest.remove(0);
        });
    let hwaddr = rest
        .first()
        .filter(|w| w.contains(':'))
        .map(|w| w.to_string())
        .inspect(|_| {
            rest.remove(0);
        });
    // A reply (OFFER, ACK, NAK) carries the tags its request's `tags:` line listed.
    let is_reply = matches!(
        message_kind,
        DhcpMessage::Offer | DhcpMessage::Ack | DhcpMessage::Nak
    );
    let tags = match log.dhcp.iter().rev().find(|e| e.xid == xid) {
        Some(request) if is_reply && xid.is_some() => request.tags.clone(),
        _ => Vec::new(),
    };
    log.dhcp.push(DhcpEvent {
        line,
        xid,
        message: message_kind,
        interface,
        address,
        hwaddr,
        note: rest.join(" "),
        tags,
    });
}

fn parse_tftp(log: &mut DhcpLog, line: usize, message: &str) {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("sent ") {
        if let Some((file, to)) = rest.rsplit_once(" to ") {
            log.tftp.push(TftpEvent::Sent {
                line,
                file: file.to_owned(),
                to: to.to_owned(),
            });
        }
    } else if let Some(rest) = message.strip_prefix("file ") {
        if let Some((file, to)) = rest.rsplit_once(" not found for ") {
            log.tftp.push(TftpEvent::NotFound {
                line,
                file: file.to_owned(),
                to: to.to_owned(),
            });
        }
    } else if message.contains("error") || message.contains("failed") {
        log.tftp.push(TftpEvent::Error {
            line,
            text: message.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as dnsmasq 2.90 wrote them here.
    const REAL: &str = "\
Nov 26 02:13:07 dnsmasq[22939]: started, version 2.90 DNS disabled
Nov 26 02:13:07 dnsmasq-dhcp[22939]: DHCP, IP range 10.77.0.10 -- 10.77.0.20, lease time 2m
Nov 26 02:13:08 dnsmasq-dhcp[22939]: 4261436255 available DHCP range: 10.77.0.10 -- 10.77.0.20
Nov 26 02:13:08 dnsmasq-dhcp[22939]: 4261436255 DHCPDISCOVER(br0) 06:d4:80:4d:32:87 
Nov 26 02:13:08 dnsmasq-dhcp[22939]: 4261436255 tags: br0
Nov 26 02:13:08 dnsmasq-dhcp[22939]: 4261436255 DHCPOFFER(br0) 10.77.0.17 06:d4:80:4d:32:87 
Nov 26 02:13:08 dnsmasq-dhcp[22939]: 4261436255 DHCPREQUEST(br0) 10.77.0.17 06:d4:80:4d:32:87 
Nov 26 02:13:08 dnsmasq-dhcp[22939]: 4261436255 tags: res0, known, br0
Nov 26 02:13:08 dnsmasq-dhcp[22939]: 4261436255 DHCPACK(br0) 10.77.0.17 06:d4:80:4d:32:87 
Nov 26 02:13:08 dnsmasq-dhcp[22939]: 12 DHCPDISCOVER(br0) 02:00:00:00:00:09 no address available
Nov 26 02:13:09 dnsmasq-tftp[22939]: sent /run/r/boot.ipxe to 10.77.0.17
Nov 26 02:13:09 dnsmasq-tftp[22939]: file /run/r/x not found for 10.77.0.17
garbage ]: dnsmasq
Nov 26 02:13:13 dnsmasq[22939]: exiting on receipt of SIGTERM
";

    #[test]
    fn parses_a_real_transaction() {
        let log = parse_log(REAL);
        assert_eq!(log.starts, 1);
        assert_eq!(log.dhcp.len(), 5);
        let d = &log.dhcp[0];
        assert_eq!(d.message, DhcpMessage::Discover);
        assert_eq!(d.xid, Some(4261436255));
        assert_eq!(d.interface, "br0");
        assert_eq!(d.address, None);
        assert_eq!(d.hwaddr.as_deref(), Some("06:d4:80:4d:32:87"));
        assert_eq!(d.tags, vec!["br0"]);
        let ack = log.of(DhcpMessage::Ack).next().unwrap();
        assert_eq!(ack.address, Some(Ipv4Addr::new(10, 77, 0, 17)));
        assert_eq!(ack.tags, vec!["res0", "known", "br0"]);
        assert!(log.acked_with_tag(Ipv4Addr::new(10, 77, 0, 17), "res0"));
        assert!(!log.acked_with_tag(Ipv4Addr::new(10, 77, 0, 17), "res1"));
        assert_eq!(log.dhcp[1].tags, vec!["br0"]);
        let exhausted = &log.dhcp[4];
        assert_eq!(exhausted.note, "no address available");
        assert_eq!(
            log.tftp,
            vec![
                TftpEvent::Sent {
                    line: 11,
                    file: "/run/r/boot.ipxe".into(),
                    to: "10.77.0.17".into()
                },
                TftpEvent::NotFound {
                    line: 12,
                    file: "/run/r/x".into(),
                    to: "10.77.0.17".into()
                },
            ]
        );
    }

    #[test]
    fn junk_never_panics() {
        for text in [
            "",
            "\n\n",
            "dnsmasq-dhcp[1]: ",
            "dnsmasq-dhcp[1]: 5",
            "x dnsmasq-dhcp[1]: 5 DHCPACK(",
            "dnsmasq-dhcp[1]: tags:",
            "dnsmasq-tftp[1]: sent x",
        ] {
            let log = parse_log(text);
            assert!(log.dhcp.len() <= 1, "{text:?}");
        }
    }
}
