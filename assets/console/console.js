// The console's shell: the caller's token, the shared live connection, the
// router (views are addressed by the fragment, so the server serves one
// page) and the pieces every view uses.
"use strict";

(function (global) {
  const { h, notice } = global.UI;
  const token = OpsGraph.takeToken();
  const socket = new OpsGraph.Socket(OpsGraph.bearer(token));

  const CONNECTION_WORDS = {
    idle: "Not following",
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    refused: "Connection refused: check the token",
  };
  socket.onState((state) => {
    const el = document.getElementById("connection");
    el.textContent = CONNECTION_WORDS[state] || state;
    el.dataset.state = state;
  });

  /// Runs a query or mutation; a refused token shows the token form.
  async function request(query, variables) {
    try {
      return await OpsGraph.request(query, variables);
    } catch (err) {
      if (err.code === "UNAUTHENTICATED") showTokenForm();
      throw err;
    }
  }

  /// Follows a subscription for as long as the current view lives.
  /// `variables()` is asked at every (re)subscribe, so a view resumes from
  /// the cursor it last saw.
  function follow(view, query, variables, sink) {
    const stop = socket.subscribe(query, variables, {
      next: sink.next,
      complete: sink.complete || (() => {}),
      error: (err) => {
        notice("Live updates stopped: " + err.message);
        if (sink.error) sink.error(err);
      },
    });
    view.cleanups.push(stop);
  }

  function showTokenForm() {
    const el = document.getElementById("token-form");
    el.hidden = false;
    el.querySelector("input").focus();
  }

  function tokenForm() {
    const input = h("input", { id: "token-input", type: "password", autocomplete: "off", required: true });
    const form = h(
      "form",
      {
        id: "token-form",
        class: "token-form",
        hidden: true,
        onsubmit: (event) => {
          event.preventDefault();
          OpsGraph.setToken(input.value.trim());
          global.location.reload();
        },
      },
      h("label", { for: "token-input" }, "Token"),
      input,
      h("button", { type: "submit" }, "Use this token"),
    );
    return form;
  }

  /// The view on screen: its element and what to undo when leaving it.
  let current = null;

  const ROUTES = [
    [/^#?\/?$/, (m, view) => global.Pages.environments(view)],
    [/^#\/environments\/([\w-]+)$/, (m, view) => global.Pages.environment(view, m[1])],
    [/^#\/operations\/([\w-]+)$/, (m, view) => global.Pages.operation(view, m[1])],
    [/^#\/status$/, (m, view) => global.Pages.status(view)],
  ];

  function route() {
    if (current) for (const undo of current.cleanups) undo();
    notice(null);
    const main = document.getElementById("main");
    main.textContent = "";
    const view = { main, cleanups: [], alive: true };
    current = view;
    view.cleanups.push(() => (view.alive = false));
    const hash = global.location.hash;
    for (const link of document.querySelectorAll("header nav a")) {
      const here = link.getAttribute("href") === (hash || "#/") || (hash.startsWith("#/environments") && link.getAttribute("href") === "#/");
      if (here) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    for (const [pattern, show] of ROUTES) {
      const m = hash.match(pattern);
      if (m) {
        show(m, view).catch((err) => {
          if (view.alive) main.append(h("p", { class: "error" }, "Could not load this page: " + err.message));
        });
        return;
      }
    }
    main.append(h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the environments")));
  }

  /// Puts the keyboard focus on the view's heading after navigation, so a
  /// screen reader announces the new page.
  function focusHeading(main) {
    const heading = main.querySelector("h1");
    if (heading && document.activeElement !== heading && navigated) heading.focus({ preventScroll: false });
  }
  let navigated = false;

  global.Console = { request, follow, socket, focusHeading, navigate: (hash) => (global.location.hash = hash) };

  document.getElementById("main").before(tokenForm());
  global.addEventListener("hashchange", () => {
    navigated = true;
    route();
  });
  route();
})(window);
