//! What the running host depends on: the interfaces holding a default route (/proc/net/route,
//! /proc/net/ipv6_route) and the mounted block devices (/proc/mounts). A passthrough that would
//! take one of these away is refused.

use std::path::Path;

use super::sysfs::read_attr;
use super::VfioError;

/// Interfaces with an up IPv4 or IPv6 default route.
pub fn default_route_interfaces(proc_root: &Path) -> Result<Vec<String>, VfioError> {
    let mut out = Vec::new();
    if let Some(text) = read_attr(&proc_root.join("net/route"))? {
        out.extend(ipv4_default_routes(&text));
    }
    if let Some(text) = read_attr(&proc_root.join("net/ipv6_route"))? {
        out.extend(ipv6_default_routes(&text));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

const RTF_UP: u32 = 0x1;

/// `/proc/net/route`: Iface Destination Gateway Flags RefCnt Use Metric Mask …, hex fields;
/// a default route has destination and mask 0. Lines that do not parse are not routes.
pub fn ipv4_default_routes(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, flags, mask) = (f.first()?, f.get(1)?, f.get(3)?, f.get(7)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let zero = |h: &str| u32::from_str_radix(h, 16).ok() == Some(0);
            (zero(dest) && zero(mask) && flags & RTF_UP != 0).then(|| iface.to_string())
        })
        .collect()
}

/// `/proc/net/ipv6_route`: dest prefix_len src src_len next_hop metric refcnt use flags iface;
/// `::/0` on any interface but `lo` (where the kernel keeps its unreachable default).
pub fn ipv6_default_routes(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, len, flags, iface) = (f.first()?, f.get(1)?, f.get(8)?, f.get(9)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = dest.len() == 32 && dest.bytes().all(|b| b == b'0') && *len == "00";
            (default && flags & RTF_UP != 0 && *iface != "lo").then(|| iface.to_string())
        })
        .collect()
}

/// A mounted filesystem: its source device and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: String,
}

pub fn mounts(proc_root: &Path) -> Result<Vec<Mount>, VfioError> {
    Ok(read_attr(&proc_root.join("mounts"))?
        .map(|text| parse_mounts(&text))
        .unwrap_or_default())
}

/// `/proc/mounts` lines: source target type options dump pass, with spaces as `\040`.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            Some(Mount {
                source: unescape(f.next()?),
                target: unescape(f.next()?),
            })
        })
        .collect()
}

/// The kernel escapes space, tab, newline and backslash as three octal digits.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u16, |v, b| v * 8 + u16::from(b - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts whose source is `/dev/<name>` for one of these block device names.
pub fn mounted_from<'a>(mounts: &'a [Mount], names: &[String]) -> Vec<&'a Mount> {
    mounts
        .iter()
        .filter(|m| {
            m.source
                .strip_prefix("/dev/")
                .is_some_and(|dev| names.iter().any(|n| n == dev))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_default_route_needs_zero_destination_and_mask_and_up() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            enp3s0f0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            enp3s0f0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
            eno1\t00000000\t0101A8C0\t0002\t0\t0\t100\t00000000\t0\t0\t0\n\
            garbage line\n";
        assert_eq!(ipv4_default_routes(text), vec!["enp3s0f0"]);
        assert!(ipv4_default_routes("").is_empty());
    }

    #[test]
    fn ipv6_default_route_ignores_lo() {
        let text = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eno1\n\
            00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
            fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eno2\n";
        assert_eq!(ipv6_default_routes(text), vec!["eno1"]);
    }

    #[test]
    fn mounts_unescape_and_match_device_names() {
        let text = "/dev/nvme0n1p2 / ext4 rw,relatime 0 0\n\
            /dev/mapper/vg-home /home\\040dir xfs rw 0 0\n\
            proc /proc proc rw 0 0\n";
        let all = parse_mounts(text);
        assert_eq!(all[1].target, "/home dir");
        let hit = mounted_from(&all, &["nvme0n1".into(), "nvme0n1p2".into()]);
        assert_eq!(hit, vec![&all[0]]);
        let hit = mounted_from(&all, &["mapper/vg-home".into()]);
        assert_eq!(hit[0].target, "/home dir");
        assert!(mounted_from(&all, &["sda1".into()]).is_empty());
        assert_eq!(unescape("a\\13"), "a\\13");
        assert_eq!(unescape("\\777x"), "\\777x");
    }
}
