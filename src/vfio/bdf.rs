//! PCI addresses as sysfs names them: `domain:bus:device.function`, e.g. `0000:03:00.0`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A PCI function address; always printed in the full sysfs form (`0000:03:00.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bdf {
    pub domain: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "PCI address {0:?}: expected domain:bus:device.function in hex, e.g. 0000:03:00.0 \
     (or bus:device.function, 03:00.0); device is at most 1f, function at most 7"
)]
pub struct BadBdf(pub String);

impl FromStr for Bdf {
    type Err = BadBdf;
    fn from_str(text: &str) -> Result<Self, BadBdf> {
        let bad = || BadBdf(text.to_owned());
        let (rest, function) = text.rsplit_once('.').ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, s] => (*d, *b, *s),
            // lspci's short form leaves out domain 0000.
            [b, s] => ("0000", *b, *s),
            _ => return Err(bad()),
        };
        let hex = |field: &str, max_len: usize| {
            if field.is_empty()
                || field.len() > max_len
                || !field.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(bad());
            }
            u32::from_str_radix(field, 16).map_err(|_| bad())
        };
        let bdf = Bdf {
            domain: hex(domain, 4)? as u16,
            bus: hex(bus, 2)? as u8,
            device: hex(device, 2)? as u8,
            function: hex(function, 1)? as u8,
        };
        if bdf.device > 0x1f || bdf.function > 7 {
            return Err(bad());
        }
        Ok(bdf)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl TryFrom<String> for Bdf {
    type Error = BadBdf;
    fn try_from(s: String) -> Result<Self, BadBdf> {
        s.parse()
    }
}

impl From<Bdf> for String {
    fn from(b: Bdf) -> String {
        b.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_short_forms_parse_to_the_sysfs_name() {
        let b: Bdf = "0000:03:00.1".parse().unwrap();
        assert_eq!((b.domain, b.bus, b.device, b.function), (0, 3, 0, 1));
        assert_eq!(b.to_string(), "0000:03:00.1");
        assert_eq!(
            "af:1f.7".parse::<Bdf>().unwrap().to_string(),
            "0000:af:1f.7"
        );
        assert_eq!(
            "10000:00:00.0".parse::<Bdf>(),
            Err(BadBdf("10000:00:00.0".into()))
        );
        assert_eq!(
            "ABCD:FF:1F.7".parse::<Bdf>().unwrap().to_string(),
            "abcd:ff:1f.7"
        );
    }

    #[test]
    fn malformed_addresses_are_typed_errors() {
        for bad in [
            "",
            "03:00",
            "0000:03:20.0",
            "0000:03:00.8",
            "0000:3g:00.0",
            "0:0:0:0.0",
            "+3:00.0",
            "0000:03:00.",
            ".0",
            "03:00.00",
        ] {
            let err = bad.parse::<Bdf>().unwrap_err();
            assert_eq!(err, BadBdf(bad.into()));
            assert!(err.to_string().contains("0000:03:00.0"), "{err}");
        }
    }

    #[test]
    fn serde_uses_the_text_form() {
        let b: Bdf = "0000:03:00.0".parse().unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"0000:03:00.0\"");
        assert_eq!(serde_json::from_str::<Bdf>("\"03:00.0\"").unwrap(), b);
        assert!(serde_json::from_str::<Bdf>("\"nope\"").is_err());
    }
}
