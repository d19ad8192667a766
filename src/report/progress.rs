//! Live progress for parallel runs. Worker threads report events; on a terminal a block with
//! one line per running scenario is redrawn in place (finished scenarios scroll above it),
//! otherwise each event is one timestamped line. Every event is formatted whole and written
//! under one lock, so lines from different workers never interleave. Output errors are ignored:
//! a closed stderr must not fail a run.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::model::{Outcome, ScenarioReport};
use crate::console::text::strip_escapes;
use crate::names::Named;
use crate::verdict::phases::Phase;

/// Where a running scenario is. A scenario's progress is `started`, then stages in order, then
/// `finished` with its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Its initrd and boot files are being made.
    Build,
    /// QEMU runs; no console line has proven a phase yet.
    Starting,
    /// The boot phase the console last proved.
    Boot(Phase),
}

impl Stage {
    /// The name progress shows: a boot phase by its result.json name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Build => "build",
            Stage::Starting => "starting",
            Stage::Boot(phase) => phase.as_str(),
        }
    }
}

/// Width assumed when the terminal's is unknown; block lines are cut to it so none wraps
/// (a wrapped line would break the cursor arithmetic of the redraw).
const DEFAULT_WIDTH: usize = 80;

pub struct Progress {
    state: Mutex<State>,
    terminal: bool,
    width: usize,
    epoch: Instant,
}

struct State {
    out: Box<dyn Write + Send>,
    /// Running scenarios in start order: sequence number → entry.
    running: BTreeMap<u64, Running>,
    next_seq: u64,
    /// Lines of the block currently on screen (terminal mode).
    drawn: usize,
}

struct Running {
    id: String,
    stage: Stage,
    started: Instant,
}

impl Progress {
    /// Progress to `out`; `terminal` selects the redrawn block, `width` the cut of its lines.
    pub fn new(out: Box<dyn Write + Send>, terminal: bool, width: usize) -> Self {
        Self {
            state: Mutex::new(State {
                out,
                running: BTreeMap::new(),
                next_seq: 0,
                drawn: 0,
            }),
            terminal,
            width: width.max(20),
            epoch: Instant::now(),
        }
    }

    /// Progress on stderr: the block when stderr is a terminal (width from `$COLUMNS`, else 80),
    /// plain lines otherwise.
    pub fn stderr() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(DEFAULT_WIDTH);
        Self::new(Box::new(std::io::stderr()), terminal, width)
    }

    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    pub fn started(&self, id: &str) {
        let mut st = self.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.running.insert(
            seq,
            Running {
                id: id.to_owned(),
                stage: Stage::Starting,
                started: Instant::now(),
            },
        );
        let line = self.stamp(format!("{} started", clean(id)), false);
        self.emit(&mut st, &line);
    }

    /// `id` entered `stage`, `elapsed` after it started.
    pub fn stage(&self, id: &str, stage: Stage, elapsed: Duration) {
        let mut st = self.lock();
        // The worker's clock is the truth: re-anchor the start so the block shows its elapsed.
        let started = Instant::now()
            .checked_sub(elapsed)
            .unwrap_or_else(Instant::now);
        match st.running.values_mut().find(|r| r.id == id) {
            Some(r) => {
                r.stage = stage;
                r.started = started;
            }
            None => {
                // A phase without `started`: track it from now on.
                let seq = st.next_seq;
                st.next_seq += 1;
                st.running.insert(
                    seq,
                    Running {
                        id: id.to_owned(),
                        stage,
                        started,
                    },
                );
            }
        }
        let line = self.stamp(
            format!(
                "{} phase {} at {:.1}s",
                clean(id),
                stage.name(),
                elapsed.as_secs_f64()
            ),
            false,
        );
        self.emit(&mut st, &line);
    }

    /// Something `id`'s run wants its user to know now (it raised a limit, it waits for an
    /// adapter): a line of its own, kept on a terminal, not a stage.
    pub fn note(&self, id: &str, text: &str) {
        let mut st = self.lock();
        let line = self.stamp(format!("{} {}", clean(id), clean(text)), true);
        self.emit(&mut st, &line);
    }

    pub fn finished(&self, report: &ScenarioReport) {
        let mut st = self.lock();
        st.running.retain(|_, r| r.id != report.id);
        let mut line = format!(
            "{} {} {:.1}s",
            report.outcome.label(),
            clean(&report.id),
            report.duration_seconds.max(0.0)
        );
        if report.outcome != Outcome::Pass {
            let why = report
                .cause
                .as_ref()
                .map(|c| c.kind.as_str())
                .or(report.reason.as_deref());
            if let Some(why) = why {
                line.push_str(&format!(" ({})", clean(why)));
            }
        }
        let line = self.stamp(line, true);
        self.emit(&mut st, &line);
    }

    /// Redraws the block so elapsed times move (terminal mode; nothing otherwise). Call it
    /// about once a second.
    pub fn tick(&self) {
        if self.terminal {
            let mut st = self.lock();
            self.redraw(&mut st, None);
        }
    }

    /// Erases the block (terminal mode), leaving the finished lines; call before the table.
    pub fn clear(&self) {
        let mut st = self.lock();
        if self.terminal && st.drawn > 0 {
            let text = erase(st.drawn);
            st.drawn = 0;
            write_all(&mut st.out, &text);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A worker that panicked while holding the lock left the state usable: keep reporting.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Plain mode: the line with its timestamp. Terminal mode: lines that stay (finished
    /// scenarios) go above a redrawn block; start and phase events only redraw.
    fn emit(&self, st: &mut State, line: &Event) {
        if self.terminal {
            let permanent = line.permanent.then_some(line.bare.as_str());
            self.redraw(st, permanent);
        } else {
            write_all(&mut st.out, &format!("{}\n", line.stamped));
        }
    }

    fn redraw(&self, st: &mut State, permanent: Option<&str>) {
        let mut text = erase(st.drawn);
        if let Some(p) = permanent {
            text.push_str(p);
            text.push('\n');
        }
        let now = Instant::now();
        for r in st.running.values() {
            let secs = now.saturating_duration_since(r.started).as_secs();
            let line = format!("  {}  {}  {}s", clean(&r.id), r.stage.name(), secs);
            text.push_str(&cut(&line, self.width - 1));
            text.push('\n');
        }
        st.drawn = st.running.len();
        write_all(&mut st.out, &text);
    }

    fn stamp(&self, bare: String, permanent: bool) -> Event {
        let t = self.epoch.elapsed().as_secs_f64();
        Event {
            stamped: format!("[{t:>8.1}s] {bare}"),
            bare,
            permanent,
        }
    }
}

struct Event {
    stamped: String,
    bare: String,
    /// A finished scenario's line: kept above the block in terminal mode.
    permanent: bool,
}

/// Cursor to the start of the block's first line, then erase to the end of the screen.
fn erase(lines: usize) -> String {
    if lines == 0 {
        String::new()
    } else {
        format!("\x1b[{lines}F\x1b[J")
    }
}

fn write_all(out: &mut Box<dyn Write + Send>, text: &str) {
    if text.is_empty() {
        return;
    }
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// One line, no escape sequences or controls: ids and reasons come from files and consoles.
fn clean(text: &str) -> String {
    strip_escapes(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn cut(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        line.to_owned()
    } else {
        let mut s: String = line.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::sample::scenario;
    use super::*;
    use std::sync::Arc;

    /// A `Write` whose bytes the test can read after the progress has written them.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn plain_mode_writes_one_timestamped_line_per_event() {
        let buf = Shared::default();
        let p = Progress::new(Box::new(buf.clone()), false, 80);
        p.started("a.toml");
        p.stage(
            "a.toml",
            Stage::Boot(Phase::Kernel),
            Duration::from_millis(1500),
        );
        p.tick();
        p.finished(&scenario("a.toml", Outcome::Fail));
        p.clear();
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines
            .iter()
            .all(|l| l.starts_with('[') && l.contains("s] ")));
        assert!(lines[0].ends_with("] a.toml started"));
        assert!(lines[1].ends_with("] a.toml phase kernel at 1.5s"));
        assert!(lines[2].ends_with("] FAIL a.toml 12.5s (unknown-symbol)"));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn terminal_mode_redraws_the_block_and_keeps_finished_lines() {
        let buf = Shared::default();
        let p = Progress::new(Box::new(buf.clone()), true, 80);
        p.started("a.toml");
        p.started("b.toml");
        p.stage(
            "b.toml",
            Stage::Boot(Phase::IpxeDhcp),
            Duration::from_secs(2),
        );
        p.finished(&scenario("a.toml", Outcome::Pass));
        p.clear();
        let text = buf.text();
        // Frames: [a] / erase 1, [a, b] / erase 2, [a, b(ipxe)] / erase 2, PASS a, [b] / erase 1.
        let expected = concat!(
            "  a.toml  starting  0s\n",
            "\x1b[1F\x1b[J",
            "  a.toml  starting  0s\n  b.toml  starting  0s\n",
            "\x1b[2F\x1b[J",
            "  a.toml  starting  0s\n  b.toml  ipxe-dhcp  2s\n",
            "\x1b[2F\x1b[J",
            "PASS a.toml 12.5s\n",
            "  b.toml  ipxe-dhcp  2s\n",
            "\x1b[1F\x1b[J",
        );
        assert_eq!(text, expected);
    }

    /// Progress names a boot phase as result.json does.
    #[test]
    fn boot_stages_are_named_as_result_json_names_phases() {
        for &phase in <Phase as strum::VariantArray>::VARIANTS {
            let json = serde_json::to_value(phase).unwrap();
            assert_eq!(Stage::Boot(phase).name(), json, "{phase:?}");
        }
        assert_eq!(Stage::Build.name(), "build");
        assert_eq!(Stage::Starting.name(), "starting");
    }

    #[test]
    fn terminal_lines_are_cut_to_the_width() {
        let buf = Shared::default();
        let p = Progress::new(Box::new(buf.clone()), true, 30);
        p.started(&format!("{}\x1b[31m.toml", "long/".repeat(20)));
        let text = buf.text();
        let line = text.lines().next().unwrap();
        assert_eq!(line.chars().count(), 29, "{line}");
        assert!(line.ends_with('…') && !line.contains('\x1b'));
    }

    #[test]
    fn lines_from_many_threads_never_interleave() {
        let buf = Shared::default();
        let p = Progress::new(Box::new(buf.clone()), false, 80);
        std::thread::scope(|s| {
            for t in 0..8 {
                let p = &p;
                s.spawn(move || {
                    for i in 0..50 {
                        let id = format!("worker{t}/scenario{i}.toml");
                        p.started(&id);
                        p.stage(&id, Stage::Boot(Phase::Kernel), Duration::from_millis(i));
                        p.finished(&scenario(&id, Outcome::Pass));
                    }
                });
            }
        });
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8 * 50 * 3);
        for l in &lines {
            let body = l.split_once("s] ").map(|x| x.1).unwrap_or("");
            let ok = (body.starts_with("worker") && body.ends_with(" started"))
                || (body.starts_with("worker") && body.contains(".toml phase kernel at "))
                || (body.starts_with("PASS worker") && body.ends_with(".toml 12.5s"));
            assert!(ok, "interleaved or malformed: {l:?}");
        }
    }
}
