//! A scenario's `load` entry: a module name followed by its parameters in one string
//! (`'ib_ipoib send_queue_size=256'`), split the way the kernel's `next_arg` splits them
//! (whitespace, double quotes around values), and checked against the module's `parm` list.

use serde::Serialize;

use super::modinfo::ModInfo;
use super::name::normalize;

/// Parameters every module accepts without declaring them (kernel/module/main.c:
/// `unknown_module_param_cb` handles `async_probe`, dynamic debug handles `dyndbg`).
const ALWAYS_ACCEPTED: [&str; 2] = ["async_probe", "dyndbg"];

/// One `name=value` (or bare `name`, which sets a bool parameter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleParam {
    pub name: String,
    pub value: Option<String>,
}

impl std::fmt::Display for ModuleParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) if v.contains(char::is_whitespace) => write!(f, "{}=\"{v}\"", self.name),
            Some(v) => write!(f, "{}={v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A module as the user asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleSpec {
    /// The text as given.
    pub text: String,
    /// The kernel's spelling of the name.
    pub name: String,
    pub params: Vec<ModuleParam>,
}

/// Parses `name [param[=value]]…`.
pub fn parse_spec(text: &str) -> Result<ModuleSpec, String> {
    let words = split_words(text)?;
    let mut words = words.into_iter();
    let first = words
        .next()
        .ok_or_else(|| "empty module entry: expected a module name".to_string())?;
    let name = normalize(&first);
    if name.is_empty() || name.contains('=') {
        return Err(format!(
            "{text:?}: expected a module name first, found {first:?}"
        ));
    }
    let params = words
        .map(|word| match word.split_once('=') {
            Some((n, v)) => ModuleParam {
                name: n.to_string(),
                value: Some(v.to_string()),
            },
            None => ModuleParam {
                name: word,
                value: None,
            },
        })
        .collect::<Vec<_>>();
    if let Some(p) = params.iter().find(|p| p.name.is_empty()) {
        return Err(format!("{text:?}: parameter {p} has no name"));
    }
    Ok(ModuleSpec {
        text: text.to_string(),
        name,
        params,
    })
}

/// Whitespace-separated words; a double-quoted stretch keeps its spaces (quotes removed).
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quoted_from: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match c {
            '"' => {
                quoted_from = match quoted_from {
                    Some(_) => None,
                    None => Some(i),
                };
                in_word = true;
            }
            c if c.is_whitespace() && quoted_from.is_none() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if let Some(at) = quoted_from {
        return Err(format!(
            "{text:?}: quote opened at byte {at} is never closed"
        ));
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// Parameters of `spec` that the module does not declare.
pub fn unknown_params<'a>(params: &'a [ModuleParam], info: &ModInfo) -> Vec<&'a ModuleParam> {
    params
        .iter()
        .filter(|p| {
            let wanted = p.name.replace('-', "_");
            !ALWAYS_ACCEPTED.contains(&wanted.as_str())
                && !info
                    .parms
                    .iter()
                    .any(|known| known.name.replace('-', "_") == wanted)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_name_and_params() {
        let s = parse_spec("ib_ipoib send_queue_size=256  lro=0 flag").unwrap();
        assert_eq!(s.name, "ib_ipoib");
        let shown: Vec<String> = s.params.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown, vec!["send_queue_size=256", "lro=0", "flag"]);
        assert_eq!(
            parse_spec("/lib/modules/ib/ib_core.ko").unwrap().name,
            "ib_core"
        );
    }

    #[test]
    fn quotes_keep_spaces() {
        let s = parse_spec(r#"m opts="a b c" x=1"#).unwrap();
        assert_eq!(s.params[0].value.as_deref(), Some("a b c"));
        assert_eq!(s.params[0].to_string(), r#"opts="a b c""#);
        assert_eq!(s.params[1].name, "x");
    }

    #[test]
    fn malformed_entries_say_what_and_where() {
        assert!(parse_spec("   ")
            .unwrap_err()
            .contains("empty module entry"));
        assert!(parse_spec("m x=\"open").unwrap_err().contains("byte 4"));
        assert!(parse_spec("a=1").unwrap_err().contains("module name first"));
        assert!(parse_spec("m =3").unwrap_err().contains("has no name"));
    }

    #[test]
    fn unknown_params_are_those_not_declared() {
        let info = ModInfo::parse_section(b"parmtype=send_queue_size:int\0parm=debug-level:x\0");
        let s =
            parse_spec("m send_queue_size=1 debug_level=2 lro=0 async_probe dyndbg=+p").unwrap();
        let unknown: Vec<&str> = unknown_params(&s.params, &info)
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(unknown, vec!["lro"]);
    }
}
