//! Log lines of operations and services, and the rules for cutting text
//! into stored lines.

use serde::{Deserialize, Serialize};

use super::{InstanceId, Millis};

/// Longest stored line, in bytes. Longer text is cut into pieces of at most
/// this size; every piece after the first is marked `continued`, so the
/// original text is the concatenation of a piece and its continuations.
pub const MAX_LINE: usize = 64 * 1024;

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Written by opsgraph itself: steps, status changes, decisions.
    System,
}

impl LogStream {
    /// The name clients see (`STDOUT`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "STDOUT",
            Self::Stderr => "STDERR",
            Self::System => "SYSTEM",
        }
    }
}

/// One stored line. `seq` counts 1, 2, 3 … per operation or per service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: u64,
    pub at: Millis,
    pub stream: LogStream,
    pub text: String,
    pub instance: Option<InstanceId>,
    /// This line carries the rest of the previous one, which was longer
    /// than [`MAX_LINE`]: join the two without a line break.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continued: bool,
}

/// A line to append; the store gives it its `seq` and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLine {
    pub stream: LogStream,
    pub text: String,
    pub instance: Option<InstanceId>,
    /// See [`LogLine::continued`].
    pub continued: bool,
}

impl NewLine {
    pub fn new(stream: LogStream, text: impl Into<String>) -> Self {
        Self { stream, text: text.into(), instance: None, continued: false }
    }

    /// A line written by opsgraph itself.
    pub fn system(text: impl Into<String>) -> Self {
        Self::new(LogStream::System, text)
    }

    /// The same line, printed by `instance`.
    pub fn of_instance(self, instance: InstanceId) -> Self {
        Self { instance: Some(instance), ..self }
    }

    /// This line as stored lines of at most [`MAX_LINE`] bytes: itself when
    /// short enough, else its pieces, cut on character boundaries.
    pub fn into_pieces(self) -> Vec<NewLine> {
        if self.text.len() <= MAX_LINE {
            return vec![self];
        }
        split_long(&self.text)
            .into_iter()
            .enumerate()
            .map(|(n, piece)| NewLine {
                text: piece.to_owned(),
                continued: self.continued || n > 0,
                ..self.clone()
            })
            .collect()
    }
}

/// Lines sent by a client as strings: each string may hold several lines
/// (separated by `\n` or `\r\n`), each of which becomes one stored line.
/// A single trailing line break does not make an empty last line.
pub fn client_lines(texts: Vec<String>, stream: LogStream) -> Vec<NewLine> {
    let mut lines = Vec::with_capacity(texts.len());
    for text in texts {
        if !text.contains('\n') {
            lines.push(NewLine::new(stream, text));
            continue;
        }
        let body = text.strip_suffix('\n').unwrap_or(&text);
        for line in body.split('\n') {
            lines.push(NewLine::new(stream, line.strip_suffix('\r').unwrap_or(line)));
        }
    }
    lines
}

/// Cuts `text` into pieces of at most [`MAX_LINE`] bytes on character
/// boundaries; their concatenation is `text`.
pub fn split_long(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head);
        rest = tail;
    }
    parts.push(rest);
    parts
}

/// Which lines a log listing returns.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only these streams (all when empty).
    pub streams: Vec<LogStream>,
    /// Only lines containing this text.
    pub contains: Option<String>,
    /// Only lines printed by this instance.
    pub instance: Option<InstanceId>,
    /// Only lines stored at or after this time.
    pub since: Option<Millis>,
    /// Only lines stored before this time.
    pub until: Option<Millis>,
}

impl LogFilter {
    pub fn matches(&self, line: &LogLine) -> bool {
        (self.streams.is_empty() || self.streams.contains(&line.stream))
            && self.contains.as_deref().is_none_or(|c| line.text.contains(c))
            && self.instance.is_none_or(|i| line.instance == Some(i))
            && self.since.is_none_or(|t| line.at >= t)
            && self.until.is_none_or(|t| line.at < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_split_on_char_boundaries_and_rejoin() {
        let text = "é".repeat(MAX_LINE / 2 + 10);
        let pieces = NewLine::new(LogStream::Stdout, text.clone()).into_pieces();
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| p.text.len() <= MAX_LINE));
        assert_eq!([pieces[0].continued, pieces[1].continued], [false, true]);
        assert_eq!(pieces.iter().map(|p| p.text.as_str()).collect::<String>(), text);
        let exact = "x".repeat(MAX_LINE);
        assert_eq!(NewLine::new(LogStream::Stdout, exact).into_pieces().len(), 1);
        assert_eq!(split_long("short"), ["short"]);
    }

    #[test]
    fn client_strings_become_one_line_per_line_break() {
        let lines = client_lines(vec!["a".into(), "b\r\nc\n".into(), "\n".into()], LogStream::Stderr);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c", ""]);
        assert!(lines.iter().all(|l| l.stream == LogStream::Stderr));
    }

    #[test]
    fn filters_narrow_by_every_field() {
        let line = LogLine {
            seq: 1,
            at: 1_000,
            stream: LogStream::Stdout,
            text: "ready on 8080".into(),
            instance: Some(InstanceId(3)),
            continued: false,
        };
        assert!(LogFilter::default().matches(&line));
        let only = |f: LogFilter| f.matches(&line);
        assert!(only(LogFilter { contains: Some("8080".into()), ..Default::default() }));
        assert!(!only(LogFilter { contains: Some("9090".into()), ..Default::default() }));
        assert!(!only(LogFilter { streams: vec![LogStream::Stderr], ..Default::default() }));
        assert!(!only(LogFilter { instance: Some(InstanceId(4)), ..Default::default() }));
        assert!(only(LogFilter { since: Some(1_000), until: Some(1_001), ..Default::default() }));
        assert!(!only(LogFilter { until: Some(1_000), ..Default::default() }));
    }
}
