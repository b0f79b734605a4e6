// The qsysd status page: reads GET /api/v1/status and follows /api/v1/events with the
// operator's token. The token lives in sessionStorage (this tab only) and is sent as a bearer
// header; the event stream is read with fetch, since EventSource cannot send headers.
// Everything shown goes through textContent: no HTML is ever parsed from data.
"use strict";

(() => {
  const TOKEN_KEY = "qsysd.token";
  const REFRESH_MS = 5000;
  const WRITES = 15;
  const $ = (id) => document.getElementById(id);

  let refreshTimer = null;
  let watching = null; // {core, component, controller} of the live stream
  let started = false;

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && problem.detail) || `qsysd answered HTTP ${status}`);
      this.status = status;
    }
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  function headers(accept) {
    const h = { Accept: accept };
    const t = token();
    if (t) h.Authorization = `Bearer ${t}`;
    return h;
  }

  async function problemOf(response) {
    const type = response.headers.get("content-type") || "";
    return type.includes("json") ? response.json().catch(() => null) : null;
  }

  async function api(path) {
    const response = await fetch(path, {
      headers: headers("application/json"), cache: "no-store", credentials: "omit",
    });
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    return response.json();
  }

  // -- DOM helpers ----------------------------------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function pill(text, tone) {
    return el("span", { class: `pill ${tone}` }, text);
  }

  function fill(tbody, rows, empty, columns) {
    tbody.replaceChildren(...rows);
    if (!rows.length) {
      tbody.append(el("tr", { class: "empty" }, el("td", { colspan: String(columns) }, empty)));
    }
  }

  function show(node, text) {
    node.hidden = !text;
    node.textContent = text || "";
  }

  // -- time -----------------------------------------------------------------------------------

  const parse = (iso) => (iso ? Date.parse(iso) : NaN);

  function clock(ms) {
    if (!Number.isFinite(ms)) return "—";
    return new Date(ms).toLocaleTimeString(undefined, { hourCycle: "h23" });
  }

  function span(seconds) {
    if (!Number.isFinite(seconds)) return "";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  const count = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

  // -- signing in and out ---------------------------------------------------------------------

  function askForToken(message) {
    clearTimeout(refreshTimer);
    stopWatching();
    started = false; // after signing in again, follow the component in the URL again
    if (token()) sessionStorage.removeItem(TOKEN_KEY);
    $("dashboard").hidden = true;
    $("who").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").textContent = message || "";
    $("token").focus();
  }

  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    $("token").value = "";
    if (!value) {
      $("sign-in-error").textContent = "Paste a token first.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, value);
    refresh();
  });

  $("sign-out").addEventListener("click", () => askForToken("Signed out."));

  // -- the status document --------------------------------------------------------------------

  function recovery(core, now) {
    const facts = [];
    const link = core.link || {};
    const since = parse(core.since);
    if (Number.isFinite(since)) {
      facts.push(`${core.connected ? "up" : "down"} since ${clock(since)} `
        + `(${span((now - since) / 1000)})`);
    }
    if (!core.connected && link.retry_every_s) facts.push(`retrying every ${link.retry_every_s} s`);
    if (link.breaker_retry_in_s) facts.push(`breaker probes again in ${link.breaker_retry_in_s} s`);
    if (link.reconnects !== undefined) {
      facts.push(`${count(link.reconnects, "reconnect")}, `
        + `${count(link.connect_failures, "failed connect")}, `
        + `breaker opened ${count(link.breaker_openings, "time")}`);
    }
    if (core.connected && Number.isFinite(link.last_push_age_s)) {
      facts.push(`last change poll ${link.last_push_age_s} s ago`);
    }
    if (link.design_mismatch) facts.push("the redundant pair runs different designs");
    return el("td", { class: "recovery" }, ...facts.map((f) => el("div", {}, f)));
  }

  function renderCores(doc) {
    const now = parse(doc.time);
    const rows = doc.cores.map((core) => {
      const engine = `${core.state} · ${core.status || "no status"}`;
      const breakerTone = { closed: "ok", open: "bad" }[core.breaker] || "warn";
      const design = el("td", { class: "design" }, core.design_name || "—");
      if (core.platform) design.append(el("div", { class: "dim" }, core.platform));
      return el("tr", { "data-core": core.name },
        el("th", { scope: "row" }, core.name),
        el("td", { class: "link" },
          core.connected ? pill("connected", "ok") : pill("disconnected", "bad")),
        el("td", { class: "engine" }, pill(engine, core.status_code === 0 ? "ok" : "warn")),
        el("td", { class: "breaker" }, pill(core.breaker, breakerTone)),
        design,
        el("td", { class: "last-error" }, core.last_error || "—"),
        recovery(core, now));
    });
    fill($("cores").tBodies[0], rows, "No Core is configured.", 7);
  }

  function renderWrites(writes) {
    const rows = (writes.entries || []).map((entry) => el("tr", {},
      el("td", {}, clock(parse(entry.time))),
      el("td", { class: "principal" }, entry.principal || "—"),
      el("td", { class: "control" }, entry.control),
      el("td", {}, entry.before ?? "—"),
      el("td", { class: "after" }, entry.after ?? "—"),
      el("td", { class: "outcome" },
        pill(entry.outcome, entry.outcome === "ok" ? "ok" : "warn"),
        entry.error ? el("div", { class: "dim" }, entry.error) : null)));
    fill($("writes").tBodies[0], rows, "No writes through qsysd yet.", 6);
    const note = writes.error ? `Recent writes are unavailable: ${writes.error}` : writes.note;
    show($("writes-note"), note);
  }

  function renderWho(doc) {
    const p = doc.principal;
    $("principal").textContent = token() ? `Signed in as ${p.name} (${p.role || "no role"})`
      : `${p.name} (${p.role}): this server asks for no token`;
    $("sign-out").hidden = !token();
    $("who").hidden = false;
    $("version").textContent = doc.version;
    $("refreshed").textContent = `Updated ${clock(parse(doc.time))}`;
  }

  function fillCoreChoice(cores) {
    const select = $("watch-core");
    const names = cores.map((c) => c.name);
    const have = Array.from(select.options, (o) => o.value);
    if (names.join("\n") === have.join("\n")) return;
    const chosen = select.value;
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(chosen)) select.value = chosen;
    loadComponentChoices();
  }

  async function refresh() {
    clearTimeout(refreshTimer);
    try {
      const doc = await api(`/api/v1/status?writes=${WRITES}`);
      $("sign-in").hidden = true;
      $("dashboard").hidden = false;
      renderWho(doc);
      renderCores(doc);
      renderWrites(doc.writes);
      fillCoreChoice(doc.cores);
      show($("banner"), "");
      if (!started) {
        started = true;
        watchFromHash();
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        askForToken(token() ? err.message : "");
        return;
      }
      show($("banner"), err instanceof ApiError ? err.message
        : `qsysd cannot be reached (${err.message}); retrying`);
    }
    refreshTimer = setTimeout(refresh, REFRESH_MS);
  }

  // A Core's status changed: read the document again, once for a burst of changes.
  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 200);
  }

  // -- live values ----------------------------------------------------------------------------

  // The event filters are globs: a name with *, ? or [ must match itself only.
  const literal = (name) => name.replace(/[*?[]/g, (c) => `[${c}]`);

  function setLive(state, text) {
    const badge = $("live-state");
    badge.className = `pill ${state}`;
    badge.textContent = state;
    $("live-note").textContent = text || "";
  }

  function stopWatching() {
    if (watching) watching.controller.abort();
    watching = null;
  }

  function valueCells(row, data, updated) {
    row.querySelector(".value").textContent = data.string ?? String(data.value ?? "—");
    const meter = row.querySelector("meter");
    meter.hidden = !Number.isFinite(data.position);
    if (Number.isFinite(data.position)) meter.value = data.position;
    row.querySelector(".updated").textContent = updated;
  }

  function controlRow(control) {
    return el("tr", { "data-control": control.name },
      el("th", { scope: "row" }, control.name),
      el("td", { class: "value" }),
      el("td", {}, el("meter", { min: "0", max: "1" })),
      el("td", { class: "updated" }));
  }

  async function loadControls(watch) {
    const path = `/api/v1/cores/${encodeURIComponent(watch.core)}/components/`
      + `${encodeURIComponent(watch.component)}/controls?limit=500`;
    const page = await api(path);
    watch.rows = new Map();
    const rows = page.controls.map((control) => {
      const row = controlRow(control);
      // age_s: seconds since the Core last confirmed the value.
      const confirmed = Number.isFinite(control.age_s) ? clock(Date.now() - control.age_s * 1000)
        : "—";
      valueCells(row, control, control.stale ? `${confirmed} (stale)` : confirmed);
      watch.rows.set(control.name, row);
      return row;
    });
    fill($("live").tBodies[0], rows, "This component has no controls.", 4);
  }

  function applyValue(watch, data) {
    let row = watch.rows.get(data.control);
    if (!row) {
      row = controlRow({ name: data.control });
      watch.rows.set(data.control, row);
      $("live").tBodies[0].append(row);
    }
    valueCells(row, data, clock(data.time * 1000));
    row.classList.remove("changed");
    void row.offsetWidth; // restart the highlight
    row.classList.add("changed");
  }

  function parseMessage(block) {
    const message = { id: null, event: "message", data: null, retry: null };
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") message.id = value;
      else if (field === "event") message.event = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^\d+$/.test(value)) message.retry = Number(value);
    }
    if (data.length) message.data = data.join("\n");
    return message;
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  async function follow(watch) {
    const { signal } = watch.controller;
    const query = new URLSearchParams({
      core: literal(watch.core), component: literal(watch.component), kinds: "value,status",
    });
    let lastId = null;
    let retryMs = 3000;
    while (!signal.aborted) {
      try {
        const h = headers("text/event-stream");
        if (lastId !== null) h["Last-Event-ID"] = lastId;
        const response = await fetch(`/api/v1/events?${query}`, {
          headers: h, signal, cache: "no-store", credentials: "omit",
        });
        if (!response.ok) throw new ApiError(response.status, await problemOf(response));
        // Read the values once the stream is open, so no change falls between the two.
        if (lastId === null) await loadControls(watch);
        setLive("live", `Following ${watch.component} on ${watch.core}.`);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const message = parseMessage(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (message.retry !== null) retryMs = message.retry;
            if (message.id !== null) lastId = message.id;
            if (message.data === null) continue;
            const data = JSON.parse(message.data);
            if (message.event === "value") applyValue(watch, data);
            else if (message.event === "status") refreshSoon();
            else if (message.event === "reset") await loadControls(watch);
          }
        }
        if (!signal.aborted) setLive("reconnecting", "The event stream ended; reconnecting.");
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ApiError && err.status === 401) {
          askForToken(err.message);
          return;
        }
        if (err instanceof ApiError && err.status < 500 && err.status !== 429) {
          watch.controller.abort(); // an open stream would hold one of the server's slots
          setLive("error", err.message); // an unknown component, a role without read
          return;
        }
        setLive("reconnecting", `${err.message}; reconnecting`);
      }
      await sleep(retryMs, signal);
    }
  }

  function watch(core, component) {
    stopWatching();
    if (!core || !component) return;
    watching = { core, component, controller: new AbortController(), rows: new Map() };
    $("watch-core").value = core;
    $("watch-component").value = component;
    history.replaceState(null, "", `#${new URLSearchParams({ core, component })}`);
    $("live").tBodies[0].replaceChildren();
    setLive("connecting", `Connecting to the event stream of ${core}…`);
    follow(watching);
  }

  function watchFromHash() {
    const wanted = new URLSearchParams(location.hash.slice(1));
    const core = wanted.get("core") || $("watch-core").value;
    if (wanted.get("component")) watch(core, wanted.get("component"));
  }

  async function loadComponentChoices() {
    const core = $("watch-core").value;
    if (!core) return;
    try {
      const page = await api(`/api/v1/cores/${encodeURIComponent(core)}/components?limit=500`);
      $("components").replaceChildren(
        ...page.components.map((c) => el("option", { value: c.name }, `${c.type}`)));
    } catch (err) {
      $("components").replaceChildren();
    }
  }

  $("watch-core").addEventListener("change", loadComponentChoices);
  $("watch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    watch($("watch-core").value, $("watch-component").value.trim());
  });

  refresh();
})();
