//! The public status page over plain HTTP, read without a token:
//! `GET /status` (HTML for a browser or a phone: no script, no outside
//! resource) and `GET /status/feed.atom` (an Atom feed, one entry per
//! published incident and per maintenance window, updated with its
//! timeline). Both show exactly what the public GraphQL reads show.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, error_response};
use crate::domain::Millis;
use crate::domain::status_page::{Availability, Incident, IncidentStatus, TimelineUpdate, Window};
use crate::store::status_page::{self as page, PublicView};

/// Incidents and windows shown on the page and in the feed.
const NEWEST: usize = 50;

/// `GET /status`.
pub async fn html(State(state): State<AppState>) -> Response {
    match state.store.read(|r| page::public_view(r, NEWEST)).await {
        Ok(view) => {
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], render_html(&view)).into_response()
        }
        Err(error) => error_response(error),
    }
}

/// `GET /status/feed.atom`.
pub async fn atom(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    // The Host header is the client's: only what is safe in an IRI is kept.
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(*c)).collect();
    let base = format!("http://{host}");
    match state.store.read(|r| page::public_view(r, NEWEST)).await {
        Ok(view) => {
            ([(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")], render_atom(&view, &base))
                .into_response()
        }
        Err(error) => error_response(error),
    }
}

/// Escapes text for HTML and XML (element content and quoted attributes).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Characters XML 1.0 does not allow are dropped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

fn time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn color(a: Availability) -> &'static str {
    match a {
        Availability::Operational => "#1a7f37",
        Availability::Degraded => "#9a6700",
        Availability::Down => "#cf222e",
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:0 auto;padding:1rem;\
color:#1f2328;line-height:1.45}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}\
.banner{padding:.8rem 1rem;border-radius:.4rem;color:#fff;font-weight:600}\
ul{list-style:none;padding:0}li.c{display:flex;justify-content:space-between;gap:1rem;\
padding:.5rem 0;border-bottom:1px solid #d0d7de}.s{font-weight:600}article{border:1px solid #d0d7de;\
border-radius:.4rem;padding:.6rem 1rem;margin:.8rem 0}time{color:#59636e;font-size:.85rem}\
.u{margin:.5rem 0}.u p{margin:.15rem 0}";

/// The page: overall status, components by group, incidents going on,
/// maintenance, then past incidents.
pub fn render_html(view: &PublicView) -> String {
    let worst = view.components.iter().map(|(_, a)| *a).max().unwrap_or(Availability::Operational);
    let headline = match worst {
        Availability::Operational => "All systems operational",
        Availability::Degraded => "Some systems degraded",
        Availability::Down => "Some systems down",
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Platform status</title><link rel=\"alternate\" type=\"application/atom+xml\" \
         href=\"/status/feed.atom\" title=\"Platform status\"><style>{STYLE}</style></head><body>\
         <h1>Platform status</h1><p class=\"banner\" style=\"background:{}\">{headline}</p>",
        color(worst)
    );
    components_html(&mut out, view);
    let (open, past): (Vec<_>, Vec<_>) =
        view.incidents.iter().partition(|(i, _)| i.status != IncidentStatus::Resolved);
    if !open.is_empty() {
        out.push_str("<h2>Incidents</h2>");
        open.iter().for_each(|(i, u)| incident_html(&mut out, i, u));
    }
    let windows: Vec<_> = view.windows.iter().filter(|(w, _)| !w.status.is_final()).collect();
    if !windows.is_empty() {
        out.push_str("<h2>Maintenance</h2>");
        windows.iter().for_each(|(w, u)| window_html(&mut out, w, u));
    }
    out.push_str("<h2>Past incidents</h2>");
    if past.is_empty() {
        out.push_str("<p>No incident reported.</p>");
    }
    past.iter().for_each(|(i, u)| incident_html(&mut out, i, u));
    out.push_str("<p><a href=\"/status/feed.atom\">Atom feed</a></p></body></html>");
    out
}

fn components_html(out: &mut String, view: &PublicView) {
    let mut groups: Vec<Option<&str>> = Vec::new();
    for (c, _) in &view.components {
        if !groups.contains(&c.group.as_deref()) {
            groups.push(c.group.as_deref());
        }
    }
    groups.sort_by_key(|g| g.is_none());
    for group in groups {
        if let Some(name) = group {
            let _ = write!(out, "<h2>{}</h2>", escape(name));
        } else if view.components.iter().any(|(c, _)| c.group.is_some()) {
            out.push_str("<h2>Other</h2>");
        }
        out.push_str("<ul>");
        for (c, a) in view.components.iter().filter(|(c, _)| c.group.as_deref() == group) {
            let _ = write!(
                out,
                "<li class=\"c\"><span>{}</span><span class=\"s\" style=\"color:{}\">{}</span></li>",
                escape(&c.name),
                color(*a),
                a.label()
            );
        }
        out.push_str("</ul>");
    }
}

fn updates_html(out: &mut String, updates: &[TimelineUpdate], label: fn(&str) -> String) {
    for u in updates.iter().rev() {
        let corrected = if u.corrections.is_empty() { "" } else { " (corrected)" };
        let _ = write!(
            out,
            "<div class=\"u\"><p><strong>{}</strong>{corrected} — {}</p><time datetime=\"{t}\">{t}</time></div>",
            escape(&label(&u.status)),
            escape(&u.text),
            t = time(u.at)
        );
    }
}

fn incident_html(out: &mut String, i: &Incident, updates: &[TimelineUpdate]) {
    let _ = write!(out, "<article id=\"{}\"><h3>{}</h3>", i.id, escape(&i.title));
    updates_html(out, updates, |s| crate::domain::status_page::incident_status(s).label().into());
    if let Some(summary) = i.summary.as_ref().filter(|s| s.published_at.is_some()) {
        let _ = write!(out, "<p><strong>Summary</strong> — {}</p>", escape(&summary.text));
    }
    out.push_str("</article>");
}

fn window_html(out: &mut String, w: &Window, updates: &[TimelineUpdate]) {
    let _ = write!(
        out,
        "<article id=\"{}\"><h3>{}</h3><p>{} — from <time>{}</time> to <time>{}</time></p>",
        w.id,
        escape(&w.title),
        w.status.label(),
        time(w.starts_at),
        time(w.ends_at)
    );
    updates_html(out, updates, |s| crate::domain::status_page::window_status(s).label().into());
    out.push_str("</article>");
}

/// The feed: an entry per published incident and per maintenance window,
/// newest change first; each entry's content is its timeline.
pub fn render_atom(view: &PublicView, base: &str) -> String {
    struct Entry {
        id: String,
        title: String,
        updated: Millis,
        anchor: String,
        content: String,
    }
    let last = |updates: &[TimelineUpdate], from: Millis| {
        updates
            .iter()
            .flat_map(|u| std::iter::once(u.at).chain(u.corrections.iter().map(|c| c.at)))
            .max()
            .unwrap_or(from)
    };
    let mut entries: Vec<Entry> = Vec::new();
    for (i, updates) in &view.incidents {
        let mut content = String::new();
        incident_html(&mut content, i, updates);
        let summary_at = i.summary.as_ref().and_then(|s| s.published_at).unwrap_or(0);
        entries.push(Entry {
            id: format!("urn:opsgraph:incident:{}", i.id),
            title: format!("[{}] {}", i.status.label(), i.title),
            updated: last(updates, i.created_at).max(summary_at),
            anchor: i.id.to_string(),
            content,
        });
    }
    for (w, updates) in &view.windows {
        let mut content = String::new();
        window_html(&mut content, w, updates);
        entries.push(Entry {
            id: format!("urn:opsgraph:maintenance:{}", w.id),
            title: format!("[Maintenance: {}] {}", w.status.label(), w.title),
            updated: last(updates, w.created_at),
            anchor: w.id.to_string(),
            content,
        });
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.updated));
    let updated = entries.first().map_or(0, |e| e.updated);
    let base = escape(base);
    let mut out = String::new();
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\
         <id>urn:opsgraph:status</id><title>Platform status</title><updated>{}</updated>\
         <author><name>opsgraph</name></author>\
         <link rel=\"self\" type=\"application/atom+xml\" href=\"{base}/status/feed.atom\"/>\
         <link rel=\"alternate\" type=\"text/html\" href=\"{base}/status\"/>",
        time(updated)
    );
    for e in entries {
        let _ = write!(
            out,
            "<entry><id>{}</id><title>{}</title><updated>{}</updated>\
             <link rel=\"alternate\" type=\"text/html\" href=\"{base}/status#{}\"/>\
             <content type=\"html\">{}</content></entry>",
            escape(&e.id),
            escape(&e.title),
            time(e.updated),
            escape(&e.anchor),
            escape(&e.content)
        );
    }
    out.push_str("</feed>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_and_forbidden_characters_dropped() {
        assert_eq!(escape("<b>\"A&B\"</b>'\u{1}"), "&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt;&#39;");
    }

    #[test]
    fn an_empty_page_says_all_is_well_and_its_feed_has_no_entry() {
        let view = PublicView { components: vec![], incidents: vec![], windows: vec![] };
        assert!(render_html(&view).contains("All systems operational"));
        let atom = render_atom(&view, "http://h");
        assert!(atom.contains("<id>urn:opsgraph:status</id>") && !atom.contains("<entry>"), "{atom}");
    }
}
