//! The README's command table names every command and every option the CLI accepts: a flag added
//! to clap without a word in the table fails here, naming the command and the flag.

use clap::CommandFactory;

use bootrig::cli::Cli;

/// The table's rows, keyed by the command they start with (`bootrig initrd ls`, …).
fn table_rows(readme: &str) -> Vec<&str> {
    readme
        .lines()
        .filter(|l| l.starts_with("| `bootrig "))
        .collect()
}

/// An option as the table may spell it: its long form, or its short one (`-o`, `-j`).
#[derive(Debug)]
struct Flag {
    long: String,
    short: Option<String>,
}

/// Every leaf command's full name (`initrd ls`) and its options, `--help` and `--version` aside.
fn leaves(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, Vec<Flag>)>) {
    for sub in cmd.get_subcommands() {
        let name = format!("{prefix}{}", sub.get_name()).trim().to_owned();
        if sub.has_subcommands() {
            leaves(sub, &format!("{name} "), out);
        } else {
            let flags = sub
                .get_arguments()
                .filter_map(|a| a.get_long().map(|l| (l, a.get_short())))
                .filter(|(l, _)| !matches!(*l, "help" | "version"))
                .map(|(l, s)| Flag {
                    long: format!("--{l}"),
                    short: s.map(|c| format!("-{c} ")),
                })
                .collect();
            out.push((name, flags));
        }
    }
}

#[test]
fn every_command_and_flag_is_in_the_readme_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md beside Cargo.toml");
    let rows = table_rows(&readme);
    let mut commands = Vec::new();
    leaves(&Cli::command(), "", &mut commands);
    assert!(commands.len() >= 10, "found only {commands:?}");
    let mut missing = Vec::new();
    for (name, flags) in &commands {
        let head = format!("| `bootrig {name} ");
        let head_alone = format!("| `bootrig {name}`");
        let Some(row) = rows
            .iter()
            .find(|r| r.starts_with(&head) || r.starts_with(&head_alone))
        else {
            missing.push(format!("no row for `bootrig {name}`"));
            continue;
        };
        // Only the row's first cell: the command and its options.
        let cell = row.split(" | ").next().unwrap_or(row);
        // `check` takes `run`'s options and says so.
        let same_as_run = cell.contains("the same options as `run`");
        for flag in flags {
            let named = cell.contains(flag.long.as_str())
                || flag
                    .short
                    .as_ref()
                    .is_some_and(|s| cell.contains(s.as_str()));
            if !named && !same_as_run {
                missing.push(format!(
                    "`bootrig {name}`: {} not in its README row",
                    flag.long
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README command table:\n{}",
        missing.join("\n")
    );
}
