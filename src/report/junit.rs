//! JUnit XML as Jenkins' junit plugin and GitLab read it: `<testsuites>` holding one
//! `<testsuite>` per run (or shard), one `<testcase>` per scenario. Written by hand, not with
//! `quick-junit`: that crate passes U+FFFE/U+FFFF through (XML 1.0 forbids them) and silently
//! drops control characters; here every string goes through [`super::text`].

use std::fmt::Write as _;
use std::path::Path;

use super::model::{Outcome, RunReport, ScenarioReport};
use super::text::{xml_attr, xml_text};
use crate::fsutil::{write_atomic, OutputError};
use crate::names::Named;

/// The suite's name: `bootrig`, or `bootrig shard K/N` for one shard's report.
pub fn suite_name(report: &RunReport) -> String {
    match report.shard {
        Some(s) => format!("bootrig shard {}/{}", s.index, s.total),
        None => "bootrig".to_owned(),
    }
}

/// The whole document.
pub fn to_junit_xml(report: &RunReport) -> String {
    let t = report.totals();
    let mut x = String::with_capacity(4096);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let counts = format!(
        "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\"",
        t.tests,
        t.failed,
        t.errors,
        t.skipped,
        seconds(report.duration_seconds)
    );
    let name = xml_attr(&suite_name(report));
    let _ = writeln!(x, "<testsuites name=\"{name}\" {counts}>");
    let _ = writeln!(
        x,
        "  <testsuite name=\"{name}\" {counts} timestamp=\"{}\" hostname=\"{}\">",
        xml_attr(&report.started),
        xml_attr(&report.host)
    );
    let _ = writeln!(
        x,
        "    <properties>\n      <property name=\"bootrig_version\" value=\"{}\"/>\n    </properties>",
        xml_attr(&report.bootrig_version)
    );
    for s in &report.scenarios {
        testcase(&mut x, s);
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Writes [`to_junit_xml`] to `path` atomically.
pub fn write_junit(path: &Path, report: &RunReport, force: bool) -> Result<(), OutputError> {
    write_atomic(path, to_junit_xml(report).as_bytes(), force)
}

/// `bootrig.<firmware>.<method>`: Jenkins shows the last dot-part as the class, the rest as package.
pub fn classname(s: &ScenarioReport) -> String {
    let part = |v: &str| {
        let v = v.trim();
        if v.is_empty() {
            "unknown".to_owned()
        } else {
            v.replace('.', "_")
        }
    };
    format!(
        "bootrig.{}.{}",
        part(&s.boot.firmware),
        part(&s.boot.method)
    )
}

fn testcase(x: &mut String, s: &ScenarioReport) {
    let _ = writeln!(
        x,
        "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" time=\"{:.3}\">",
        xml_attr(&classname(s)),
        xml_attr(&s.id),
        xml_attr(&s.file),
        seconds(s.duration_seconds)
    );
    if let Some(adapter) = &s.boot.stand_in {
        let _ = writeln!(
            x,
            "      <properties><property name=\"bootrig.stand_in\" value=\"{}\"/></properties>",
            xml_attr(adapter)
        );
    }
    match s.outcome {
        Outcome::Pass => {}
        Outcome::Skip => {
            let reason = s.reason.as_deref().unwrap_or("skipped");
            let _ = writeln!(x, "      <skipped message=\"{}\"/>", xml_attr(reason));
        }
        Outcome::Fail | Outcome::Error => {
            let element = if s.outcome == Outcome::Fail {
                "failure"
            } else {
                "error"
            };
            let (message, kind) = headline(s);
            let _ = writeln!(
                x,
                "      <{element} message=\"{}\" type=\"{}\">{}</{element}>",
                xml_attr(&message),
                xml_attr(&kind),
                xml_text(&failure_body(s))
            );
        }
    }
    let _ = writeln!(
        x,
        "      <system-out>{}</system-out>\n    </testcase>",
        xml_text(&system_out(s))
    );
}

/// `(message, type)` of a failure or error: the cause when there is one, else the reason or the
/// first finding.
fn headline(s: &ScenarioReport) -> (String, String) {
    if let Some(c) = &s.cause {
        return (
            format!("{}: {}", c.kind, c.summary),
            c.kind.as_str().to_owned(),
        );
    }
    let fallback = if s.outcome == Outcome::Error {
        "error"
    } else {
        "failed"
    };
    let message = s
        .reason
        .clone()
        .or_else(|| s.findings.first().map(|f| f.to_string()))
        .unwrap_or_else(|| fallback.to_owned());
    (message, fallback.to_owned())
}

fn failure_body(s: &ScenarioReport) -> String {
    let mut b = String::new();
    if let Some(c) = &s.cause {
        let _ = writeln!(b, "{}: {}", c.kind, c.summary);
        if let Some(p) = &c.phase {
            let _ = writeln!(b, "phase: {p}");
        }
        if !c.evidence.is_empty() {
            b.push_str("evidence:\n");
            for line in &c.evidence {
                let _ = writeln!(b, "  {line}");
            }
        }
    }
    if let Some(r) = &s.reason {
        let _ = writeln!(b, "reason: {r}");
    }
    if let Some(e) = &s.expected_failure {
        let _ = writeln!(b, "expected failure: {e}");
    }
    for f in &s.findings {
        let _ = writeln!(b, "finding: {f}");
    }
    if !s.console_excerpt.is_empty() {
        b.push_str("--- console ---\n");
        b.push_str(&s.console_excerpt);
        if !s.console_excerpt.ends_with('\n') {
            b.push('\n');
        }
    }
    b
}

fn system_out(s: &ScenarioReport) -> String {
    let mut o = String::new();
    let b = &s.boot;
    let _ = writeln!(
        o,
        "boot: method={} firmware={} nic={} fetch={} accel={}",
        b.method, b.firmware, b.nic, b.fetch, b.accel
    );
    if let Some(adapter) = &b.stand_in {
        let _ = writeln!(
            o,
            "stand-in adapter {adapter}: not a ConnectX; proves the lab path only"
        );
    }
    if s.outcome == Outcome::Pass {
        if let Some(e) = &s.expected_failure {
            let _ = writeln!(o, "expected failure observed: {e}");
        }
    }
    if !s.phases.is_empty() {
        o.push_str("phases:\n");
        for p in &s.phases {
            let _ = writeln!(
                o,
                "  {:<16} at {:>8.3} s  took {:>8.3} s",
                p.name.as_str(),
                seconds(p.at_seconds),
                seconds(p.seconds)
            );
        }
    }
    if let Some(a) = &s.artifacts {
        let _ = writeln!(o, "artifacts: {}", a.display());
    }
    o
}

/// Times as JUnit readers parse them: finite and not negative.
fn seconds(s: f64) -> f64 {
    if s.is_finite() && s > 0.0 {
        s
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::sample::{run, scenario};
    use super::super::model::{BootSummary, CauseReport, Shard};
    use super::*;

    fn parse(xml: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
    }

    #[test]
    fn a_stand_in_run_is_marked_in_the_table_the_json_and_junit() {
        let mut stand_in = scenario("lab/nic0.toml", Outcome::Pass);
        stand_in.boot.stand_in = Some("nic0 (0000:00:03.0)".into());
        stand_in.boot.nic = BootSummary::passed_nic("nic0", "0000:00:03.0", None);
        let r = run(vec![stand_in, scenario("real.toml", Outcome::Pass)]);

        let table = super::super::table::render_table(&r, false);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[1].starts_with("lab/nic0.toml  PASS (stand-in)"),
            "{table}"
        );
        // The guest had the passed function, not an emulated NIC.
        assert_eq!(lines[2], "    guest NIC: vfio-pci:nic0@0000:00:03.0");
        assert_eq!(
            lines[3],
            "    stand-in adapter nic0 (0000:00:03.0): not a ConnectX; proves the lab path only"
        );
        assert!(
            !lines[4].contains("stand-in") && !lines[4].contains("guest NIC"),
            "{table}"
        );

        let json: serde_json::Value =
            serde_json::from_str(&super::super::json::to_json(&r)).unwrap();
        assert_eq!(
            json["scenarios"][0]["boot"]["stand_in"],
            "nic0 (0000:00:03.0)"
        );
        assert!(json["scenarios"][1]["boot"].get("stand_in").is_none());
        assert_eq!(
            json["scenarios"][0]["boot"]["nic"],
            "vfio-pci:nic0@0000:00:03.0"
        );
        let back =
            super::super::json::parse_report(Path::new("r.json"), &super::super::json::to_json(&r))
                .unwrap();
        assert_eq!(
            back.scenarios[0].boot.stand_in,
            r.scenarios[0].boot.stand_in
        );

        let xml = to_junit_xml(&r);
        let doc = parse(&xml);
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        let prop = cases[0]
            .descendants()
            .find(|n| n.has_tag_name("property"))
            .expect("a stand-in property");
        assert_eq!(prop.attribute("name"), Some("bootrig.stand_in"));
        assert_eq!(prop.attribute("value"), Some("nic0 (0000:00:03.0)"));
        let out = cases[0]
            .descendants()
            .find(|n| n.has_tag_name("system-out"))
            .and_then(|n| n.text())
            .unwrap();
        assert!(
            out.contains("nic=vfio-pci:nic0@0000:00:03.0 fetch="),
            "{out}"
        );
        assert!(
            out.contains("stand-in adapter nic0 (0000:00:03.0)"),
            "{out}"
        );
        assert!(!cases[1].descendants().any(|n| n.has_tag_name("property")));
    }

    #[test]
    fn counts_and_elements_per_outcome() {
        let r = run(vec![
            scenario("pass.toml", Outcome::Pass),
            scenario("fail.toml", Outcome::Fail),
            scenario("skip.toml", Outcome::Skip),
            scenario("err.toml", Outcome::Error),
        ]);
        let xml = to_junit_xml(&r);
        let doc = parse(&xml);
        let suite = doc
            .descendants()
            .find(|n| n.has_tag_name("testsuite"))
            .unwrap();
        assert_eq!(suite.attribute("name"), Some("bootrig"));
        assert_eq!(suite.attribute("tests"), Some("4"));
        assert_eq!(suite.attribute("failures"), Some("1"));
        assert_eq!(suite.attribute("errors"), Some("1"));
        assert_eq!(suite.attribute("skipped"), Some("1"));
        assert_eq!(suite.attribute("time"), Some("42.000"));
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 4);
        assert_eq!(cases[1].attribute("classname"), Some("bootrig.uefi.pxe"));
        assert_eq!(cases[1].attribute("name"), Some("fail.toml"));
        assert_eq!(cases[1].attribute("time"), Some("12.500"));
        let failure = cases[1]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(failure.attribute("type"), Some("unknown-symbol"));
        assert_eq!(
            failure.attribute("message"),
            Some("unknown-symbol: mlx4_ib: Unknown symbol ib_register_device")
        );
        let body = failure.text().unwrap();
        assert!(
            body.contains("Unknown symbol ib_register_device (err -2)"),
            "{body}"
        );
        assert!(body.contains("--- console ---\nLinux version"), "{body}");
        let skipped = cases[2]
            .children()
            .find(|n| n.has_tag_name("skipped"))
            .unwrap();
        assert_eq!(skipped.attribute("message"), Some("needs KVM"));
        let error = cases[3]
            .children()
            .find(|n| n.has_tag_name("error"))
            .unwrap();
        assert_eq!(
            error.attribute("message"),
            Some("scenario.toml: unknown key `bogus`")
        );
        assert!(!cases[0]
            .children()
            .any(|n| n.has_tag_name("failure") || n.has_tag_name("error")));
        let out = cases[0]
            .children()
            .find(|n| n.has_tag_name("system-out"))
            .unwrap()
            .text()
            .unwrap();
        assert!(
            out.contains("kernel") && out.contains("took    2.250 s"),
            "{out}"
        );
    }

    #[test]
    fn shard_names_the_suite() {
        let mut r = run(vec![scenario("a.toml", Outcome::Pass)]);
        r.shard = Some(Shard { index: 2, total: 3 });
        let xml = to_junit_xml(&r);
        let doc = parse(&xml);
        assert_eq!(
            doc.root_element().attribute("name"),
            Some("bootrig shard 2/3")
        );
    }

    #[test]
    fn ansi_console_still_parses_and_keeps_its_words() {
        let mut s = scenario("fail.toml", Outcome::Fail);
        s.console_excerpt =
            "\x1b[0;32m[  OK  ]\x1b[0m Started\r\n\x1b[1;31mpanic\x1b[0m\0\x07 <end> & \"q\""
                .into();
        s.cause = Some(CauseReport {
            kind: crate::verdict::cause::CauseKind::KernelPanic,
            summary: "Kernel panic \x1b[31m- not syncing\x1b".into(),
            phase: None,
            evidence: vec!["\x1b[1mKernel panic\x1b[0m\u{fffe}".into()],
        });
        let xml = to_junit_xml(&run(vec![s]));
        let doc = parse(&xml);
        let failure = doc
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            failure.attribute("message"),
            Some("kernel-panic: Kernel panic - not syncing\u{241b}")
        );
        let body = failure.text().unwrap();
        assert!(
            body.contains("[  OK  ] Started\r\npanic\u{2400}\u{2407} <end> & \"q\""),
            "{body:?}"
        );
    }

    #[test]
    fn the_checker_rejects_raw_control_characters() {
        // Guards the tests above: the parser must be strict enough to notice an unescaped ESC.
        assert!(roxmltree::Document::parse("<a>\x1b[31m</a>").is_err());
        assert!(roxmltree::Document::parse("<a>\u{ffff}</a>").is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_console_text_gives_well_formed_xml(
            excerpt in proptest::prelude::any::<String>(),
            evidence in proptest::collection::vec(proptest::prelude::any::<String>(), 0..4),
            kind in proptest::sample::select(<crate::verdict::cause::CauseKind as strum::VariantArray>::VARIANTS.to_vec()),
            phase in proptest::sample::select(<crate::verdict::phases::Phase as strum::VariantArray>::VARIANTS.to_vec()),
            id in proptest::prelude::any::<String>(),
            ansi in "(\x1b\\[[0-9;]{0,6}[a-zA-Z]?|\x1b\\]0;[a-z]{0,5}\x07?|[\x00-\x1f\u{fffe}\u{ffff}]|[a-z<>&\"' ]{0,8})*",
        ) {
            let mut s = scenario("x.toml", Outcome::Fail);
            s.id = id.clone();
            s.console_excerpt = format!("{excerpt}{ansi}");
            s.cause = Some(CauseReport {
                kind,
                summary: ansi.clone(),
                phase: Some(phase),
                evidence,
            });
            s.reason = Some(ansi.clone());
            let xml = to_junit_xml(&run(vec![s, scenario("s.toml", Outcome::Skip)]));
            let doc = roxmltree::Document::parse(&xml);
            proptest::prop_assert!(doc.is_ok(), "{:?}\n{xml:?}", doc.err());
            let doc = doc.unwrap();
            let cases = doc.descendants().filter(|n| n.has_tag_name("testcase")).count();
            proptest::prop_assert_eq!(cases, 2);
        }
    }
}
