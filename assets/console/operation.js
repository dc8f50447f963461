// An operation's page: what it is, who asked, its steps, its log tailing
// live, and cancel. The log follows `operationLogs` from the last `seq`
// shown (after a reconnect too: nothing is missed, nothing shown twice);
// the rest reloads on each of the environment's operation events.
"use strict";

(function (global) {
  const { h, replace, label, when, duration, trigger, notice, debounce, FINAL } = global.UI;
  const Pages = (global.Pages = global.Pages || {});

  const OPERATION = `query($id: ID!) { operation(id: $id) {
    id type status outcome serviceName environmentName environment { id } service { id }
    commit previousCommit rollback queuedAt startedAt finishedAt durationMs
    trigger { kind source reason author { name } }
    steps { name kind status startedAt finishedAt message }
    canRedeploy cannotRedeployReason redeployOf { id }
  } }`;

  const STEP_FAMILY = { SUCCEEDED: "ok", FAILED: "error", ROLLBACK_FAILED: "error", RUNNING: "active",
    CANCELLED: "cancelled", ROLLED_BACK: "cancelled", SKIPPED: "none", PENDING: "none" };

  Pages.operation = async function (view, id) {
    const C = global.Console;
    const head = h("div", { class: "page-head" });
    const actions = h("div", { class: "actions" });
    const facts = h("dl", { class: "facts wide" });
    const steps = h("ol", { class: "steps", "aria-label": "Steps, in order" });
    const log = h("pre", { class: "log", id: "log", tabindex: "0", role: "log", "aria-label": "Log" });
    const follow = h("input", { type: "checkbox", id: "follow-log", checked: true });
    const logState = h("p", { class: "muted", id: "log-state", "aria-live": "polite" }, "Waiting for the log…");
    view.main.append(head, actions, facts,
      h("section", { "aria-labelledby": "steps-h" }, h("h2", { id: "steps-h" }, "Steps"), steps),
      h("section", { "aria-labelledby": "log-h" },
        h("div", { class: "log-head" }, h("h2", { id: "log-h" }, "Log"),
          h("label", { class: "check" }, follow, " Follow new lines"),
          h("a", { href: "/operations/" + encodeURIComponent(id) + "/logs", id: "log-download", onclick: (event) => {
            event.preventDefault();
            OpsGraph.download("/operations/" + encodeURIComponent(id) + "/logs", id + ".log").catch((e) => notice(e.message));
          } }, "Download the whole log")),
        logState, log));

    let op = null;
    const load = async () => {
      const data = await C.request(OPERATION, { id });
      if (!view.alive) return null;
      op = data.operation;
      if (!op) {
        replace(head, h("h1", { tabindex: "-1" }, "No such operation"));
        return null;
      }
      render(op);
      return op;
    };

    function render(op) {
      document.title = op.type + " " + op.serviceName + " · opsgraph console";
      const envLink = op.environment ? h("a", { href: "#/environments/" + op.environment.id }, op.environmentName) : op.environmentName;
      replace(head, 
        h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Environments"), " / ", envLink, " / "),
        h("h1", { tabindex: "-1" }, op.type + " " + op.serviceName, h("span", { class: "muted" }, " " + op.id)),
        h("p", { class: "statusline", id: "operation-status", "aria-live": "polite" }, "Status: ", label(op.status),
          op.rollback !== "NOT_NEEDED" ? h("span", { class: "muted" }, " rollback " + op.rollback) : null));
      const focused = document.activeElement && document.activeElement.id;
      replace(actions, 
        FINAL.has(op.status) ? null : h("button", { type: "button", id: "cancel", class: "danger", onclick: () => cancel(false) }, "Cancel"),
        op.status === "CANCELLING" ? h("button", { type: "button", id: "force-cancel", class: "danger", onclick: () => cancel(true) }, "Force cancel") : null,
        op.canRedeploy ? h("button", { type: "button", id: "redeploy-this", onclick: () => Pages.act("redeploy",
          { type: "RedeployInput", value: { operationId: op.id, source: "CONSOLE" } }, "Redeploy") }, "Redeploy this commit") : null);
      if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
      replace(facts, 
        h("dt", {}, "Service"), h("dd", {}, op.service ? op.serviceName : op.serviceName + " (deleted)"),
        h("dt", {}, "Commit"), h("dd", {}, h("code", {}, op.commit || "—"), op.previousCommit && op.previousCommit !== op.commit ? " (was " + op.previousCommit + ")" : ""),
        h("dt", {}, "Trigger"), h("dd", {}, trigger(op.trigger)),
        h("dt", {}, "Queued"), h("dd", {}, when(op.queuedAt)),
        h("dt", {}, "Started"), h("dd", {}, when(op.startedAt)),
        h("dt", {}, "Finished"), h("dd", {}, when(op.finishedAt)),
        h("dt", {}, "Duration"), h("dd", {}, duration(op.durationMs)),
        op.redeployOf ? [h("dt", {}, "Redeploys"), h("dd", {}, h("a", { href: "#/operations/" + op.redeployOf.id }, op.redeployOf.id))] : null);
      replace(steps, ...op.steps.map((s) => h("li", { class: "step", "data-step": s.kind },
        h("span", { class: "label label-" + (STEP_FAMILY[s.status] || "none"), "data-step-status": s.status }, s.status),
        " ", h("span", { class: "name" }, s.name),
        s.startedAt ? h("span", { class: "muted small" }, " " + duration(stepMs(s))) : null,
        s.message ? h("div", { class: "muted small" }, s.message) : null)));
      if (op.steps.length === 0) steps.append(h("li", { class: "muted" }, "No steps: it was cancelled before it started."));
    }

    function stepMs(s) {
      const end = s.finishedAt ? Date.parse(s.finishedAt) : Date.now();
      return Math.max(0, end - Date.parse(s.startedAt));
    }

    async function cancel(force) {
      try {
        const data = await C.request("mutation($input: CancelOperationInput!) { cancelOperation(input: $input) { id status } }",
          { input: { operationId: id, force: Boolean(force) } });
        notice("Cancel requested: " + data.cancelOperation.status, "info");
        reload();
      } catch (err) {
        notice("Cancel failed: " + err.message);
      }
    }

    const reload = debounce(() => load().catch((e) => notice(e.message)), 100);
    const loaded = await load();
    C.focusHeading(view.main);
    if (!loaded) return;

    // The log: every line once, in order, from where we are.
    let lastSeq = 0;
    C.follow(view, "subscription($id: ID!, $after: Int) { operationLogs(operationId: $id, after: $after) { lastSeq lines { seq at stream text } } }",
      () => ({ id, after: lastSeq }),
      {
        next: (d) => {
          const batch = d.operationLogs;
          const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
          for (const line of batch.lines) {
            if (line.seq <= lastSeq) continue;
            lastSeq = line.seq;
            log.append(h("span", { class: "line line-" + line.stream.toLowerCase(), "data-seq": line.seq },
              h("span", { class: "at" }, new Date(line.at).toLocaleTimeString()), " ",
              h("span", { class: "stream" }, line.stream), " ", line.text, "\n"));
          }
          lastSeq = Math.max(lastSeq, batch.lastSeq);
          logState.textContent = lastSeq + (lastSeq === 1 ? " line" : " lines") + ", following live";
          if (follow.checked && (atBottom || batch.lines.length)) log.scrollTop = log.scrollHeight;
        },
        complete: () => {
          logState.textContent = lastSeq + (lastSeq === 1 ? " line" : " lines") + "; the operation is final, the log is complete";
          log.dataset.complete = "true";
          reload();
        },
      });

    // Status and steps: the environment's operation events, from now on.
    if (loaded.environment && !FINAL.has(loaded.status)) {
      let cursor = null;
      C.follow(view, "subscription($e: ID!, $after: String) { operationEvents(environmentId: $e, after: $after) { cursor operation { id } } }",
        () => ({ e: loaded.environment.id, after: cursor }),
        { next: (d) => {
          cursor = d.operationEvents.cursor;
          if (d.operationEvents.operation.id === id) reload();
        } });
    }
  };
})(window);
