//! One name per enum variant, and one way to ask for it.
//!
//! bootrig's vocabulary enums (firmware, NIC model, cause, phase, compression, …) each have a
//! name that scenario files, reports and the command line use. That name is serde's, and strum
//! derives the same one, so no enum keeps a hand-written `match` of names beside its
//! `#[serde(rename_all)]`. The convention, for every such enum:
//!
//! ```ignore
//! #[derive(Serialize, Deserialize, strum::IntoStaticStr, strum::VariantArray)]
//! #[serde(rename_all = "kebab-case")]
//! #[strum(serialize_all = "kebab-case")]
//! enum Firmware { Bios, Uefi }
//! ```
//!
//! and callers say `firmware.as_str()` and `Firmware::VARIANTS` (with [`Named`] in scope). A test
//! beside each enum calls [`assert_serde_names`], so the two derives cannot drift apart.

/// An enum whose variants each have one name: `as_str` gives it, `VARIANTS` lists them all.
pub trait Named: Copy + Into<&'static str> + strum::VariantArray + 'static {
    /// The variant's name, as scenario files and reports spell it.
    fn as_str(self) -> &'static str {
        self.into()
    }

    /// The variant with this name, if there is one.
    fn from_name(name: &str) -> Option<Self> {
        Self::VARIANTS.iter().copied().find(|v| v.as_str() == name)
    }
}

impl<T: Copy + Into<&'static str> + strum::VariantArray + 'static> Named for T {}

/// Asserts that every variant's [`Named::as_str`] is the string serde writes for it: the test
/// that keeps the two derives of one enum in step.
#[cfg(test)]
pub fn assert_serde_names<T: Named + serde::Serialize + std::fmt::Debug>() {
    assert!(!T::VARIANTS.is_empty());
    for v in T::VARIANTS {
        let serde_name = serde_json::to_value(v).expect("a unit variant serializes");
        assert_eq!(
            serde_name.as_str(),
            Some(v.as_str()),
            "{v:?}: strum and serde disagree on its name"
        );
        assert_eq!(
            T::from_name(v.as_str()).map(|x| x.as_str()),
            Some(v.as_str())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(
        Debug, Clone, Copy, PartialEq, serde::Serialize, strum::IntoStaticStr, strum::VariantArray,
    )]
    #[serde(rename_all = "kebab-case")]
    #[strum(serialize_all = "kebab-case")]
    enum Sample {
        VirtioNetPci,
        E1000e,
    }

    #[test]
    fn names_come_from_the_derives() {
        assert_eq!(Sample::VirtioNetPci.as_str(), "virtio-net-pci");
        assert_eq!(Sample::from_name("e1000e"), Some(Sample::E1000e));
        assert_eq!(Sample::from_name("e1000"), None);
        assert_serde_names::<Sample>();
    }

    #[derive(Debug, Clone, Copy, serde::Serialize, strum::IntoStaticStr, strum::VariantArray)]
    #[serde(rename_all = "kebab-case")]
    enum Drifted {
        VirtioNetPci,
    }

    #[test]
    #[should_panic(expected = "strum and serde disagree")]
    fn a_drifted_name_is_caught() {
        assert_serde_names::<Drifted>();
    }
}
