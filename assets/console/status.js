// The status page view: components with their availability, incidents with
// their timelines, and scheduled maintenance, from `statusPage`.
//
// The status page is served by a part of the server that may not be there
// (an older server): the view asks the schema first (introspection) and
// builds its query from the fields that exist, so it shows what the server
// has, or says plainly that the server has no status page. It follows
// `incidentUpdates` when the server offers it.
"use strict";

(function (global) {
  const { h, replace, when, notice, debounce } = global.UI;
  const Pages = (global.Pages = global.Pages || {});

  const INTROSPECT = `{
    query: __type(name: "Query") { fields { name type { ...T } } }
    subscription: __type(name: "Subscription") { fields { name } }
  }
  fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }`;

  const TYPE = `query($name: String!) { __type(name: $name) { name kind fields { name args { defaultValue type { kind } } type {
    kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }`;

  /// The named type under lists and non-nulls.
  function named(t) {
    while (t && !t.name) t = t.ofType;
    return t;
  }

  function isList(t) {
    for (let x = t; x; x = x.ofType) if (x.kind === "LIST") return true;
    return false;
  }

  /// Fields shown when present, by kind of thing; anything else of a
  /// scalar or enum type is shown too, after these.
  const PREFERRED = ["name", "title", "status", "availability", "impact", "group", "message", "text", "at",
    "createdAt", "startsAt", "endsAt", "scheduledStart", "scheduledEnd", "resolvedAt", "updatedAt"];
  const CHILD_LISTS = ["components", "incidents", "maintenances", "maintenance", "updates", "timeline", "groups", "affected", "affectedComponents"];

  /// Builds a selection for `typeName`, `depth` levels of object lists deep.
  async function selection(typeName, depth, cache) {
    if (!cache.has(typeName)) cache.set(typeName, (await global.Console.request(TYPE, { name: typeName })).__type);
    const type = cache.get(typeName);
    if (!type || !type.fields) return "__typename";
    const parts = [];
    for (const f of type.fields) {
      // A field that needs an argument cannot be asked for blindly.
      if (f.args.some((a) => a.type.kind === "NON_NULL" && a.defaultValue === null)) continue;
      const t = named(f.type);
      if (t.kind === "SCALAR" || t.kind === "ENUM") {
        if (PREFERRED.includes(f.name) || f.name === "id") parts.push(f.name);
      } else if (t.kind === "OBJECT" && depth > 0 && (CHILD_LISTS.includes(f.name) || !isList(f.type))) {
        const connection = t.name.endsWith("Connection");
        const inner = await selection(connection ? t.name.replace(/Connection$/, "") : t.name, depth - 1, cache);
        parts.push(connection ? f.name + " { nodes { " + inner + " } }" : f.name + " { " + inner + " }");
      }
    }
    return parts.length ? parts.join(" ") : "__typename";
  }

  Pages.status = async function (view) {
    const body = h("div", { id: "status-page" }, h("p", {}, "Loading…"));
    view.main.append(h("h1", { tabindex: "-1" }, "Status"), body);
    global.Console.focusHeading(view.main);
    const schema = await global.Console.request(INTROSPECT);
    const field = schema.query.fields.find((f) => f.name === "statusPage");
    if (!field) {
      replace(body, h("p", { class: "notice notice-info", id: "status-missing" },
        "This server does not serve a status page yet (its schema has no statusPage field)."));
      return;
    }
    const query = "{ statusPage { " + (await selection(named(field.type).name, 3, new Map())) + " } }";
    const load = async () => {
      let data;
      try {
        data = await global.Console.request(query);
      } catch (err) {
        replace(body, h("p", { class: "error" }, "The status page did not load: " + err.message));
        return;
      }
      if (!view.alive) return;
      replace(body, render(data.statusPage, 2));
    };
    await load();
    if (schema.subscription && schema.subscription.fields.some((f) => f.name === "incidentUpdates")) {
      global.Console.follow(view, "subscription { incidentUpdates { __typename } }", () => ({}),
        { next: debounce(() => load().catch((e) => notice(e.message)), 150) });
    }
  };

  /// Renders any object: its scalar facts as a line, its lists as sections.
  function render(value, level) {
    if (value === null || value === undefined) return h("p", { class: "muted" }, "—");
    if (Array.isArray(value)) {
      if (value.length === 0) return h("p", { class: "muted" }, "None.");
      return h("ul", { class: "plain status-list" }, value.map((v) => h("li", { class: "card" }, render(v, level + 1))));
    }
    if (typeof value !== "object") return h("span", {}, String(value));
    const facts = [];
    const nested = [];
    for (const [key, v] of Object.entries(value)) {
      if (key === "__typename" || key === "id") continue;
      if (v && typeof v === "object") {
        const items = v.nodes || v;
        nested.push(h("section", {}, h("h" + Math.min(level, 6), {}, words(key)), render(items, level + 1)));
      } else {
        facts.push(fact(key, v));
      }
    }
    return h("div", { class: "status-item" }, facts.length ? h("p", { class: "statusline" }, facts) : null, nested);
  }

  const AVAILABILITY = { OPERATIONAL: "green", DEGRADED: "orange", DOWN: "red", RESOLVED: "green",
    INVESTIGATING: "red", IDENTIFIED: "orange", MONITORING: "orange", SCHEDULED: "grey", IN_PROGRESS: "loading", COMPLETED: "green" };

  function fact(key, v) {
    if (typeof v === "string" && AVAILABILITY[v]) {
      return h("span", { class: "running", "data-availability": v },
        h("span", { class: "dot dot-" + AVAILABILITY[v], "aria-hidden": "true" }), h("span", {}, v));
    }
    if (typeof v === "string" && /^\d{4}-\d\d-\d\dT/.test(v)) return h("span", { class: "muted" }, words(key) + " ", when(v));
    if (key === "name" || key === "title") return h("strong", {}, String(v));
    return h("span", {}, v === null ? "" : String(v));
  }

  function words(key) {
    return key.replace(/([A-Z])/g, " $1").replace(/^./, (c) => c.toUpperCase());
  }
})(window);
