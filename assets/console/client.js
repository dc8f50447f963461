// opsgraph's browser client, shared by the console and GraphiQL: the
// caller's token, GraphQL over HTTP, and one graphql-transport-ws socket
// that reconnects by itself and resumes every open subscription from the
// cursor its owner last saw.
//
// Credentials go where the server expects them: `Authorization: Bearer …`
// on every HTTP request, and `{"authorization": "Bearer …"}` in the
// `connection_init` payload of the WebSocket.
"use strict";

(function (global) {
  const TOKEN_KEY = "opsgraph.token";

  /// The token from `?token=` (taken once: stored, then removed from the
  /// address so it does not linger in the history or a shared link), else
  /// the one remembered in this browser; "" when none.
  function takeToken() {
    const url = new URL(global.location.href);
    const given = url.searchParams.get("token");
    if (given !== null) {
      setToken(given);
      url.searchParams.delete("token");
      global.history.replaceState(global.history.state, "", url.pathname + url.search + url.hash);
    }
    return getToken();
  }

  function getToken() {
    try {
      return global.localStorage.getItem(TOKEN_KEY) || "";
    } catch (_) {
      return "";
    }
  }

  function setToken(token) {
    try {
      if (token) global.localStorage.setItem(TOKEN_KEY, token);
      else global.localStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // Storage refused (private mode): the token lasts for this page only.
    }
  }

  /// The `Authorization` value for a token; null without one.
  function bearer(token) {
    return token ? "Bearer " + token : null;
  }

  /// An error answered by the server, with its `extensions.code`.
  class GraphQLError extends Error {
    constructor(errors) {
      super(errors.map((e) => e.message).join("; "));
      this.errors = errors;
      this.code = (errors[0] && errors[0].extensions && errors[0].extensions.code) || null;
    }
  }

  /// POSTs a query or mutation; resolves with `data`, rejects with a
  /// GraphQLError (or a network error).
  async function request(query, variables) {
    const headers = { "content-type": "application/json", accept: "application/json" };
    const auth = bearer(getToken());
    if (auth) headers.authorization = auth;
    const response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables: variables || {} }),
    });
    let body;
    try {
      body = await response.json();
    } catch (_) {
      throw new Error("the server answered " + response.status + " without a GraphQL body");
    }
    if (body.errors && body.errors.length) throw new GraphQLError(body.errors);
    return body.data;
  }

  /// Downloads `path` with the caller's credentials and saves it under
  /// `filename`: a plain link could not send the Authorization header.
  async function download(path, filename) {
    const headers = {};
    const auth = bearer(getToken());
    if (auth) headers.authorization = auth;
    const response = await fetch(path, { headers });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        const body = await response.json();
        if (body.error && body.error.message) message = body.error.message;
      } catch (_) {
        // Not JSON: keep the status line.
      }
      throw new Error(message);
    }
    const blob = await response.blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  }

  function socketUrl() {
    const scheme = global.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + global.location.host + "/graphql";
  }

  /// One graphql-transport-ws connection shared by every subscription of
  /// the page. Lost connections are opened again with a growing delay
  /// (0.5 s doubling up to 5 s); every subscription that had not completed
  /// is then sent again with the variables its owner computes at that
  /// moment, so it resumes after the last cursor it saw.
  class Socket {
    constructor(authorization) {
      this.authorization = authorization || null;
      this.subs = new Map();
      this.nextId = 1;
      this.ws = null;
      this.acked = false;
      this.retryDelay = 500;
      this.retryTimer = null;
      this.listeners = new Set();
      this.state = "idle";
      this.connects = 0;
    }

    /// `listener(state)` on each change: "connecting", "live", "reconnecting".
    onState(listener) {
      this.listeners.add(listener);
      listener(this.state);
      return () => this.listeners.delete(listener);
    }

    setState(state) {
      this.state = state;
      for (const l of this.listeners) l(state);
    }

    /// Subscribes. `variables` is a function called at each (re)subscribe.
    /// `sink`: { next(data), error(err), complete() }. Returns a function
    /// that ends the subscription.
    subscribe(query, variables, sink) {
      const id = String(this.nextId++);
      const sub = { id, query, variables, sink };
      this.subs.set(id, sub);
      if (this.acked) this.send(sub);
      else this.connect();
      return () => {
        if (!this.subs.delete(id)) return;
        if (this.acked) this.raw({ id, type: "complete" });
        if (this.subs.size === 0) this.close();
      };
    }

    send(sub) {
      const variables = typeof sub.variables === "function" ? sub.variables() : sub.variables;
      this.raw({ id: sub.id, type: "subscribe", payload: { query: sub.query, variables: variables || {} } });
    }

    raw(message) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    }

    connect() {
      if (this.ws || this.retryTimer) return;
      this.setState(this.connects === 0 ? "connecting" : "reconnecting");
      const ws = new WebSocket(socketUrl(), "graphql-transport-ws");
      this.ws = ws;
      this.acked = false;
      ws.onopen = () => {
        const payload = {};
        if (this.authorization) payload.authorization = this.authorization;
        ws.send(JSON.stringify({ type: "connection_init", payload }));
      };
      ws.onmessage = (event) => this.receive(JSON.parse(event.data));
      ws.onclose = (event) => this.closed(ws, event);
    }

    receive(message) {
      const sub = message.id ? this.subs.get(message.id) : null;
      switch (message.type) {
        case "connection_ack":
          this.acked = true;
          this.connects += 1;
          this.retryDelay = 500;
          this.setState("live");
          for (const s of this.subs.values()) this.send(s);
          break;
        case "ping":
          this.raw({ type: "pong" });
          break;
        case "next":
          if (!sub) break;
          if (message.payload.errors && message.payload.errors.length) {
            this.subs.delete(sub.id);
            sub.sink.error(new GraphQLError(message.payload.errors));
          } else {
            sub.sink.next(message.payload.data);
          }
          break;
        case "error":
          if (!sub) break;
          this.subs.delete(sub.id);
          sub.sink.error(new GraphQLError(message.payload));
          break;
        case "complete":
          if (!sub) break;
          this.subs.delete(sub.id);
          sub.sink.complete();
          break;
        default:
          break;
      }
    }

    closed(ws, event) {
      if (this.ws !== ws) return;
      this.ws = null;
      this.acked = false;
      // 4403: the server refused the credentials; trying again cannot help.
      if (event.code === 4403 || event.code === 4401) {
        const error = new GraphQLError([
          { message: "the server refused the connection (" + event.code + ")", extensions: { code: "UNAUTHENTICATED" } },
        ]);
        for (const s of this.subs.values()) s.sink.error(error);
        this.subs.clear();
        this.setState("refused");
        return;
      }
      if (this.subs.size === 0) {
        this.setState("idle");
        return;
      }
      this.setState("reconnecting");
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.connect();
      }, this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 5000);
    }

    /// Drops the connection as a network failure would (the subscriptions
    /// then resume on a new one). Used by the browser test.
    drop() {
      if (this.ws) this.ws.close(4000, "dropped by the client");
    }

    close() {
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.retryTimer = null;
      const ws = this.ws;
      this.ws = null;
      this.acked = false;
      if (ws) ws.close(1000, "done");
      this.setState("idle");
    }
  }

  global.OpsGraph = { takeToken, getToken, setToken, bearer, request, download, GraphQLError, Socket };
})(window);
