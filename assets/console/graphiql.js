// GraphiQL at `/`: queries and mutations over HTTP, subscriptions over
// graphql-transport-ws, both with the headers of GraphiQL's headers editor.
// The token from `?token=` (or remembered in this browser) starts there as
// `Authorization: Bearer …`; the WebSocket gets the same value in its
// `connection_init` payload.
"use strict";

(function () {
  const token = OpsGraph.takeToken();

  const DEFAULT_QUERY = `# Welcome to opsgraph. Press the run button (or Ctrl-Enter).
# The live console is at /console; example operations are in playground/.

{
  viewer { organization { name } member { name } }
  environments(first: 10) {
    nodes { id name runningStatus { value } deploymentStatus }
  }
}
`;

  /// The value of a header whatever its case.
  function header(headers, name) {
    for (const key of Object.keys(headers || {})) {
      if (key.toLowerCase() === name) return headers[key];
    }
    return null;
  }

  /// Whether the operation GraphiQL is about to run is a subscription,
  /// from the query text itself (GraphiQL's parsed document can lag a
  /// fresh edit). Comments and strings are blanked out first.
  function isSubscription(params) {
    const text = (params.query || "").replace(/"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*/g, " ");
    if (params.operationName) {
      const named = new RegExp("\\b(query|mutation|subscription)\\s+" + params.operationName + "\\b").exec(text);
      if (named) return named[1] === "subscription";
    }
    const first = /^\s*(\w+|\{)/.exec(text);
    return Boolean(first && first[1] === "subscription");
  }

  // One socket per distinct Authorization value: editing the header takes
  // effect on the next subscription.
  const sockets = new Map();
  function socketFor(authorization) {
    const key = authorization || "";
    if (!sockets.has(key)) sockets.set(key, new OpsGraph.Socket(authorization));
    return sockets.get(key);
  }

  function fetcher(params, opts) {
    const headers = Object.assign({}, (opts && opts.headers) || {});
    if (isSubscription(params)) {
      const socket = socketFor(header(headers, "authorization"));
      // An Observable, which GraphiQL renders result by result.
      return {
        subscribe(observer) {
          const stop = socket.subscribe(params.query, () => params.variables || {}, {
            next: (data) => observer.next({ data }),
            error: (err) => observer.next({ errors: err.errors || [{ message: String(err.message || err) }] }),
            complete: () => observer.complete(),
          });
          return { unsubscribe: stop };
        },
      };
    }
    headers["content-type"] = "application/json";
    headers.accept = "application/json";
    return fetch("/graphql", { method: "POST", headers, body: JSON.stringify(params) }).then((r) => r.json());
  }

  const defaultHeaders = token ? JSON.stringify({ Authorization: OpsGraph.bearer(token) }, null, 2) : "";
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: DEFAULT_QUERY,
      defaultHeaders,
      headers: defaultHeaders,
      // The headers start from the remembered token on every visit, so a
      // token never sits in GraphiQL's own storage.
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: token ? "headers" : false,
    }),
  );
})();
