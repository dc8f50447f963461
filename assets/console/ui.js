// The console's building blocks: a DOM builder that never parses data as
// HTML, status dots and labels, formatting, the notice area, and a
// debounced reload.
"use strict";

(function (global) {
  /// `h("a", { href: "#/" }, "text", child…)`: an element; strings become
  /// text nodes, null and false are skipped, `on*` attributes are listeners.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else if (key === "class") el.className = value;
      else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /// Empties `el` and fills it with `children` (skipping null and false,
  /// which `replaceChildren` would print).
  function replace(el, ...children) {
    el.textContent = "";
    return append(el, children);
  }

  /// Words for a running status, and the colour family of its dot: grey
  /// stopped, a turning ring while starting or stopping, green running or
  /// completed, red error, orange warning.
  const RUNNING = {
    STOPPED: ["Stopped", "grey"],
    STARTING: ["Starting", "loading"],
    STOPPING: ["Stopping", "loading"],
    RUNNING: ["Running", "green"],
    COMPLETED: ["Completed", "green"],
    ERROR: ["Error", "red"],
    WARNING: ["Warning", "orange"],
  };

  /// A running-status dot with its word beside it (the colour is never the
  /// only sign).
  function dot(value, reason) {
    const [word, colour] = RUNNING[value] || [value || "Unknown", "grey"];
    return h(
      "span",
      { class: "running", "data-running": value || "", title: reason || null },
      h("span", { class: "dot dot-" + colour, "aria-hidden": "true" }),
      h("span", { class: "running-word" }, word),
    );
  }

  /// The family of an operation status: ok, error, active, cancelled.
  function statusFamily(status) {
    switch (status) {
      case "DEPLOYMENT_OK":
        return "ok";
      case "BUILDING_ERROR":
      case "DEPLOYMENT_ERROR":
        return "error";
      case "CANCELLED":
        return "cancelled";
      default:
        return "active";
    }
  }

  const FINAL = new Set(["DEPLOYMENT_OK", "BUILDING_ERROR", "DEPLOYMENT_ERROR", "CANCELLED"]);

  /// A deployment-status label (the status of an operation, or of the last
  /// one of a service or environment); "Never deployed" for none.
  function label(status) {
    if (!status) return h("span", { class: "label label-none", "data-status": "" }, "Never deployed");
    return h("span", { class: "label label-" + statusFamily(status), "data-status": status }, status);
  }

  /// An activity outcome badge.
  function outcome(value) {
    const family = { SUCCEEDED: "ok", FAILED: "error", CANCELLED: "cancelled", IN_PROGRESS: "active" }[value];
    return h("span", { class: "label label-" + (family || "none"), "data-outcome": value }, value.replace("_", " "));
  }

  function when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return h("time", { datetime: iso }, date.toLocaleString());
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "—";
    if (ms < 1000) return ms + " ms";
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + Math.round(s - m * 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  /// Who asked: the author's name and the source, or the platform and why.
  function trigger(t) {
    if (t.kind === "PLATFORM") return "platform (" + (t.reason || "no reason") + ")";
    const who = t.author ? t.author.name : "someone";
    return who + " via " + t.source + (t.kind === "SUPPORT" ? " (support)" : "");
  }

  /// Shows a message in the page's alert region; `kind` "error" or "info".
  function notice(message, kind) {
    const el = document.getElementById("notice");
    el.textContent = "";
    if (!message) {
      el.hidden = true;
      return;
    }
    el.className = "notice notice-" + (kind || "error");
    append(el, [
      h("span", {}, message),
      h("button", { type: "button", class: "link", onclick: () => notice(null) }, "Dismiss"),
    ]);
    el.hidden = false;
  }

  /// Calls `fn` once, `ms` after the last of a burst of calls.
  function debounce(fn, ms) {
    let timer = null;
    return () => {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  global.UI = { h, append, replace, dot, label, outcome, when, duration, trigger, notice, debounce, FINAL, statusFamily };
})(window);
