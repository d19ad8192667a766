//! Just enough of POSIX shell structure to place a stanza: where a line leaves the script at
//! top level (outside if/case/loops/braces and continuation lines), which lines are inside a
//! function body, which are comments, here-documents or multi-line strings, and which hand the
//! boot over (`exec CMD`, `switch_root`, `run-init`).

pub struct Blocks {
    /// After line i the script is back at top level.
    pub top_level_after: Vec<bool>,
    /// The function whose body line i is in.
    pub function: Vec<Option<String>>,
    /// Comment, blank, here-document or multi-line string lines: never anchors.
    pub ignored: Vec<bool>,
    /// Top-level lines that end the script's own run.
    pub handoff: Vec<bool>,
}

enum Frame {
    If,
    Case,
    Loop,
    Brace(Option<String>),
}

pub fn scan(lines: &[&[u8]]) -> Blocks {
    let n = lines.len();
    let mut b = Blocks {
        top_level_after: vec![false; n],
        function: vec![None; n],
        ignored: vec![false; n],
        handoff: vec![false; n],
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut quote: Option<u8> = None;
    let mut heredoc: Option<(Vec<u8>, bool)> = None;
    let mut pending_function: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        b.function[i] = current_function(&stack);
        if let Some((delim, strip_tabs)) = &heredoc {
            b.ignored[i] = true;
            let l = if *strip_tabs {
                trim_start_tabs(line)
            } else {
                line
            };
            if l == delim.as_slice() {
                heredoc = None;
            }
            continue;
        }
        let started_in_quote = quote.is_some();
        let words = words(line, &mut quote, &mut heredoc);
        b.ignored[i] = started_in_quote || words.is_empty();
        let mut command_position = true;
        for (k, w) in words.iter().enumerate() {
            let w = w.as_slice();
            if command_position {
                match w {
                    b"if" => stack.push(Frame::If),
                    b"case" => stack.push(Frame::Case),
                    b"do" => stack.push(Frame::Loop),
                    b"{" => stack.push(Frame::Brace(pending_function.take())),
                    b"fi" | b"esac" | b"done" | b"}" => {
                        stack.pop();
                    }
                    _ => {}
                }
            }
            // `name()` or `name ()`: the body (`{` ...) follows.
            let name = match w.strip_suffix(b"()") {
                Some(b"") => k.checked_sub(1).map(|p| words[p].as_slice()),
                Some(name) => Some(name),
                None => None,
            };
            let defines_function = name.is_some();
            if let Some(name) = name {
                pending_function = Some(String::from_utf8_lossy(name).into_owned());
            }
            command_position = matches!(
                w,
                b";" | b"&&"
                    | b"||"
                    | b"|"
                    | b"&"
                    | b"!"
                    | b"then"
                    | b"else"
                    | b"elif"
                    | b"do"
                    | b"{"
                    | b"if"
                    | b"while"
                    | b"until"
                    | b";;"
            );
            if defines_function {
                command_position = true;
            }
        }
        if stack.is_empty() && is_handoff(&words) && b.function[i].is_none() {
            b.handoff[i] = true;
        }
        let continues = quote.is_some()
            || heredoc.is_some()
            || line.trim_ascii_end().ends_with(b"\\")
            || matches!(words.last().map(Vec::as_slice), Some(b"&&" | b"||" | b"|"));
        b.top_level_after[i] = stack.is_empty() && !continues;
    }
    b
}

fn current_function(stack: &[Frame]) -> Option<String> {
    stack.iter().rev().find_map(|f| match f {
        Frame::Brace(Some(name)) => Some(name.clone()),
        _ => None,
    })
}

/// `exec CMD ...` (not a redirection-only `exec >file`), `switch_root`, `run-init`.
fn is_handoff(words: &[Vec<u8>]) -> bool {
    let base = |w: &[u8]| -> Vec<u8> { w.rsplit(|&b| b == b'/').next().unwrap_or(w).to_vec() };
    let Some(first) = words.first() else {
        return false;
    };
    let first = base(first);
    if matches!(first.as_slice(), b"switch_root" | b"run-init") {
        return true;
    }
    first == b"exec"
        && words.get(1).is_some_and(|w| {
            !w.is_empty() && !matches!(w[0], b'<' | b'>' | b'0'..=b'9' | b'&' | b';')
        })
}

fn trim_start_tabs(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|&b| b != b'\t').unwrap_or(line.len());
    &line[start..]
}

/// Splits a line into words and operators, tracking quotes across lines and noting a
/// here-document that starts on it. Comments end the line.
fn words(
    line: &[u8],
    quote: &mut Option<u8>,
    heredoc: &mut Option<(Vec<u8>, bool)>,
) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut in_word = quote.is_some();
    let mut i = 0;
    let flush = |cur: &mut Vec<u8>, in_word: &mut bool, out: &mut Vec<Vec<u8>>| {
        if *in_word {
            out.push(std::mem::take(cur));
        }
        *in_word = false;
    };
    while i < line.len() {
        let c = line[i];
        if let Some(q) = *quote {
            if c == b'\\' && q == b'"' && i + 1 < line.len() {
                cur.extend_from_slice(&line[i..i + 2]);
                i += 2;
                continue;
            }
            if c == q {
                *quote = None;
            }
            cur.push(c);
            i += 1;
            continue;
        }
        match c {
            b'\'' | b'"' => {
                *quote = Some(c);
                cur.push(c);
                in_word = true;
            }
            b'\\' => {
                cur.extend_from_slice(&line[i..(i + 2).min(line.len())]);
                in_word = true;
                i += 2;
                continue;
            }
            b'#' if !in_word => break,
            b' ' | b'\t' | b'\r' => flush(&mut cur, &mut in_word, &mut out),
            b';' | b'&' | b'|' => {
                flush(&mut cur, &mut in_word, &mut out);
                let mut op = vec![c];
                if line.get(i + 1) == Some(&c) {
                    op.push(c);
                    i += 1;
                }
                out.push(op);
            }
            b'<' if line.get(i + 1) == Some(&b'<') && line.get(i + 2) != Some(&b'<') => {
                flush(&mut cur, &mut in_word, &mut out);
                i += 2;
                let strip_tabs = line.get(i) == Some(&b'-');
                if strip_tabs {
                    i += 1;
                }
                while line.get(i).is_some_and(|b| *b == b' ' || *b == b'\t') {
                    i += 1;
                }
                let start = i;
                while line
                    .get(i)
                    .is_some_and(|b| !matches!(b, b' ' | b'\t' | b';' | b'&' | b'|' | b'>' | b'<'))
                {
                    i += 1;
                }
                let delim: Vec<u8> = line[start..i]
                    .iter()
                    .copied()
                    .filter(|b| !matches!(b, b'\'' | b'"' | b'\\'))
                    .collect();
                if !delim.is_empty() {
                    *heredoc = Some((delim, strip_tabs));
                }
                out.push(b"<<".to_vec());
                continue;
            }
            _ => {
                cur.push(c);
                in_word = true;
            }
        }
        i += 1;
    }
    if quote.is_none() {
        flush(&mut cur, &mut in_word, &mut out);
    }
    out
}
