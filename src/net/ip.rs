//! Runs iproute2's `ip`, inside a namespace with `-n NAME`, and turns a failure into a typed error
//! carrying the command line and ip's own message.

use std::process::{Command, Stdio};

use super::NetError;

/// `ip ARGS…` in the host namespace.
pub fn ip(args: &[&str]) -> Result<(), NetError> {
    run(args)
}

/// `ip -n NAMESPACE ARGS…`.
pub fn ip_in(namespace: &str, args: &[&str]) -> Result<(), NetError> {
    let mut all = vec!["-n", namespace];
    all.extend_from_slice(args);
    run(&all)
}

fn run(args: &[&str]) -> Result<(), NetError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetError::Spawn {
            program: "ip".into(),
            source,
            hint: "install iproute2",
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
