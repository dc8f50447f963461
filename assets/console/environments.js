// The environments overview and one environment's page: services with
// their instances and actions, the activity timeline, and the activity
// report download. Both reload what they show when the environment's
// status or operation feeds move, and resume those feeds from their last
// cursor after a reconnect.
"use strict";

(function (global) {
  const { h, replace, dot, label, outcome, when, duration, trigger, notice, debounce } = global.UI;
  const Pages = (global.Pages = global.Pages || {});

  const OVERVIEW = `{
    environments(first: 100) { nodes {
      id name runningStatus { value reason } deploymentStatus
      services(first: 100) { nodes { id name kind runningStatus { value } deploymentStatus instances { id } } }
    } }
  }`;

  /// Follows an environment's status changes, and its operation events when
  /// `operations` is set, calling `changed` after each burst.
  function followEnvironment(view, env, changed, operations) {
    const cursors = { status: null, ops: null };
    const C = global.Console;
    C.follow(view, "subscription($e: ID!, $after: String) { statusChanges(environmentId: $e, after: $after) { cursor } }",
      () => ({ e: env, after: cursors.status }),
      { next: (d) => { cursors.status = d.statusChanges.cursor; changed(); } });
    if (operations) {
      C.follow(view, "subscription($e: ID!, $after: String) { operationEvents(environmentId: $e, after: $after) { cursor } }",
        () => ({ e: env, after: cursors.ops }),
        { next: (d) => { cursors.ops = d.operationEvents.cursor; changed(); } });
    }
  }

  Pages.environments = async function (view) {
    const list = h("div", { class: "cards" });
    view.main.append(h("h1", { tabindex: "-1" }, "Environments"), list);
    global.Console.focusHeading(view.main);
    const load = async () => {
      const data = await global.Console.request(OVERVIEW);
      if (!view.alive) return;
      list.textContent = "";
      const envs = data.environments.nodes;
      if (envs.length === 0) {
        list.append(h("p", {}, "No environments yet. Start the server with ", h("code", {}, "--demo"),
          " for a seeded one, or create one in ", h("a", { href: "/" }, "GraphiQL"), "."));
      }
      for (const env of envs) list.append(environmentCard(env));
      return envs;
    };
    const envs = await load();
    const reload = debounce(() => load().catch((e) => notice(e.message)), 150);
    for (const env of envs) followEnvironment(view, env.id, reload, false);
  };

  function environmentCard(env) {
    return h("section", { class: "card", "data-environment": env.id, "aria-labelledby": "env-" + env.id },
      h("h2", { id: "env-" + env.id }, h("a", { href: "#/environments/" + env.id }, env.name)),
      h("p", { class: "statusline" }, dot(env.runningStatus.value, env.runningStatus.reason), label(env.deploymentStatus)),
      h("ul", { class: "plain" }, env.services.nodes.map((s) =>
        h("li", { class: "service-row", "data-service": s.id },
          h("span", { class: "name" }, s.name), dot(s.runningStatus.value), label(s.deploymentStatus),
          h("span", { class: "muted count" }, s.instances.length + (s.instances.length === 1 ? " instance" : " instances"))))));
  }

  const ENVIRONMENT = `query($id: ID!, $after: String) {
    environment(id: $id) {
      id name runningStatus { value reason } deploymentStatus
      services(first: 100) { nodes {
        id name kind currentCommit runningStatus { value reason } deploymentStatus
        spec { instances }
        instances { id status port pid commit current }
      } }
    }
    activity(environmentId: $id, first: 30, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { id type status outcome serviceName queuedAt durationMs commit
              trigger { kind source reason author { name } } canRedeploy cannotRedeployReason }
    }
  }`;

  Pages.environment = async function (view, id) {
    const C = global.Console;
    const header = h("div", { class: "page-head" });
    const services = h("div", { class: "cards" });
    const timeline = h("ol", { class: "timeline", "aria-label": "Activity, newest first" });
    const more = h("p", {});
    view.main.append(
      header,
      h("section", { "aria-labelledby": "services-h" }, h("h2", { id: "services-h" }, "Services"), services),
      h("section", { "aria-labelledby": "report-h" }, h("h2", { id: "report-h" }, "Activity report"), reportForm(id)),
      h("section", { "aria-labelledby": "activity-h" }, h("h2", { id: "activity-h" }, "Activity"), timeline, more),
    );
    let shown = 30;
    const load = async () => {
      const data = await C.request(ENVIRONMENT.replace("first: 30", "first: " + shown), { id });
      if (!view.alive) return null;
      const env = data.environment;
      if (!env) {
        replace(header, h("h1", { tabindex: "-1" }, "No such environment"));
        return null;
      }
      document.title = env.name + " · opsgraph console";
      replace(header, 
        h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Environments"), " / "),
        h("h1", { tabindex: "-1" }, env.name),
        h("p", { class: "statusline" }, dot(env.runningStatus.value, env.runningStatus.reason), label(env.deploymentStatus),
          env.runningStatus.reason ? h("span", { class: "muted" }, env.runningStatus.reason) : null));
      keepingInputs(view.main, () => {
        replace(services, ...env.services.nodes.map(serviceCard));
        replace(timeline, ...data.activity.nodes.map(activityBlock));
      });
      if (data.activity.nodes.length === 0) timeline.append(h("li", {}, "Nothing has happened here yet."));
      replace(more, data.activity.pageInfo.hasNextPage
        ? h("button", { type: "button", onclick: () => { shown += 30; load(); } }, "Show older activity")
        : "");
      return env;
    };
    const env = await load();
    C.focusHeading(view.main);
    if (env) followEnvironment(view, id, debounce(() => load().catch((e) => notice(e.message)), 150), true);
  };

  /// Runs `redraw`, keeping what the user typed and where the keyboard
  /// focus was (by element id): live reloads must not eat a half-typed
  /// commit or move the focus away.
  function keepingInputs(root, redraw) {
    const values = new Map();
    for (const input of root.querySelectorAll("input[id]")) values.set(input.id, input.value);
    const focused = document.activeElement && root.contains(document.activeElement) ? document.activeElement.id : null;
    redraw();
    for (const [id, value] of values) {
      const input = document.getElementById(id);
      if (input && input.value !== value) input.value = value;
    }
    if (focused) {
      const el = document.getElementById(focused);
      if (el && document.activeElement !== el) el.focus();
    }
  }

  /// Runs an operation-creating mutation and opens the operation's page.
  async function act(mutation, input, what) {
    try {
      const data = await global.Console.request(
        `mutation($input: ${input.type}!) { ${mutation}(input: $input) { id } }`, { input: input.value });
      global.Console.navigate("#/operations/" + data[mutation].id);
    } catch (err) {
      notice(what + " failed: " + err.message);
    }
  }

  function serviceCard(s) {
    const commitId = "commit-" + s.id;
    const commit = h("input", { id: commitId, name: "commit", required: true, placeholder: "e.g. 4f2c9e1",
      autocomplete: "off", spellcheck: "false", pattern: "\\S+" });
    const action = (name, text) => h("button", { type: "button", id: name + "-" + s.id,
      onclick: () => act(name, { type: "ServiceActionInput", value: { serviceId: s.id } }, text + " " + s.name) },
    text);
    return h("section", { class: "card", "data-service": s.id, "aria-labelledby": "svc-" + s.id },
      h("h3", { id: "svc-" + s.id }, s.name, h("span", { class: "muted kind" }, " " + s.kind.toLowerCase())),
      h("p", { class: "statusline" }, dot(s.runningStatus.value, s.runningStatus.reason), label(s.deploymentStatus),
        h("span", { class: "muted" }, s.currentCommit ? "commit " + s.currentCommit : "no commit yet")),
      instancesTable(s),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", id: "redeploy-" + s.id, disabled: !s.currentCommit,
          onclick: () => act("redeploy", { type: "RedeployInput", value: { serviceId: s.id, source: "CONSOLE" } }, "Redeploy " + s.name) },
        "Redeploy"),
        action("restart", "Restart"),
        s.runningStatus.value === "STOPPED" ? action("start", "Start") : action("stop", "Stop")),
      h("form", { class: "inline", onsubmit: (event) => {
        event.preventDefault();
        act("deploy", { type: "DeployInput", value: { serviceId: s.id, commit: commit.value.trim(), source: "CONSOLE" } }, "Deploy to " + s.name);
      } },
      h("label", { for: commitId }, "Deploy commit"), commit, h("button", { type: "submit", id: "deploy-" + s.id }, "Deploy")));
  }

  function instancesTable(s) {
    if (s.instances.length === 0) return h("p", { class: "muted" }, "No instances.");
    return h("div", { class: "scroll" }, h("table", { class: "instances" },
      h("caption", { class: "visually-hidden" }, "Instances of " + s.name),
      h("thead", {}, h("tr", {}, ["Instance", "Status", "Port", "Commit", "PID"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, s.instances.map((i) => h("tr", { "data-instance": i.id },
        h("th", { scope: "row" }, i.id, i.current ? "" : h("span", { class: "muted" }, " (old)")),
        h("td", {}, dot(i.status)),
        h("td", {}, i.port === null ? "—" : String(i.port)),
        h("td", {}, i.commit || "—"),
        h("td", {}, i.pid === null ? "—" : String(i.pid)))))));
  }

  /// One block of the timeline: outcome, what, when, who or why, commit,
  /// duration, and "redeploy this commit" when it is offered.
  function activityBlock(op) {
    const redeploy = op.canRedeploy
      ? h("button", { type: "button", id: "redeploy-" + op.id, onclick: () => act("redeploy",
        { type: "RedeployInput", value: { operationId: op.id, source: "CONSOLE" } }, "Redeploy " + (op.commit || "")) },
      "Redeploy this commit")
      : h("span", { class: "muted small" }, op.cannotRedeployReason ? "Not redeployable: " + op.cannotRedeployReason : "");
    return h("li", { class: "block", "data-operation": op.id },
      h("div", { class: "block-head" }, outcome(op.outcome),
        h("a", { href: "#/operations/" + op.id }, op.type + " " + op.serviceName), label(op.status)),
      h("dl", { class: "facts" },
        h("dt", {}, "Date"), h("dd", {}, when(op.queuedAt)),
        h("dt", {}, "Trigger"), h("dd", {}, trigger(op.trigger)),
        h("dt", {}, "Commit"), h("dd", {}, h("code", {}, op.commit || "—")),
        h("dt", {}, "Duration"), h("dd", {}, duration(op.durationMs))),
      h("div", { class: "actions" }, redeploy));
  }

  /// The report form: a period, a summary of it and the CSV link.
  function reportForm(env) {
    const day = 86400000;
    const iso = (d) => new Date(d).toISOString().slice(0, 10);
    const from = h("input", { type: "date", id: "report-from", value: iso(Date.now() - 30 * day), required: true });
    const to = h("input", { type: "date", id: "report-to", value: iso(Date.now() + day), required: true });
    const summary = h("p", { class: "muted", "aria-live": "polite" });
    const link = h("a", { class: "button", id: "report-csv" }, "Download CSV");
    const period = () => ({ from: from.value + "T00:00:00Z", to: to.value + "T00:00:00Z" });
    const update = async () => {
      const p = period();
      const path = "/reports/activity.csv?environment=" + encodeURIComponent(env) +
        "&from=" + encodeURIComponent(p.from) + "&to=" + encodeURIComponent(p.to);
      link.href = path;
      link.download = "activity-" + env + "-" + from.value + "-" + to.value + ".csv";
      try {
        const data = await global.Console.request(
          "query($e: ID!, $from: DateTime!, $to: DateTime!) { activityReport(environmentId: $e, from: $from, to: $to) { summary { total successRate } } }",
          { e: env, from: p.from, to: p.to });
        const s = data.activityReport.summary;
        summary.textContent = s.total + (s.total === 1 ? " operation" : " operations") +
          (s.successRate === null ? "" : ", " + Math.round(s.successRate * 100) + "% successful");
      } catch (err) {
        summary.textContent = err.message;
      }
    };
    link.addEventListener("click", (event) => {
      event.preventDefault();
      OpsGraph.download(link.getAttribute("href"), link.download).catch((err) => notice("Download failed: " + err.message));
    });
    from.addEventListener("change", update);
    to.addEventListener("change", update);
    update();
    return h("div", { class: "report" },
      h("div", { class: "field" }, h("label", { for: "report-from" }, "From"), from),
      h("div", { class: "field" }, h("label", { for: "report-to" }, "To (exclusive)"), to),
      link, summary);
  }

  Pages.followEnvironment = followEnvironment;
  Pages.act = act;
})(window);
