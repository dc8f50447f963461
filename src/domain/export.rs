//! The rows of an activity report as a compliance reviewer downloads them:
//! CSV (RFC 4180, safe to open in a spreadsheet) or JSON lines.
//!
//! The writer is a few lines: RFC 4180 only asks for CRLF record ends and
//! for fields holding a comma, a quote or a line break to be quoted, with
//! quotes doubled. Spreadsheets also run a cell that starts with `=`, `+`,
//! `-`, `@`, a tab or a carriage return as a formula; such a cell gets a
//! leading `'`, which they show as text.

use std::borrow::Cow;

use serde::Serialize;

use super::{Millis, Operation};

/// The columns, in order; the CSV header row and the JSON keys.
pub const COLUMNS: [&str; 15] = [
    "operation_id",
    "queued_at",
    "started_at",
    "finished_at",
    "service",
    "environment",
    "type",
    "status",
    "trigger_kind",
    "source",
    "author",
    "reason",
    "commit",
    "duration_ms",
    "rollback",
];

/// A stored time as the API shows it (RFC 3339 in UTC, as GraphQL's
/// `DateTime` renders it).
pub fn time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339()
}

/// The cells of `op`, in [`COLUMNS`] order; `None` for an empty cell.
fn cells(op: &Operation) -> [Option<Cow<'_, str>>; 15] {
    let text = |s: &'static str| Some(Cow::Borrowed(s));
    [
        Some(Cow::Owned(op.id.to_string())),
        Some(Cow::Owned(time(op.queued_at))),
        op.started_at.map(|t| Cow::Owned(time(t))),
        op.finished_at.map(|t| Cow::Owned(time(t))),
        Some(Cow::Borrowed(op.service_name.as_str())),
        Some(Cow::Borrowed(op.environment_name.as_str())),
        text(op.op_type.as_str()),
        text(op.status.as_str()),
        text(op.trigger.kind.as_str()),
        text(op.trigger.source.as_str()),
        op.trigger.author.as_ref().map(|a| Cow::Borrowed(a.name.as_str())),
        op.trigger.reason.map(|r| Cow::Borrowed(r.as_str())),
        op.commit.as_deref().map(Cow::Borrowed),
        op.duration_ms().map(|d| Cow::Owned(d.to_string())),
        text(op.rollback.as_str()),
    ]
}

/// Appends the CSV header row.
pub fn csv_header(out: &mut String) {
    write_record(out, COLUMNS.iter().map(|c| Some(*c)));
}

/// Appends `op` as one CSV record.
pub fn csv_row(out: &mut String, op: &Operation) {
    let cells = cells(op);
    write_record(out, cells.iter().map(|c| c.as_deref()));
}

fn write_record<'a>(out: &mut String, cells: impl Iterator<Item = Option<&'a str>>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_cell(out, cell.unwrap_or(""));
    }
    out.push_str("\r\n");
}

/// One field: defused if a spreadsheet would run it, quoted if it holds a
/// comma, a quote or a line break.
fn write_cell(out: &mut String, cell: &str) {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = cell.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    if quote {
        for c in cell.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(cell);
    }
}

/// One JSON line: the same columns as keys, `null` for an empty cell, the
/// duration as a number. Values are as stored (JSON is not run as a
/// formula).
#[derive(Serialize)]
struct JsonRow<'a> {
    operation_id: String,
    queued_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    service: &'a str,
    environment: &'a str,
    #[serde(rename = "type")]
    op_type: &'static str,
    status: &'static str,
    trigger_kind: &'static str,
    source: &'static str,
    author: Option<&'a str>,
    reason: Option<&'static str>,
    commit: Option<&'a str>,
    duration_ms: Option<i64>,
    rollback: &'static str,
}

/// Appends `op` as one JSON line.
pub fn ndjson_row(out: &mut String, op: &Operation) {
    let row = JsonRow {
        operation_id: op.id.to_string(),
        queued_at: time(op.queued_at),
        started_at: op.started_at.map(time),
        finished_at: op.finished_at.map(time),
        service: &op.service_name,
        environment: &op.environment_name,
        op_type: op.op_type.as_str(),
        status: op.status.as_str(),
        trigger_kind: op.trigger.kind.as_str(),
        source: op.trigger.source.as_str(),
        author: op.trigger.author.as_ref().map(|a| a.name.as_str()),
        reason: op.trigger.reason.map(|r| r.as_str()),
        commit: op.commit.as_deref(),
        duration_ms: op.duration_ms(),
        rollback: op.rollback.as_str(),
    };
    // A struct of strings and numbers always serialises.
    out.push_str(&serde_json::to_string(&row).unwrap_or_default());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::op;
    use crate::domain::{Member, OperationStatus, OperationType, Trigger, TriggerSource};

    fn cell(raw: &str) -> String {
        let mut out = String::new();
        write_cell(&mut out, raw);
        out
    }

    #[test]
    fn fields_with_commas_quotes_and_line_breaks_are_quoted() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("crlf\r\n"), "\"crlf\r\n\"");
        assert_eq!(cell("Zoë 🚀"), "Zoë 🚀");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn formula_like_cells_are_defused() {
        for (raw, safe) in [
            ("=1+2", "'=1+2"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("=HYPERLINK(\"x\",\"y\")", "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\""),
            ("a=b", "a=b"),
        ] {
            assert_eq!(cell(raw), safe, "{raw:?}");
        }
    }

    #[test]
    fn a_row_has_every_column_and_ends_with_crlf() {
        let mut o =
            op(3, OperationType::Deploy, OperationStatus::DeploymentOk).with_commit("c1").timed(500, 2_500);
        o.trigger =
            Trigger::user(Member { id: 0, name: "Doe, \"J\"".into() }, TriggerSource::Github).unwrap();
        let mut out = String::new();
        csv_header(&mut out);
        csv_row(&mut out, &o);
        let expected = "operation_id,queued_at,started_at,finished_at,service,environment,type,status,\
            trigger_kind,source,author,reason,commit,duration_ms,rollback\r\n\
            op_3,1970-01-01T00:00:03+00:00,1970-01-01T00:00:03.500+00:00,1970-01-01T00:00:05.500+00:00,\
            api,prod,DEPLOY,DEPLOYMENT_OK,USER,GITHUB,\"Doe, \"\"J\"\"\",,c1,2000,NOT_NEEDED\r\n";
        assert_eq!(out, expected);

        let mut line = String::new();
        ndjson_row(&mut line, &o);
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["author"], "Doe, \"J\"");
        assert_eq!(json["duration_ms"], 2000);
        assert_eq!(json["reason"], serde_json::Value::Null);
        assert_eq!(json.as_object().unwrap().len(), COLUMNS.len());
    }
}
