/* crucible-actors dashboard: plain JavaScript, no build step, no third-party code.
 *
 * Routes (hash): #/runs[?status=&experiment=&cols=&sort=&f=&before=&offset=], #/runs/<id>,
 * #/sweeps/<id>[?metric=], #/compare?runs=|sweep=, #/submit.
 *
 * Design notes
 * - Escaping: nothing is ever assigned to innerHTML. Every node is built with h()/svg()
 *   and every value goes through textContent or setAttribute, so run data (stage names,
 *   error messages, metric keys) cannot inject markup. URLs from the API go through
 *   safeUrl(), which only lets http(s) and same-origin relative URLs through.
 * - Authentication: the first API answer 401 (or 403, a wrong token) opens a dialog; the
 *   token is kept in sessionStorage and sent as "Authorization: Bearer ...". Links that
 *   cannot carry a header (artifacts, the HTML trace) are fetched with the header and
 *   opened as blob: URLs when a token is set.
 * - Live updates: EventSource cannot send an Authorization header, so the run page reads
 *   GET /api/runs/{id}/events with fetch() and a ReadableStream and parses the SSE frames
 *   itself; every event re-fetches the run detail (throttled). If streaming fails, the
 *   page falls back to polling the detail every 1.5 s. The runs table has no list-wide
 *   stream to follow, so it polls GET /api/runs every 2 s. Polling pauses while the tab is
 *   hidden.
 * - Submitting: the definition's text (TOML, JSON or YAML) goes to POST
 *   /api/experiments/check, where the server reads it with the loader of
 *   `crucible-actors run` and answers the POST /api/runs body that runs it, or the
 *   loader's errors with their field paths, which the form shows. The page parses no
 *   experiment format itself.
 */
(() => {
  "use strict";

  const TOKEN_KEY = "crucible-actors.token";
  const DRAFT_KEY = "crucible-actors.draft";
  const RUN_STATUSES = ["pending", "running", "completed", "failed", "cancelled", "interrupted"];
  const TERMINAL = new Set(["completed", "failed", "cancelled", "interrupted"]);
  const TERMINAL_EVENTS = new Set(["run_completed", "run_failed", "run_cancelled"]);
  const POLL_LIST_MS = 2000;
  const POLL_RUN_MS = 1500;

  // --- DOM helpers ---------------------------------------------------------------------

  const SVG_NS = "http://www.w3.org/2000/svg";
  const PROPS = new Set(["value", "checked", "selected", "indeterminate"]);

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (PROPS.has(key)) {
        el[key] = value;
      } else {
        el.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  /** Create an HTML element; strings among the children become text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  /** Create an SVG element. */
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function $(selector, root = document) {
    return root.querySelector(selector);
  }

  /** Return url when it is http(s) or same-origin relative, else "#". */
  function safeUrl(url) {
    if (typeof url !== "string" || !url) return "#";
    try {
      const parsed = new URL(url, document.baseURI);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? url : "#";
    } catch {
      return "#";
    }
  }

  // Relative API paths, so a dashboard mounted under a prefix still reaches its API.
  function apiPath(...parts) {
    return "api/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
  }

  // --- formatting ----------------------------------------------------------------------

  const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const timeFmt = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

  function parseTime(iso) {
    if (!iso) return null;
    const t = Date.parse(iso);
    return Number.isNaN(t) ? null : t;
  }

  function timeCell(iso) {
    const t = parseTime(iso);
    if (t === null) return h("span", { class: "muted" }, "—");
    return h("time", { datetime: iso, title: iso }, dateFmt.format(t));
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
    if (seconds < 0) seconds = 0;
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
    const s = Math.round(seconds);
    if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  }

  /** Duration of a run or attempt; still-running ones count up to now. */
  function elapsed(item) {
    if (typeof item.duration === "number") return item.duration;
    const start = parseTime(item.started_at);
    if (start === null) return null;
    const end = parseTime(item.finished_at) ?? Date.now();
    return (end - start) / 1000;
  }

  function formatNumber(x) {
    if (Number.isInteger(x)) return String(x);
    if (!Number.isFinite(x)) return String(x);
    const abs = Math.abs(x);
    if (abs !== 0 && (abs < 1e-4 || abs >= 1e7)) return x.toExponential(3);
    return String(Number(x.toPrecision(5)));
  }

  function formatValue(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") return formatNumber(value);
    if (typeof value === "boolean") return value ? "true" : "false";
    if (typeof value === "string") return value;
    if (Array.isArray(value)) {
      const shown = value.slice(0, 8).map((v) => (typeof v === "number" ? formatNumber(v) : JSON.stringify(v)));
      const more = value.length > 8 ? `, … (${value.length} values)` : "";
      return `[${shown.join(", ")}${more}]`;
    }
    return JSON.stringify(value);
  }

  function badge(status, extra = "") {
    const s = String(status || "unknown");
    return h("span", { class: `badge ${s.replace(/[^a-z_]/gi, "")} ${extra}`.trim() }, s);
  }

  function isScalar(v) {
    return v === null || ["string", "number", "boolean"].includes(typeof v);
  }

  /** Flatten nested objects into [dotted.key, value] rows; arrays of scalars stay whole. */
  function flatten(value, prefix = "", out = []) {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      const keys = Object.keys(value);
      if (keys.length === 0 && prefix) out.push([prefix, {}]);
      for (const key of keys) flatten(value[key], prefix ? `${prefix}.${key}` : key, out);
    } else if (Array.isArray(value) && !value.every(isScalar)) {
      if (value.length === 0) out.push([prefix, []]);
      value.forEach((item, i) => flatten(item, `${prefix}[${i}]`, out));
    } else {
      out.push([prefix, value]);
    }
    return out;
  }

  function pretty(value) {
    return h("pre", null, JSON.stringify(value, null, 2));
  }

  // --- API -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const err = body && body.error ? body.error : null;
      super(err && err.message ? err.message : `HTTP ${status}`);
      this.status = status;
      this.type = err ? err.type : null;
      this.details = err ? err.details : null;
      this.retryAfter = retryAfter;
    }
  }

  function getToken() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  let tokenPrompt = null;
  let tokenDeclined = false;

  /** Ask for the API token (one dialog at a time); resolve true when one was entered. */
  function askToken(message) {
    if (tokenPrompt) return tokenPrompt;
    const dialog = $("#token-dialog");
    if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(false);
    tokenPrompt = new Promise((resolve) => {
      $("#token-message").textContent = message;
      const input = $("#token-input");
      input.value = "";
      dialog.returnValue = "";
      dialog.addEventListener(
        "close",
        () => {
          tokenPrompt = null;
          const token = input.value.trim();
          input.value = "";
          if (dialog.returnValue === "save" && token) {
            sessionStorage.setItem(TOKEN_KEY, token);
            tokenDeclined = false;
            updateTokenState();
            resolve(true);
          } else {
            tokenDeclined = true;
            resolve(false);
          }
        },
        { once: true },
      );
      dialog.showModal();
      input.focus();
    });
    return tokenPrompt;
  }

  async function readError(resp) {
    try {
      return await resp.json();
    } catch {
      return null;
    }
  }

  /**
   * Call the API. Returns parsed JSON, or the Response itself with raw: true. The request
   * body is `body` as JSON, or `text` sent as `contentType`.
   * Asks for a token on 401/403 (unless the user already declined) and retries.
   */
  async function api(path, { method = "GET", body, text, contentType, headers = {}, signal, raw = false } = {}) {
    for (let attempt = 0; ; attempt++) {
      const hdrs = new Headers(headers);
      const token = getToken();
      if (token) hdrs.set("Authorization", `Bearer ${token}`);
      let payload;
      if (text !== undefined) {
        hdrs.set("Content-Type", contentType || "text/plain");
        payload = text;
      } else if (body !== undefined) {
        hdrs.set("Content-Type", "application/json");
        payload = JSON.stringify(body);
      }
      const resp = await fetch(path, { method, headers: hdrs, body: payload, signal, cache: "no-store" });
      if ((resp.status === 401 || resp.status === 403) && attempt < 3 && !tokenDeclined) {
        const message =
          resp.status === 403
            ? "The server refused this token. Enter the API token:"
            : "This server needs an API token.";
        if (resp.status === 403) sessionStorage.removeItem(TOKEN_KEY);
        if (await askToken(message)) continue;
      }
      if (!resp.ok) throw new ApiError(resp.status, await readError(resp), resp.headers.get("Retry-After"));
      if (raw) return resp;
      if (resp.status === 204) return null;
      return resp.json();
    }
  }

  function updateTokenState() {
    const state = $("#token-state");
    if (state) state.hidden = !getToken();
  }

  /** A panel explaining an API error; offers the token dialog for 401/403. */
  function errorBox(err, what) {
    if (err && err.name === "AbortError") return null;
    const box = h("div", { class: "alert", role: "alert" });
    if (err instanceof ApiError) {
      box.append(h("strong", null, `${what}: `), err.message);
      if (err.type) box.append(" ", h("span", { class: "muted" }, `(${err.type}, HTTP ${err.status})`));
      if (err.details !== null && err.details !== undefined) box.append(pretty(err.details));
      if (err.status === 401 || err.status === 403) {
        box.append(
          h("p", null,
            h("button", {
              type: "button",
              onclick: async () => {
                tokenDeclined = false;
                if (await askToken("Enter the API token:")) route();
              },
            }, "Enter API token")),
        );
      }
    } else {
      box.append(h("strong", null, `${what}: `), String(err && err.message ? err.message : err));
    }
    return box;
  }

  /** Make a link that needs the API token work: fetch with the header, open as a blob. */
  function authLink(href, text, { download = null, newTab = true } = {}) {
    const url = safeUrl(href);
    const a = h("a", { href: url, target: newTab ? "_blank" : null, rel: "noopener" }, text);
    a.addEventListener("click", async (event) => {
      if (!getToken() || url === "#") return; // without a token the plain link works
      event.preventDefault();
      try {
        const resp = await api(url, { raw: true });
        const blobUrl = URL.createObjectURL(await resp.blob());
        const tmp = h("a", { href: blobUrl, target: "_blank", rel: "noopener" });
        if (download) tmp.setAttribute("download", download);
        tmp.click();
        setTimeout(() => URL.revokeObjectURL(blobUrl), 60_000);
      } catch (err) {
        const box = errorBox(err, `Could not open ${text}`);
        if (box) a.after(box);
      }
    });
    return a;
  }

  // --- views and routing ---------------------------------------------------------------

  let current = null; // the live view: { controller, timers }

  /** Start a view; everything registered on it stops when the route changes. */
  function newView() {
    const view = {
      controller: new AbortController(),
      timers: [],
      get signal() {
        return this.controller.signal;
      },
      get alive() {
        return current === this;
      },
      /** Run fn now and every ms milliseconds (skipped while the tab is hidden). */
      poll(fn, ms) {
        let running = false;
        const tick = async () => {
          if (!this.alive || running || document.hidden) return;
          running = true;
          try {
            await fn();
          } finally {
            running = false;
          }
        };
        this.timers.push(setInterval(tick, ms));
        return tick();
      },
      stop() {
        this.controller.abort();
        this.timers.forEach(clearInterval);
        this.timers = [];
      },
    };
    if (current) current.stop();
    current = view;
    return view;
  }

  function setNav(section) {
    for (const link of document.querySelectorAll("[data-nav]")) {
      if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  function route() {
    let hash = location.hash;
    if (!hash.startsWith("#/")) {
      if (current && hash) return; // an in-page anchor such as the skip link
      hash = "#/runs";
    }
    const [path, query = ""] = hash.slice(1).split("?");
    const params = new URLSearchParams(query);
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    const main = $("#main");
    main.replaceChildren();
    if (parts[0] === "runs" && parts.length === 1) {
      setNav("runs");
      viewRuns(main, params);
    } else if (parts[0] === "runs" && parts.length >= 2) {
      setNav("runs");
      viewRun(main, parts.slice(1).join("/"));
    } else if (parts[0] === "submit") {
      setNav("submit");
      viewSubmit(main);
    } else if (parts[0] === "sweeps" && parts.length >= 2) {
      setNav("runs");
      viewSweep(main, parts.slice(1).join("/"), params);
    } else if (parts[0] === "compare") {
      setNav("runs");
      viewCompare(main, params);
    } else {
      setNav("");
      newView();
      document.title = "Not found · crucible-actors";
      main.append(...notFound("Page not found", "There is no page at ", hash, "Show the runs"));
    }
  }

  /** The heading and paragraph of a page for something that does not exist. */
  function notFound(title, what, id, back) {
    return [
      h("h1", null, title),
      h("p", null, what, h("code", null, id), ". ", h("a", { href: "#/runs" }, back), "."),
    ];
  }

  function focusHeading(main) {
    const heading = $("h1", main);
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
  }

  // --- runs list -----------------------------------------------------------------------
  //
  // State in the hash: status, experiment, before (newest-first cursor), cols (column
  // paths, comma-separated), sort (a column or run field, "-" first for descending),
  // f (repeated filters "<column><op><value>") and offset (with sort or filters). Sorting
  // and filtering happen on the server (GET /api/runs?sort=&filter=&offset=), so they
  // cover every run, not just the page shown.

  const RUN_FIELD_COLUMNS = [
    ["id", "Run"],
    ["status", "Status"],
    ["experiment_id", "Experiment"],
    ["started_at", "Started"],
    ["duration", "Duration"],
  ];
  const FILTER_OPS = /^(>=|<=|!=|=|>|<|~)/;

  /** Build "#/runs?..." from a state object; list values (filters) repeat their key. */
  function runsHash(state) {
    const q = new URLSearchParams();
    for (const key of ["status", "experiment", "cols", "sort", "f", "before", "offset"]) {
      const v = state[key];
      if (Array.isArray(v)) v.filter(Boolean).forEach((x) => q.append(key, x));
      else if (v) q.set(key, v);
    }
    const s = q.toString();
    return s ? `#/runs?${s}` : "#/runs";
  }

  function runsState(params) {
    return {
      status: params.get("status") || "",
      experiment: params.get("experiment") || "",
      before: params.get("before") || "",
      cols: (params.get("cols") || "").split(",").map((c) => c.trim()).filter(Boolean),
      sort: params.get("sort") || "",
      f: params.getAll("f").filter(Boolean),
      offset: params.get("offset") || "",
    };
  }

  /** The state with some keys changed, as a hash; paging restarts unless told. */
  function withState(state, changes) {
    const next = { ...state, before: "", offset: "", ...changes };
    return runsHash({ ...next, cols: next.cols.join(",") });
  }

  /** "metrics.accuracy" -> "accuracy"; "params.cv_eval.model" -> "cv_eval.model". */
  function columnLabel(path) {
    return path.replace(/^(metrics|params)\./, "");
  }

  /** Whether the filter text f ("<column><op><value>") is about column. */
  function isFilterOf(f, column) {
    return f.startsWith(column) && FILTER_OPS.test(f.slice(column.length));
  }

  /** The filter of a column in state.f: [op, value] or null. */
  function filterOf(state, column) {
    const f = state.f.find((x) => isFilterOf(x, column));
    if (!f) return null;
    const rest = f.slice(column.length);
    const op = rest.match(FILTER_OPS)[1];
    return [op, rest.slice(op.length)];
  }

  /** What the user typed in a filter box -> "<column><op><value>" ("~" when no operator). */
  function filterFromInput(column, text) {
    const t = text.trim();
    if (!t) return "";
    return FILTER_OPS.test(t) ? `${column}${t}` : `${column}~${t}`;
  }

  function viewRuns(main, params) {
    const view = newView();
    const state = runsState(params);
    const { status, experiment, before } = state;
    const scanning = Boolean(state.sort || state.f.length);
    document.title = "Runs · crucible-actors";

    const statusSelect = h(
      "select",
      { id: "filter-status", name: "status" },
      h("option", { value: "" }, "Any status"),
      RUN_STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)),
    );
    const experimentInput = h("input", {
      id: "filter-experiment",
      name: "experiment",
      type: "search",
      value: experiment,
      placeholder: "e.g. core-pipeline",
      autocomplete: "off",
      spellcheck: "false",
    });
    const apply = () => {
      location.hash = withState(state, { status: statusSelect.value, experiment: experimentInput.value.trim() });
    };
    statusSelect.addEventListener("change", apply);
    const filtered = status || experiment || state.f.length;
    const form = h(
      "form",
      {
        class: "filters",
        role: "search",
        "aria-label": "Filter runs",
        onsubmit: (e) => {
          e.preventDefault();
          apply();
        },
      },
      h("div", { class: "field" }, h("label", { for: "filter-status" }, "Status"), statusSelect),
      h("div", { class: "field" }, h("label", { for: "filter-experiment" }, "Experiment id"), experimentInput),
      h("button", { type: "submit" }, "Filter"),
      filtered ? h("a", { href: withState(state, { status: "", experiment: "", f: [] }), id: "clear-filters" }, "Clear filters") : null,
    );

    const picker = h("details", { class: "column-picker", id: "column-picker" },
      h("summary", null, `Columns${state.cols.length ? ` (${state.cols.length})` : ""}`),
      h("div", { class: "picker-body" }, h("p", { class: "muted" }, "Loading the metrics and parameters of the recent runs…")));
    picker.addEventListener("toggle", () => {
      if (picker.open && !picker.dataset.loaded) loadPicker();
    });

    async function loadPicker() {
      picker.dataset.loaded = "1";
      const body = picker.querySelector(".picker-body");
      const q = new URLSearchParams();
      if (experiment) q.set("experiment_id", experiment);
      try {
        const found = await api(`api/columns?${q}`, { signal: view.signal });
        if (!view.alive) return;
        const chosen = new Set(state.cols);
        const known = new Set([...found.metrics, ...found.sweep, ...found.params]);
        const groups = [
          ["Metrics", found.metrics],
          ["Swept parameters", found.sweep],
          ["Options", found.params],
          ["Chosen earlier", state.cols.filter((c) => !known.has(c))],
        ].filter(([, list]) => list.length);
        if (groups.length === 0) {
          body.replaceChildren(h("p", { class: "muted" }, "The recent runs have no metrics or options to show."));
          return;
        }
        const boxes = [];
        body.replaceChildren(
          ...groups.map(([title, list]) =>
            h("fieldset", null, h("legend", null, title),
              list.map((path) => {
                const id = `col-${path.replace(/[^a-z0-9_-]/gi, "_")}`;
                const box = h("input", { type: "checkbox", id, value: path, checked: chosen.has(path), "data-column": path });
                boxes.push(box);
                return h("div", { class: "check" }, box, h("label", { for: id }, columnLabel(path)));
              }))),
          h("button", {
            type: "button",
            id: "apply-columns",
            class: "primary",
            onclick: () => {
              const picked = boxes.filter((b) => b.checked).map((b) => b.value);
              // Keep the order chosen so far, new ones at the end.
              const cols = [...state.cols.filter((c) => picked.includes(c)), ...picked.filter((c) => !state.cols.includes(c))];
              const keepSort = !state.sort || cols.includes(state.sort.replace(/^-/, "")) || RUN_FIELD_COLUMNS.some(([k]) => state.sort.replace(/^-/, "") === k);
              location.hash = withState(state, {
                cols,
                sort: keepSort ? state.sort : "",
                f: state.f.filter((f) => cols.some((c) => isFilterOf(f, c)) || RUN_FIELD_COLUMNS.some(([k]) => isFilterOf(f, k))),
              });
            },
          }, "Show columns"),
        );
      } catch (err) {
        if (!view.alive || err.name === "AbortError") return;
        picker.dataset.loaded = "";
        body.replaceChildren(errorBox(err, "Could not load the columns") || "");
      }
    }

    const live = h("span", { class: "live off", id: "runs-live" }, "Connecting…");
    const tableHolder = h("div", { class: "table-wrap", id: "runs" });
    const errorHolder = h("div");
    main.append(
      h("div", { class: "toolbar" },
        h("h1", null, "Runs"),
        h("span", { class: "spacer" }),
        live,
        compareButton(),
        h("a", { href: "#/submit" }, "Submit an experiment")),
      h("section", { class: "panel", "aria-labelledby": "runs-heading" },
        h("h2", { id: "runs-heading", class: "sr-only" }, "Run list"),
        h("div", { class: "filter-bar" }, form, picker),
        errorHolder,
        tableHolder),
    );
    focusHeading(main);

    let lastKey = null;
    let durations = []; // [cell, run] of unfinished runs, updated every tick

    async function refresh() {
      const q = new URLSearchParams({ limit: "50" });
      if (status) q.set("status", status);
      if (experiment) q.set("experiment_id", experiment);
      if (state.cols.length) q.set("columns", state.cols.join(","));
      if (state.sort) q.set("sort", state.sort);
      for (const f of state.f) q.append("filter", f);
      if (scanning && state.offset) q.set("offset", state.offset);
      if (!scanning && before) q.set("before", before);
      try {
        const data = await api(`api/runs?${q}`, { signal: view.signal });
        if (!view.alive) return;
        errorHolder.replaceChildren();
        live.classList.remove("off");
        live.textContent = `Live · updated ${timeFmt.format(Date.now())}`;
        const key = JSON.stringify(data);
        // Never re-render under the user's fingers: a filter box being typed in keeps its text.
        const typing = document.activeElement && tableHolder.contains(document.activeElement);
        if (key !== lastKey && !typing) {
          lastKey = key;
          durations = renderRunsTable(tableHolder, data, state);
        }
        for (const [cell, run] of durations) cell.textContent = formatDuration(elapsed(run));
      } catch (err) {
        if (!view.alive || err.name === "AbortError") return;
        live.classList.add("off");
        live.textContent = "Not updating";
        errorHolder.replaceChildren(errorBox(err, "Could not load runs") || "");
      }
    }
    // A sorted or filtered list reads every run on the server: refresh it less often.
    view.poll(refresh, scanning ? POLL_LIST_MS * 5 : POLL_LIST_MS);
  }

  /** A long generated id (a UUID) shortened for tables; the full id goes in a title. */
  function shortId(id) {
    return /^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(id) ? `${id.slice(0, 8)}…` : id;
  }

  /** A column header: a button that sorts by the column (ascending, then descending). */
  function sortHeader(state, column, label, { numeric = false, title = null } = {}) {
    const current = state.sort.replace(/^-/, "");
    const descending = state.sort.startsWith("-");
    const active = current === column;
    const next = active && !descending ? `-${column}` : column;
    const th = h("th", {
      scope: "col",
      class: numeric ? "num" : null,
      "aria-sort": active ? (descending ? "descending" : "ascending") : null,
      "data-column": column,
    });
    th.append(
      h("a", {
        href: withState(state, { sort: next }),
        class: "sort",
        title: title || `Sort by ${label}`,
      }, label, h("span", { class: "sort-mark", "aria-hidden": "true" }, active ? (descending ? " ▼" : " ▲") : "")),
    );
    return th;
  }

  function renderRunsTable(holder, data, state) {
    const runs = Array.isArray(data.runs) ? data.runs : [];
    const cols = state.cols;
    const unfinished = [];
    const scanning = Boolean(state.sort || state.f.length);

    // Filters per value column, in a header row (Enter applies them all).
    const filterInputs = cols.map((c) => {
      const current = filterOf(state, c);
      return h("input", {
        type: "search",
        class: "col-filter",
        "data-column": c,
        "aria-label": `Filter ${columnLabel(c)} (e.g. >0.9, =large, or text)`,
        placeholder: "filter",
        value: current ? (current[0] === "~" ? current[1] : `${current[0]}${current[1]}`) : "",
        autocomplete: "off",
        spellcheck: "false",
      });
    });
    const applyFilters = () => {
      const own = state.f.filter((f) => !cols.some((c) => isFilterOf(f, c)));
      const typed = filterInputs.map((input) => filterFromInput(input.dataset.column, input.value)).filter(Boolean);
      location.hash = withState(state, { f: [...own, ...typed] });
    };
    for (const input of filterInputs) {
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          applyFilters();
        }
      });
      input.addEventListener("search", applyFilters); // the clear (x) button
    }

    const headRow = h("tr", null,
      h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Select to compare")),
      ...RUN_FIELD_COLUMNS.map(([key, label]) => sortHeader(state, key, label, { numeric: key === "duration" })),
      ...cols.map((c) => sortHeader(state, c, columnLabel(c), { title: `Sort by ${c}` })),
      h("th", { scope: "col" }, "Failure"));
    const head = h("thead", null, headRow);
    if (cols.length) {
      head.append(h("tr", { class: "filter-row" },
        h("td", { colspan: 1 + RUN_FIELD_COLUMNS.length }, h("span", { class: "muted" }, "Filter columns (Enter):")),
        ...filterInputs.map((input) => h("td", null, input)),
        h("td", null)));
    }

    const rows = runs.map((run) => {
      const durationCell = h("td", { class: "num" }, formatDuration(elapsed(run)));
      if (!TERMINAL.has(run.status)) unfinished.push([durationCell, run]);
      const failure = run.failure
        ? `${run.failure.stage ? `${run.failure.stage}: ` : ""}${run.failure.message || run.failure.reason_type || ""}`
        : "";
      const values = run.columns || {};
      return h("tr", { "data-run-id": run.id, "data-status": run.status },
        h("td", null, selectBox(run)),
        h("td", null, h("a", { class: "run-id", href: `#/runs/${encodeURIComponent(run.id)}`, title: run.id, "aria-label": `Run ${run.id}` }, shortId(run.id))),
        h("td", null, badge(run.status)),
        h("td", { class: "experiment" },
          run.experiment_id
            ? h("a", { href: withState(state, { experiment: run.experiment_id }), title: `Only runs of ${run.experiment_id}` }, run.experiment_id)
            : "—",
          run.sweep_id
            ? h("a", { class: "sweep-link", href: `#/sweeps/${encodeURIComponent(run.sweep_id)}`, title: `Sweep ${run.sweep_id}` }, `sweep ${shortId(run.sweep_id)}`)
            : ""),
        h("td", null, timeCell(run.started_at)),
        durationCell,
        ...cols.map((c) => {
          const v = values[c];
          return h("td", { class: typeof v === "number" ? "num col" : "col", "data-column": c, title: v === null || v === undefined ? null : String(typeof v === "object" ? JSON.stringify(v) : v) },
            v === null || v === undefined ? h("span", { class: "muted" }, "—") : formatValue(v));
        }),
        h("td", { class: "failure wrap" }, failure));
    });

    const table = h("table", { class: "runs-table" },
      h("caption", { class: "sr-only" },
        state.sort ? `Runs sorted by ${state.sort.replace(/^-/, "")}, ${state.sort.startsWith("-") ? "descending" : "ascending"}` : "Runs, newest first"),
      head,
      h("tbody", null, rows));

    if (runs.length === 0) {
      const filtered = state.status || state.experiment || state.f.length;
      const empty = h("div", { class: "empty" },
        filtered ? "No runs match these filters. " : "No runs yet. ",
        h("a", { href: "#/submit" }, "Submit an experiment"), ".");
      // Keep the header (and its filter boxes) when columns are shown, so filters can be changed.
      holder.replaceChildren(...(cols.length ? [table, empty] : [empty]));
      return unfinished;
    }

    const pager = h("div", { class: "pager" });
    if (scanning) {
      const offset = Number(state.offset || 0);
      const total = typeof data.total === "number" ? data.total : runs.length;
      pager.append(h("span", { class: "muted", id: "runs-count" },
        `${offset + 1}–${offset + runs.length} of ${total} runs${data.truncated ? " (only the newest runs were read)" : ""}`));
      if (offset > 0) pager.append(h("a", { href: withState(state, { offset: String(Math.max(0, offset - 50)) }) }, "← Previous"));
      if (data.next_offset !== null && data.next_offset !== undefined) {
        pager.append(h("a", { href: withState(state, { offset: String(data.next_offset) }), id: "runs-next" }, "Next →"));
      }
    } else {
      if (state.before) pager.append(h("a", { href: withState(state, {}) }, "← Newest runs"));
      if (data.next) pager.append(h("a", { href: withState(state, { before: data.next }), id: "runs-next" }, "Older runs →"));
    }
    holder.replaceChildren(table, pager.childElementCount ? pager : "");
    return unfinished;
  }

  // --- compare -------------------------------------------------------------------------
  //
  // Runs ticked in the runs table (kept across refreshes and pages, for this tab) are
  // compared on #/compare?runs=A,B[,C...] (or #/compare?sweep=ID): the page fetches
  // GET /api/compare?format=html, the same self-contained page as
  // "crucible-actors compare --format html", and shows it in a sandboxed frame.

  const selectedRuns = new Set();

  function compareHash(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
    return `#/compare?${q}`;
  }

  function updateCompareButton() {
    const button = $("#compare-selected");
    if (!button) return;
    const n = selectedRuns.size;
    button.disabled = n < 2;
    button.textContent = n ? `Compare selected (${n})` : "Compare selected";
  }

  function compareButton() {
    const button = h("button", {
      type: "button",
      id: "compare-selected",
      title: "Tick two runs or more; the first ticked is the baseline",
      onclick: () => {
        if (selectedRuns.size >= 2) location.hash = compareHash({ runs: [...selectedRuns].join(",") });
      },
    });
    queueMicrotask(updateCompareButton);
    return button;
  }

  function selectBox(run) {
    const box = h("input", {
      type: "checkbox",
      class: "select-run",
      "aria-label": `Select run ${run.id} to compare`,
      checked: selectedRuns.has(run.id),
      disabled: run.status !== "completed" && !selectedRuns.has(run.id),
    });
    box.addEventListener("change", () => {
      if (box.checked) selectedRuns.add(run.id);
      else selectedRuns.delete(run.id);
      updateCompareButton();
    });
    return box;
  }

  function viewCompare(main, params) {
    const view = newView();
    const runs = (params.get("runs") || "").split(",").map((r) => r.trim()).filter(Boolean);
    const sweep = params.get("sweep") || "";
    document.title = "Compare · crucible-actors";
    const field = (id, label, value, placeholder) =>
      h("div", { class: "field" },
        h("label", { for: id }, label),
        h("input", { id, name: id, type: "text", value, placeholder, autocomplete: "off", spellcheck: "false" }));
    const form = h("form", {
      class: "filters",
      "aria-label": "Comparison options",
      onsubmit: (e) => {
        e.preventDefault();
        location.hash = compareHash({
          runs: runs.join(","),
          sweep,
          metric: $("#compare-metric").value.trim(),
          pair_by: $("#compare-pair-by").value.trim(),
          cluster_by: $("#compare-cluster-by").value.trim(),
          unpaired: $("#compare-unpaired").checked ? "1" : "",
        });
      },
    },
    field("compare-metric", "Score field", params.get("metric") || "", "auto"),
    field("compare-pair-by", "Pair examples by", params.get("pair_by") || "", "auto: id, when unique"),
    field("compare-cluster-by", "Cluster by", params.get("cluster_by") || "", "e.g. passage"),
    h("div", { class: "field" },
      h("label", { for: "compare-unpaired" },
        h("input", { id: "compare-unpaired", name: "compare-unpaired", type: "checkbox", checked: params.get("unpaired") === "1" }),
        " Unpaired")),
    h("button", { type: "submit", id: "compare-run" }, "Compare"));
    const what = sweep ? `sweep ${sweep}` : `${runs.length} runs`;
    const holder = h("div", { id: "compare-result" }, h("p", { class: "muted" }, "Comparing…"));
    main.append(
      h("div", { class: "toolbar" }, h("h1", null, `Compare ${what}`), h("span", { class: "spacer" }),
        h("a", { href: "#/runs" }, "Back to the runs")),
      h("section", { class: "panel" }, form, holder),
    );
    focusHeading(main);
    if (!sweep && runs.length < 2) {
      holder.replaceChildren(h("p", null, "Tick two runs or more in the ", h("a", { href: "#/runs" }, "runs table"), " to compare them."));
      return;
    }
    const q = new URLSearchParams();
    if (sweep) q.set("sweep", sweep);
    else q.set("runs", runs.join(","));
    for (const key of ["metric", "pair_by", "cluster_by", "unpaired"]) if (params.get(key)) q.set(key, params.get(key));
    (async () => {
      try {
        q.set("format", "html");
        const resp = await api(`api/compare?${q}`, { raw: true, signal: view.signal });
        const page = await resp.text();
        if (!view.alive) return;
        // An empty sandbox: the page is inert (it has no script anyway) and cannot reach this origin.
        const frame = h("iframe", { id: "compare-frame", title: `Comparison of ${what}`, sandbox: "" });
        frame.srcdoc = page;
        frame.style.width = "100%";
        frame.style.minHeight = "900px";
        frame.style.border = "0";
        q.set("format", "json");
        holder.replaceChildren(frame, h("p", null, authLink(`api/compare?${q}`, "The comparison as JSON")));
      } catch (err) {
        if (!view.alive || err.name === "AbortError") return;
        holder.replaceChildren(errorBox(err, "Could not compare") || "");
      }
    })();
  }

  // --- sweep page ----------------------------------------------------------------------
  //
  // #/sweeps/<id>[?metric=<name>]: GET /api/sweeps/{id} gives the points, their runs and
  // each metric summarised over the completed repeats (mean, SD, n). The page shows a
  // points x metrics table and, for the chosen metric, one chart per swept parameter
  // (inline SVG, one mark per point, whiskers +-1 SD): a numeric axis when every value
  // of the parameter is a number, else one slot per value in the sweep's order.

  function sweepHash(id, metric) {
    return `#/sweeps/${encodeURIComponent(id)}${metric ? `?metric=${encodeURIComponent(metric)}` : ""}`;
  }

  function paramText(value) {
    return typeof value === "string" ? value : formatValue(value);
  }

  function summaryText(s) {
    if (!s) return "—";
    const sd = typeof s.sd === "number" ? ` ± ${formatNumber(s.sd)}` : "";
    return `${formatNumber(s.mean)}${sd}`;
  }

  function viewSweep(main, sweepId, params) {
    const view = newView();
    document.title = `Sweep ${sweepId} · crucible-actors`;
    const live = h("span", { class: "live off", id: "sweep-live" }, "Loading…");
    const errorHolder = h("div");
    const summary = h("section", { class: "panel", id: "sweep-summary", "aria-label": "Summary" });
    const charts = h("section", { class: "panel", id: "sweep-charts", "aria-labelledby": "sweep-charts-h" });
    const points = h("section", { class: "panel", id: "sweep-points", "aria-labelledby": "sweep-points-h" });
    main.append(
      h("p", null, h("a", { href: "#/runs" }, "← All runs")),
      h("div", { class: "run-head" },
        h("h1", null, "Sweep ", h("span", { class: "run-id" }, sweepId)),
        h("span", { class: "spacer" }),
        live,
        h("a", { href: compareHash({ sweep: sweepId }), id: "sweep-compare", class: "button" }, "Compare the points")),
      errorHolder, summary, charts, points,
    );
    focusHeading(main);
    let lastKey = null;

    async function load() {
      try {
        const data = await api(apiPath("sweeps", sweepId), { signal: view.signal });
        if (!view.alive) return;
        errorHolder.replaceChildren();
        const running = data.status === "running";
        live.classList.toggle("off", !running);
        live.textContent = running ? `Live · updated ${timeFmt.format(Date.now())}` : `Finished · ${data.status}`;
        const key = JSON.stringify(data);
        if (key === lastKey) return;
        lastKey = key;
        renderSweep(data);
        if (!running) view.stop();
      } catch (err) {
        if (!view.alive || err.name === "AbortError") return;
        if (err instanceof ApiError && err.status === 404) {
          view.stop();
          main.replaceChildren(...notFound("Sweep not found", "There is no sweep with id ", sweepId, "Show all runs"));
          return;
        }
        errorHolder.replaceChildren(errorBox(err, "Could not load the sweep") || "");
      }
    }

    function renderSweep(data) {
      const metrics = data.metrics || [];
      const wanted = params.get("metric");
      const metric = metrics.includes(wanted) ? wanted : metrics.includes("accuracy") ? "accuracy" : metrics[0] || "";
      const paths = Object.keys(data.parameters || {});
      const tally = {};
      for (const p of data.points) for (const r of p.runs) tally[r.status] = (tally[r.status] || 0) + 1;
      summary.replaceChildren(
        h("dl", { class: "facts" },
          [
            ["Experiment", h("a", { href: runsHash({ experiment: data.experiment_id }) }, data.experiment_id)],
            ["Status", badge(data.status)],
            ["Mode", data.mode],
            ["Points", String(data.points.length)],
            ["Repeats", String(data.repeats)],
            ["Runs", `${data.runs} (${Object.entries(tally).map(([s, n]) => `${n} ${s}`).join(", ")})`],
            ["Created", timeCell(data.created_at)],
            ["Finished", timeCell(data.finished_at)],
          ].map(([k, v]) => h("div", null, h("dt", null, k), h("dd", null, v)))),
        h("p", { class: "muted" }, "Varies ", paths.map((p, i) => [i ? ", " : "", h("code", null, p)]),
          ". ", h("a", { href: runsHash({ cols: [...paths.map((p) => `params.${p}`), ...metrics.slice(0, 3).map((m) => `metrics.${m}`)].join(",") }) }, "Show these columns in the runs table"), "."),
      );

      // Chart of the chosen metric against each swept parameter.
      const select = h("select", { id: "sweep-metric", name: "metric" },
        metrics.map((m) => h("option", { value: m, selected: m === metric }, m)));
      select.addEventListener("change", () => {
        location.hash = sweepHash(sweepId, select.value);
      });
      charts.replaceChildren(
        h("h2", { id: "sweep-charts-h" }, "Metric by parameter"),
        metrics.length
          ? h("div", { class: "filters" }, h("div", { class: "field" }, h("label", { for: "sweep-metric" }, "Metric"), select))
          : h("p", { class: "muted" }, "The runs recorded no numeric metric yet."),
        metrics.length ? h("div", { class: "sweep-charts" }, paths.map((path) => sweepChart(data, path, metric))) : "",
      );

      // Points x metrics table.
      const table = h("table", { class: "sweep-table", id: "sweep-table" },
        h("caption", { class: "sr-only" }, "Sweep points: parameters, and each metric as mean ± SD over the completed repeats (n)"),
        h("thead", null, h("tr", null,
          h("th", { scope: "col", class: "num" }, "Point"),
          paths.map((p) => h("th", { scope: "col" }, p)),
          metrics.map((m) => h("th", { scope: "col", class: `num${m === metric ? " chosen" : ""}`, "data-metric": m }, m, h("span", { class: "muted" }, " mean ± SD (n)"))),
          h("th", { scope: "col" }, "Runs"))),
        h("tbody", null, data.points.map((p) =>
          h("tr", { "data-point": p.point },
            h("th", { scope: "row", class: "num" }, String(p.point)),
            paths.map((path) => h("td", { "data-param": path }, paramText(p.parameters[path]))),
            metrics.map((m) => {
              const s = p.summary[m];
              return h("td", { class: "num", "data-metric": m, title: s ? `min ${formatNumber(s.min)}, max ${formatNumber(s.max)}` : null },
                summaryText(s), s ? h("span", { class: "muted" }, ` (n=${s.n})`) : "");
            }),
            h("td", { class: "wrap" }, p.runs.map((r) =>
              h("a", { href: `#/runs/${encodeURIComponent(r.run_id)}`, class: `repeat-link status-${String(r.status).replace(/[^a-z_]/gi, "")}`, title: `repeat ${r.repeat}, seed ${r.seed}: ${r.status}` },
                `#${r.repeat}`, " ", badge(r.status, "small"))))))));
      points.replaceChildren(
        h("h2", { id: "sweep-points-h" }, "Points"),
        h("p", { class: "muted" }, "Each metric over a point's completed repeats: mean ± sample standard deviation (n runs)."),
        h("div", { class: "table-wrap" }, table),
      );
    }

    view.poll(load, POLL_LIST_MS);
  }

  /** One chart: metric (y) against one swept parameter (x); one mark per point. */
  function sweepChart(data, path, metric) {
    const values = data.parameters[path] || [];
    const numeric = values.length > 0 && values.every((v) => typeof v === "number");
    const marks = data.points
      .map((p) => ({ point: p, x: p.parameters[path], s: p.summary[metric] }))
      .filter((m) => m.s);
    const W = 640;
    const H = 300;
    const left = 64;
    const right = 20;
    const top = 16;
    const bottom = 46;
    const plotW = W - left - right;
    const plotH = H - top - bottom;
    const id = `sweep-chart-${path.replace(/[^a-z0-9_-]/gi, "_")}`;
    const chart = svg("svg", {
      class: "chart sweep-chart",
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-labelledby": `${id}-title`,
      "data-param": path,
      "data-kind": numeric ? "numeric" : "categorical",
    });
    chart.append(svg("title", { id: `${id}-title` },
      `${metric} against ${path}: ${marks.map((m) => `${paramText(m.x)} → ${summaryText(m.s)}`).join("; ") || "no completed runs yet"}`));
    if (marks.length === 0) {
      chart.append(svg("text", { class: "axis", x: W / 2, y: H / 2, "text-anchor": "middle" }, "No completed runs yet"));
      return h("figure", { class: "sweep-figure" }, chart, h("figcaption", null, `${metric} by ${path}`));
    }

    // y: the means with their SD whiskers, padded, on a nice step.
    const lows = marks.map((m) => m.s.mean - (m.s.sd || 0));
    const highs = marks.map((m) => m.s.mean + (m.s.sd || 0));
    let lo = Math.min(...lows);
    let hi = Math.max(...highs);
    if (hi - lo < 1e-12) {
      lo -= Math.abs(lo) * 0.1 || 1;
      hi += Math.abs(hi) * 0.1 || 1;
    }
    const ystep = niceStep(hi - lo, 5);
    const ymin = Math.floor(lo / ystep) * ystep;
    const ymax = Math.ceil(hi / ystep) * ystep;
    const y = (v) => top + plotH - ((v - ymin) / (ymax - ymin || 1)) * plotH;

    // x: numeric values on a linear axis; anything else one slot per distinct value.
    let x;
    const ticks = [];
    if (numeric) {
      let xmin = Math.min(...values);
      let xmax = Math.max(...values);
      if (xmax - xmin < 1e-12) {
        xmin -= 1;
        xmax += 1;
      }
      const pad = (xmax - xmin) * 0.06;
      const x0 = xmin - pad;
      const x1 = xmax + pad;
      x = (v) => left + ((v - x0) / (x1 - x0)) * plotW;
      const xstep = niceStep(x1 - x0, 6);
      for (let v = Math.ceil(x0 / xstep) * xstep; v <= x1 + 1e-9; v += xstep) ticks.push([x(v), formatNumber(Number(v.toPrecision(10)))]);
    } else {
      const keys = [...new Set(values.map((v) => JSON.stringify(v)))];
      const slot = plotW / Math.max(1, keys.length);
      x = (v) => left + slot * (keys.indexOf(JSON.stringify(v)) + 0.5);
      keys.forEach((k) => {
        const v = JSON.parse(k);
        const text = paramText(v);
        ticks.push([x(v), text.length > 16 ? `${text.slice(0, 15)}…` : text]);
      });
    }
    // Points sharing an x (the other parameters differ) are spread a little, in order.
    const byX = new Map();
    for (const m of marks) {
      const k = JSON.stringify(m.x);
      byX.set(k, [...(byX.get(k) || []), m]);
    }
    const spread = 12;
    for (const group of byX.values()) {
      group.forEach((m, i) => {
        m.cx = x(m.x) + (i - (group.length - 1) / 2) * spread;
      });
    }

    const ydec = Math.max(0, -Math.floor(Math.log10(ystep)));
    for (let v = ymin; v <= ymax + ystep / 2; v += ystep) {
      chart.append(
        svg("line", { class: "grid", x1: left, x2: left + plotW, y1: y(v), y2: y(v) }),
        svg("text", { class: "axis", x: left - 8, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(Math.min(ydec, 6))),
      );
    }
    chart.append(
      svg("line", { class: "axis-line", x1: left, x2: left + plotW, y1: top + plotH, y2: top + plotH }),
      svg("line", { class: "axis-line", x1: left, x2: left, y1: top, y2: top + plotH }),
    );
    for (const [px, label] of ticks) {
      chart.append(
        svg("line", { class: "axis-line", x1: px, x2: px, y1: top + plotH, y2: top + plotH + 5 }),
        svg("text", { class: "axis", x: px, y: top + plotH + 19, "text-anchor": "middle" }, label),
      );
    }
    chart.append(
      svg("text", { class: "axis axis-title", x: left + plotW / 2, y: H - 6, "text-anchor": "middle" }, path),
      svg("text", { class: "axis axis-title", x: 14, y: top + plotH / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${top + plotH / 2})` }, metric),
    );
    const others = Object.keys(data.parameters).filter((p) => p !== path);
    for (const m of marks) {
      const p = m.point;
      const rest = others.map((o) => `${o}=${paramText(p.parameters[o])}`).join(", ");
      const tip = `point ${p.point}: ${path}=${paramText(m.x)}${rest ? ` (${rest})` : ""} · ${metric} ${summaryText(m.s)} (n=${m.s.n})`;
      const g = svg("g", { class: "sweep-point", "data-point": p.point }, svg("title", null, tip));
      if (typeof m.s.sd === "number" && m.s.sd > 0) {
        const y0 = y(m.s.mean - m.s.sd);
        const y1 = y(m.s.mean + m.s.sd);
        g.append(
          svg("line", { class: "whisker", x1: m.cx, x2: m.cx, y1: y0, y2: y1 }),
          svg("line", { class: "whisker", x1: m.cx - 4, x2: m.cx + 4, y1: y0, y2: y0 }),
          svg("line", { class: "whisker", x1: m.cx - 4, x2: m.cx + 4, y1: y1, y2: y1 }),
        );
      }
      g.append(svg("circle", { class: "point-mark", cx: m.cx, cy: y(m.s.mean), r: 5.5 }));
      chart.append(g);
    }
    return h("figure", { class: "sweep-figure" }, chart,
      h("figcaption", null, `${metric} (mean ± SD over completed repeats) by `, h("code", null, path),
        numeric ? "" : h("span", { class: "muted" }, " (categories in sweep order)")));
  }

  // --- run page ------------------------------------------------------------------------

  function viewRun(main, runId) {
    const view = newView();
    document.title = `Run ${runId} · crucible-actors`;

    const statusHolder = h("span");
    const cancelButton = h("button", { type: "button", class: "danger", id: "cancel-run", disabled: true }, "Cancel run");
    const live = h("span", { class: "live off", id: "run-live" }, "Loading…");
    const sections = {
      summary: h("section", { class: "panel", id: "summary", "aria-label": "Summary" }),
      timeline: h("section", { class: "panel", id: "timeline", "aria-labelledby": "timeline-h" }),
      metrics: h("section", { class: "panel", id: "metrics", "aria-labelledby": "metrics-h" }),
      bench: h("section", { class: "panel", id: "bench", "aria-labelledby": "bench-h", hidden: true }),
      outputs: h("section", { class: "panel", id: "outputs", "aria-labelledby": "outputs-h" }),
      artifacts: h("section", { class: "panel", id: "artifacts", "aria-labelledby": "artifacts-h" }),
      provenance: h("section", { class: "panel", id: "provenance", "aria-labelledby": "provenance-h", hidden: true }),
      trace: h("section", { class: "panel", id: "trace", "aria-labelledby": "trace-h" }),
      events: h("section", { class: "panel", id: "events", "aria-labelledby": "events-h" }),
      more: h("section", { class: "panel", id: "definition", "aria-labelledby": "more-h" }),
    };
    const errorHolder = h("div");
    const actionMessage = h("div", { role: "status" });
    main.append(
      h("p", null, h("a", { href: "#/runs" }, "← All runs")),
      h("div", { class: "run-head" },
        h("h1", null, "Run ", h("span", { class: "run-id" }, runId)),
        statusHolder,
        h("span", { class: "spacer" }),
        live,
        cancelButton),
      actionMessage,
      errorHolder,
      ...Object.values(sections),
    );
    focusHeading(main);

    let detail = null;
    const keys = {};
    const events = [];
    let lastSeq = null;
    let streaming = false;
    let finished = false;

    /** Re-render a section only when its data changed, so open <details> and focus survive. */
    function update(name, data, render) {
      const key = JSON.stringify(data);
      if (keys[name] === key) return;
      keys[name] = key;
      render();
    }

    async function load() {
      try {
        const data = await api(apiPath("runs", runId), { signal: view.signal });
        if (!view.alive) return;
        errorHolder.replaceChildren();
        detail = data;
        render();
      } catch (err) {
        if (!view.alive || err.name === "AbortError") return;
        if (err instanceof ApiError && err.status === 404) {
          finished = true;
          view.stop();
          main.replaceChildren(...notFound("Run not found", "There is no run with id ", runId, "Show all runs"));
          return;
        }
        errorHolder.replaceChildren(errorBox(err, "Could not load the run") || "");
      }
    }

    function render() {
      const d = detail;
      finished = TERMINAL.has(d.status);
      statusHolder.replaceChildren(badge(d.status));
      statusHolder.dataset.status = d.status;
      cancelButton.disabled = finished;
      cancelButton.hidden = finished;
      if (finished) {
        live.classList.add("off");
        live.textContent = `Finished · ${d.status}`;
      } else {
        live.classList.remove("off");
        live.textContent = streaming ? "Live (event stream)" : `Live · updated ${timeFmt.format(Date.now())}`;
      }
      update("summary", [d.status, d.experiment_id, d.sweep_id, d.started_at, d.finished_at, d.duration, d.failure],
        () => renderSummary(sections.summary, d));
      update("timeline", [d.stages, d.started_at, d.finished_at, d.status], () => renderTimeline(sections.timeline, d));
      update("metrics", d.metrics, () => renderMetrics(sections.metrics, sections.bench, d.metrics));
      update("artifacts", d.artifacts, () => renderArtifacts(sections.artifacts, d));
      // The trace grows as stages start and end: refetch it when an attempt changes.
      const progress = (d.stages || []).map((st) => (st.attempts || []).map((a) => a.status).join(",")).join("|");
      update("trace", [d.has_trace, d.status, progress], () => renderTrace(sections.trace, d, view));
      update("outputs", [d.status, Array.isArray(d.outputs) ? d.outputs.length : 0], () => renderOutputs(sections.outputs, d, view));
      update("provenance", d.provenance || null, () => renderProvenance(sections.provenance, d));
      update("more", d.experiment, () => renderMore(sections.more, d));
    }

    cancelButton.addEventListener("click", async () => {
      if (!window.confirm(`Cancel run ${runId}?`)) return;
      cancelButton.disabled = true;
      try {
        const result = await api(`${apiPath("runs", runId, "cancel")}`, { method: "POST", signal: view.signal });
        actionMessage.replaceChildren(h("div", { class: "alert info" }, `Cancellation requested (status: ${result && result.status}).`));
      } catch (err) {
        if (err instanceof ApiError && err.status === 409) {
          actionMessage.replaceChildren(h("div", { class: "alert info" }, "The run had already finished."));
        } else {
          actionMessage.replaceChildren(errorBox(err, "Could not cancel the run") || "");
          cancelButton.disabled = false;
        }
      }
      load();
    });

    // Event log, fed by the stream.
    const eventList = h("ol", { class: "event-list", id: "event-list" });
    const eventNote = h("p", { class: "muted" }, "Waiting for events…");
    sections.events.append(h("h2", { id: "events-h" }, "Events"), eventNote, eventList);

    function addEvent(ev) {
      events.push(ev);
      if (events.length === 1) eventNote.textContent = "Run events in order; times are seconds since the first event.";
      // "time" is the runtime's monotonic clock, "wall" the wall clock (epoch seconds or ISO).
      const first = events[0];
      const offset = typeof ev.time === "number" && typeof first.time === "number" ? ev.time - first.time : null;
      const wall = typeof ev.wall === "number" ? ev.wall * 1000 : parseTime(ev.wall);
      eventList.append(
        h("li", { "data-type": ev.type, "data-seq": ev.seq },
          h("span", { class: "when", title: wall !== null ? dateFmt.format(wall) : null },
            offset !== null ? `+${offset.toFixed(3)} s` : `#${ev.seq}`),
          h("span", { class: "type" }, ev.type),
          h("span", null,
            ev.stage ? h("strong", null, ev.stage) : "",
            ev.stage && ev.attempt ? ` · attempt ${ev.attempt}` : "",
            ev.data && typeof ev.data === "object" && Object.keys(ev.data).length
              ? h("span", { class: "muted" }, ` ${summarizeEventData(ev.data)}`)
              : "")),
      );
    }

    let reloadTimer = null;
    function scheduleLoad() {
      if (reloadTimer) return;
      reloadTimer = setTimeout(() => {
        reloadTimer = null;
        if (view.alive) load();
      }, 250);
    }

    async function follow() {
      // Replays the stored events, then follows live ones; ends after the terminal event.
      for (let reconnects = 0; view.alive && reconnects < 5; reconnects++) {
        const url = apiPath("runs", runId, "events") + (lastSeq !== null ? `?after=${encodeURIComponent(lastSeq)}` : "");
        let sawTerminal = false;
        try {
          await readSse(url, view.signal, (type, data, id) => {
            if (id !== null) lastSeq = id;
            if (data && typeof data === "object") addEvent({ ...data, type: data.type || type });
            if (TERMINAL_EVENTS.has(type)) sawTerminal = true;
            streaming = true;
            scheduleLoad();
          });
        } catch (err) {
          if (!view.alive || err.name === "AbortError") return;
          break; // fall back to polling
        }
        if (sawTerminal || finished) return;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      streaming = false;
      if (view.alive && events.length === 0) eventNote.textContent = "The event stream is unavailable; polling instead.";
      view.poll(async () => {
        if (!finished) await load();
      }, POLL_RUN_MS);
    }

    // Growing bars of running attempts.
    view.timers.push(
      setInterval(() => {
        if (detail && !finished && !document.hidden) {
          renderTimeline(sections.timeline, detail);
          renderSummary(sections.summary, detail);
        }
      }, 1000),
    );

    load().then(() => {
      if (view.alive && detail) follow();
    });
  }

  function summarizeEventData(data) {
    const parts = [];
    for (const [k, v] of Object.entries(data)) {
      if (parts.length >= 4) break;
      parts.push(`${k}=${isScalar(v) ? formatValue(v) : JSON.stringify(v)}`);
    }
    const text = parts.join(" ");
    return text.length > 160 ? `${text.slice(0, 157)}…` : text;
  }

  /** Read an SSE endpoint with fetch (so the Authorization header goes along). */
  async function readSse(url, signal, onEvent) {
    const resp = await api(url, { raw: true, signal, headers: { Accept: "text/event-stream" } });
    if (!resp.body) throw new Error("streaming is not supported by this browser");
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      // Normalise line ends, keeping a trailing "\r" whose "\n" may come in the next chunk.
      const tail = buffer.endsWith("\r") ? "\r" : "";
      buffer = buffer.slice(0, buffer.length - tail.length).replace(/\r\n?/g, "\n") + tail;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let type = "message";
        let id = null;
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "data") data.push(val);
          else if (field === "event") type = val;
          else if (field === "id") id = val;
        }
        if (data.length === 0) continue;
        let parsed;
        try {
          parsed = JSON.parse(data.join("\n"));
        } catch {
          parsed = { data: data.join("\n") };
        }
        onEvent(type, parsed, id);
      }
    }
  }

  function renderSummary(section, d) {
    const facts = [
      ["Experiment", d.experiment_id ? h("a", { href: runsHash({ experiment: d.experiment_id }) }, d.experiment_id) : "—"],
      ...(d.sweep_id ? [["Sweep", h("a", { href: `#/sweeps/${encodeURIComponent(d.sweep_id)}`, id: "run-sweep-link" }, d.sweep_id)]] : []),
      ["Status", d.status],
      ["Started", timeCell(d.started_at)],
      ["Finished", timeCell(d.finished_at)],
      ["Duration", formatDuration(elapsed(d))],
      ["Stages", String((d.stages || []).length)],
    ];
    if (d.experiment && d.experiment.name) facts.splice(1, 0, ["Name", d.experiment.name]);
    section.replaceChildren(
      h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", null, h("dt", null, k), h("dd", null, v)))),
      d.experiment && d.experiment.description ? h("p", { class: "muted" }, d.experiment.description) : "",
      d.failure
        ? h("div", { class: "alert", role: "alert" },
          h("strong", null, `Failed${d.failure.stage ? ` in stage ${d.failure.stage}` : ""}`),
          d.failure.attempts ? ` after ${d.failure.attempts} attempt(s)` : "",
          d.failure.reason_type ? h("span", { class: "muted" }, ` (${d.failure.reason_type})`) : "",
          d.failure.message ? h("pre", null, d.failure.message) : "")
        : "",
    );
  }

  // --- timeline ------------------------------------------------------------------------

  function niceStep(span, target = 6) {
    const raw = span / target;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
  }

  function axisLabel(seconds, step) {
    if (step < 1) {
      const ms = seconds * 1000;
      return `${Number(ms.toPrecision(6))} ms`;
    }
    if (step < 60) return `${Number(seconds.toPrecision(6))} s`;
    return `${Number((seconds / 60).toPrecision(4))} min`;
  }

  function renderTimeline(section, d) {
    const stages = Array.isArray(d.stages) ? d.stages : [];
    const heading = h("h2", { id: "timeline-h" }, "Stage timeline");
    if (stages.length === 0) {
      section.replaceChildren(heading, h("p", { class: "muted" }, "No stages recorded yet."));
      return;
    }
    const attempts = stages.flatMap((st) => (st.attempts || []).map((a) => ({ ...a, stage: st })));
    const starts = attempts.map((a) => parseTime(a.started_at)).filter((t) => t !== null);
    const now = Date.now();
    const t0 = parseTime(d.started_at) ?? (starts.length ? Math.min(...starts) : now);
    const ends = attempts.map((a) => {
      const start = parseTime(a.started_at);
      const end = parseTime(a.finished_at);
      if (end !== null) return end;
      if (start !== null && typeof a.duration === "number") return start + a.duration * 1000;
      return TERMINAL.has(d.status) ? start ?? t0 : now;
    });
    const t1 = Math.max(parseTime(d.finished_at) ?? 0, ...ends, t0 + 1);
    const span = (t1 - t0) / 1000;

    const W = 960;
    const labelW = 190;
    const rightPad = 24;
    const rowH = 30;
    const top = 8;
    const axisH = 26;
    const plotW = W - labelW - rightPad;
    const H = top + stages.length * rowH + axisH;
    const x = (ms) => labelW + ((ms - t0) / 1000 / span) * plotW;

    const chart = svg("svg", {
      class: "chart timeline",
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-labelledby": "timeline-title",
    });
    chart.append(
      svg("title", { id: "timeline-title" }, `Timeline of ${stages.length} stages over ${formatDuration(span)}; details in the table below`),
      svg("defs", null,
        svg("pattern", { id: "tl-hatch", width: 8, height: 8, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
          svg("line", { class: "hatch-line", x1: 0, y1: 0, x2: 0, y2: 8 }))),
    );

    stages.forEach((st, row) => {
      if (row % 2 === 0) chart.append(svg("rect", { class: "lane", x: 0, y: top + row * rowH, width: W, height: rowH }));
    });
    const step = niceStep(span);
    for (let t = 0; t <= span + 1e-9; t += step) {
      const px = labelW + (t / span) * plotW;
      chart.append(
        svg("line", { class: "grid", x1: px, x2: px, y1: top, y2: top + stages.length * rowH }),
        svg("text", { class: "axis", x: px, y: H - 8, "text-anchor": "middle" }, axisLabel(t, step)),
      );
    }
    chart.append(svg("line", { class: "axis-line", x1: labelW, x2: W - rightPad, y1: top + stages.length * rowH, y2: top + stages.length * rowH }));

    stages.forEach((st, row) => {
      const y = top + row * rowH;
      const label = st.name.length > 24 ? `${st.name.slice(0, 23)}…` : st.name;
      chart.append(svg("text", { x: 8, y: y + rowH / 2 + 4 }, svg("title", null, st.name), label));
      const list = st.attempts || [];
      if (list.length === 0) {
        chart.append(svg("text", { class: "axis", x: labelW + 6, y: y + rowH / 2 + 4 }, st.status || "pending"));
        return;
      }
      for (const a of list) {
        const start = parseTime(a.started_at) ?? t0;
        let end = parseTime(a.finished_at);
        if (end === null) end = typeof a.duration === "number" ? start + a.duration * 1000 : TERMINAL.has(d.status) ? start : now;
        const bx = x(start);
        const bw = Math.max(4, x(end) - bx);
        const status = String(a.status || "running").replace(/[^a-z_]/gi, "");
        const tip = `${st.name} · attempt ${a.attempt} · ${a.status} · ${formatDuration(elapsed(a))}${a.error ? ` · ${a.error}` : ""}`;
        const g = svg("g", { class: "attempt", "data-stage": st.name, "data-attempt": a.attempt, "data-status": status },
          svg("title", null, tip),
          svg("rect", { class: `bar bar-${status}${a.finished_at ? "" : " running-bar"}`, x: bx, y: y + 6, width: bw, height: rowH - 12, rx: 3 }));
        if (status === "timeout" || status === "failed") {
          g.append(svg("rect", { class: "bar-hatch", fill: "url(#tl-hatch)", x: bx, y: y + 6, width: bw, height: rowH - 12, rx: 3 }));
        }
        if (bw > 34) g.append(svg("text", { class: "in-bar", x: bx + 5, y: y + rowH / 2 + 4 }, `#${a.attempt}`));
        if (a.attempt > 1) g.append(svg("text", { class: "restart-mark", x: bx - 3, y: y + 5, "text-anchor": "middle" }, "↻"));
        chart.append(g);
      }
    });

    const legend = h("ul", { class: "legend", "aria-label": "Legend" },
      h("li", { class: "completed" }, "completed"),
      h("li", { class: "failed" }, "failed"),
      h("li", { class: "timeout" }, "timed out"),
      h("li", { class: "running" }, "running"),
      h("li", { class: "cancelled" }, "cancelled"),
      h("li", { class: "restart" }, "↻ restart (attempt > 1)"));

    const rows = [];
    for (const st of stages) {
      const list = st.attempts || [];
      if (list.length === 0) {
        rows.push(h("tr", { "data-stage": st.name },
          h("td", null, st.index), h("td", null, st.name), h("td", null, "—"), h("td", null, badge(st.status || "pending", "small")),
          h("td", null, "—"), h("td", { class: "num" }, "—"), h("td", null, "")));
        continue;
      }
      for (const a of list) {
        rows.push(h("tr", { "data-stage": st.name, "data-attempt": a.attempt },
          h("td", null, st.index),
          h("td", null, st.name),
          h("td", null, a.attempt > 1 ? `${a.attempt} (restart)` : String(a.attempt)),
          h("td", null, badge(a.status, "small")),
          h("td", null, timeCell(a.started_at)),
          h("td", { class: "num" }, formatDuration(elapsed(a))),
          h("td", { class: "wrap" }, a.error || "")));
      }
    }
    const table = h("table", { class: "attempts-table" },
      h("caption", { class: "sr-only" }, "Stage attempts"),
      h("thead", null, h("tr", null,
        ["#", "Stage", "Attempt", "Status", "Started", "Duration", "Error"].map((c) =>
          h("th", { scope: "col", class: c === "Duration" ? "num" : null }, c)))),
      h("tbody", null, rows));

    const open = section.querySelector("details") ? section.querySelector("details").open : false;
    section.replaceChildren(
      heading,
      chart,
      legend,
      h("details", { open }, h("summary", null, `Attempts (${attempts.length})`), h("div", { class: "table-wrap" }, table)),
    );
  }

  // --- metrics and bench ---------------------------------------------------------------

  /** Return [[metricKey, bench]] for every metric that looks like the bench stage's output. */
  function findBench(metrics) {
    const found = [];
    if (!metrics || typeof metrics !== "object") return found;
    for (const [key, value] of Object.entries(metrics)) {
      if (value && typeof value === "object" && !Array.isArray(value) && (value.group_stats || value.results)) {
        if (benchGroups(value).length) found.push([key, value]);
      }
    }
    return found;
  }

  /** Groups with a mean and (when known) a confidence interval. */
  function benchGroups(bench) {
    const out = [];
    const stats = bench.group_stats && typeof bench.group_stats === "object" ? bench.group_stats : null;
    if (stats && Object.keys(stats).length) {
      for (const [name, g] of Object.entries(stats)) {
        if (g && typeof g.mean === "number") out.push({ name, mean: g.mean, ci: g.confidence_interval, n: g.n, std: g.std });
      }
      return out;
    }
    const r = bench.results;
    if (r && typeof r.group === "string" && typeof r.mean === "number") {
      out.push({ name: r.group, mean: r.mean, ci: r.confidence_interval, n: r.n, std: r.std });
    }
    return out;
  }

  function renderMetrics(section, benchSection, metrics) {
    const benches = findBench(metrics);
    const benchKeys = new Set(benches.map(([k]) => k));
    const rest = {};
    for (const [k, v] of Object.entries(metrics || {})) if (!benchKeys.has(k)) rest[k] = v;
    const rows = flatten(rest);
    const heading = h("h2", { id: "metrics-h" }, "Metrics");
    if (rows.length === 0) {
      section.replaceChildren(heading, h("p", { class: "muted" }, benches.length ? "Only bench results (below)." : "No metrics recorded."));
    } else {
      section.replaceChildren(heading, metricsTable(rows, "Metrics, nested keys flattened"));
    }

    if (benches.length === 0) {
      benchSection.hidden = true;
      benchSection.replaceChildren();
      return;
    }
    benchSection.hidden = false;
    benchSection.replaceChildren(h("h2", { id: "bench-h" }, "Bench results"));
    for (const [key, bench] of benches) benchSection.append(renderBench(key, bench));
  }

  function metricsTable(rows, caption) {
    return h("div", { class: "table-wrap" },
      h("table", { class: "metrics-table" },
        h("caption", { class: "sr-only" }, caption),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Key"), h("th", { scope: "col" }, "Value"))),
        h("tbody", null, rows.map(([k, v]) =>
          h("tr", { "data-key": k },
            h("td", { class: "key" }, k),
            h("td", { class: typeof v === "number" ? "num wrap" : "wrap", title: typeof v === "number" ? String(v) : null }, formatValue(v)))))));
  }

  function renderBench(key, bench) {
    const groups = benchGroups(bench);
    const wrap = h("div", { class: "bench", "data-metric": key });
    if (key !== "bench") wrap.append(h("h3", null, key));
    wrap.append(benchChart(key, groups));

    const r = bench.results || {};
    const tests = r.test_results && typeof r.test_results === "object" ? Object.entries(r.test_results) : [];
    if (tests.length) {
      wrap.append(
        h("h3", null, "Tests",
          r.groups ? h("span", { class: "muted" }, ` · ${[].concat(r.groups).join(" vs ")}`) : "",
          typeof (bench.alpha ?? r.alpha) === "number" ? h("span", { class: "muted" }, ` · α = ${bench.alpha ?? r.alpha}`) : "",
          bench.correction && bench.correction !== "none" ? h("span", { class: "muted" }, ` · correction: ${bench.correction}`) : ""),
        h("div", { class: "table-wrap" },
          h("table", { class: "bench-tests" },
            h("caption", { class: "sr-only" }, "Statistical tests"),
            h("thead", null, h("tr", null,
              ["Test", "Statistic", "p", "Significant", "CI", "Effect size", "Interpretation"].map((c) =>
                h("th", { scope: "col", class: ["Statistic", "p"].includes(c) ? "num" : null }, c)))),
            h("tbody", null, tests.map(([name, t]) => {
              if (!t || typeof t !== "object") return h("tr", null, h("td", null, name), h("td", { colspan: 6 }, formatValue(t)));
              if (t.skipped) return h("tr", null, h("td", null, name), h("td", { colspan: 6, class: "muted" }, `skipped: ${t.skipped}`));
              const p = t.p_value_adjusted ?? t.p_value;
              return h("tr", null,
                h("td", null, t.test || name),
                h("td", { class: "num" }, formatValue(t.statistic)),
                h("td", { class: "num", title: t.p_value_adjusted !== undefined ? `raw p = ${t.p_value}` : null }, formatValue(p)),
                h("td", null, t.significant ? "yes" : "no"),
                h("td", null, Array.isArray(t.confidence_interval) ? `[${t.confidence_interval.map(formatValue).join(", ")}]` : "—"),
                h("td", null, effectText(t.effect_size)),
                h("td", { class: "wrap" }, t.interpretation || ""));
            })))),
      );
    }
    wrap.append(h("details", null, h("summary", null, "All bench figures"), metricsTable(flatten(bench), "All bench figures")));
    return wrap;
  }

  function effectText(effect) {
    if (effect === null || effect === undefined) return "—";
    if (typeof effect !== "object") return formatValue(effect);
    return Object.entries(effect).map(([k, v]) => `${k}: ${formatValue(v)}`).join(", ") || "—";
  }

  function benchChart(key, groups) {
    const lows = groups.map((g) => (Array.isArray(g.ci) && typeof g.ci[0] === "number" ? g.ci[0] : g.mean));
    const highs = groups.map((g) => (Array.isArray(g.ci) && typeof g.ci[1] === "number" ? g.ci[1] : g.mean));
    let lo = Math.min(...lows);
    let hi = Math.max(...highs);
    if (hi - lo < 1e-12) {
      lo -= Math.abs(lo) * 0.1 || 1;
      hi += Math.abs(hi) * 0.1 || 1;
    }
    const pad = (hi - lo) * 0.08;
    const step = niceStep(hi - lo + 2 * pad, 5);
    const dmin = Math.floor((lo - pad) / step) * step;
    const dmax = Math.ceil((hi + pad) / step) * step;

    const W = 960;
    const labelW = 170;
    const valueW = 230;
    const rowH = 38;
    const top = 10;
    const axisH = 28;
    const plotW = W - labelW - valueW;
    const H = top + groups.length * rowH + axisH;
    const x = (v) => labelW + ((v - dmin) / (dmax - dmin)) * plotW;
    const id = `bench-title-${key.replace(/[^a-z0-9_-]/gi, "")}`;

    const chart = svg("svg", { class: "chart bench-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": id });
    chart.append(svg("title", { id }, `Group means with confidence intervals: ${groups
      .map((g) => `${g.name} ${formatNumber(g.mean)}`).join(", ")}`));
    groups.forEach((g, row) => {
      if (row % 2 === 0) chart.append(svg("rect", { class: "lane", x: 0, y: top + row * rowH, width: W, height: rowH }));
    });
    const decimals = Math.max(0, -Math.floor(Math.log10(step)));
    for (let v = dmin; v <= dmax + step / 2; v += step) {
      const px = x(v);
      chart.append(
        svg("line", { class: "grid", x1: px, x2: px, y1: top, y2: top + groups.length * rowH }),
        svg("text", { class: "axis", x: px, y: H - 8, "text-anchor": "middle" }, v.toFixed(Math.min(decimals, 6))),
      );
    }
    chart.append(svg("line", { class: "axis-line", x1: labelW, x2: labelW + plotW, y1: top + groups.length * rowH, y2: top + groups.length * rowH }));
    groups.forEach((g, row) => {
      const cy = top + row * rowH + rowH / 2;
      const hasCi = Array.isArray(g.ci) && typeof g.ci[0] === "number" && typeof g.ci[1] === "number";
      const label = g.name.length > 22 ? `${g.name.slice(0, 21)}…` : g.name;
      const tip = `${g.name}: mean ${formatNumber(g.mean)}${hasCi ? `, CI [${formatNumber(g.ci[0])}, ${formatNumber(g.ci[1])}]` : ""}${g.n ? `, n = ${g.n}` : ""}`;
      const grp = svg("g", { class: "bench-group", "data-group": g.name }, svg("title", null, tip));
      grp.append(svg("text", { x: 8, y: cy + 4 }, label));
      if (hasCi) {
        grp.append(
          svg("line", { class: "whisker", x1: x(g.ci[0]), x2: x(g.ci[1]), y1: cy, y2: cy }),
          svg("line", { class: "whisker", x1: x(g.ci[0]), x2: x(g.ci[0]), y1: cy - 7, y2: cy + 7 }),
          svg("line", { class: "whisker", x1: x(g.ci[1]), x2: x(g.ci[1]), y1: cy - 7, y2: cy + 7 }),
        );
      }
      grp.append(svg("circle", { class: "mean-dot", cx: x(g.mean), cy, r: 6 }));
      grp.append(svg("text", { class: "value", x: labelW + plotW + 14, y: cy + 4 },
        `${formatNumber(g.mean)}${hasCi ? ` [${formatNumber(g.ci[0])}, ${formatNumber(g.ci[1])}]` : ""}${g.n ? `  n=${g.n}` : ""}`));
      chart.append(grp);
    });
    return h("figure", { class: "bench-figure" }, chart,
      h("figcaption", { class: "muted" }, "Group means (dots) with their confidence intervals (whiskers)."));
  }

  // --- artifacts, trace, definition ----------------------------------------------------

  function renderArtifacts(section, d) {
    const list = Array.isArray(d.artifacts) ? d.artifacts : [];
    const heading = h("h2", { id: "artifacts-h" }, "Artifacts");
    if (list.length === 0) {
      section.replaceChildren(heading, h("p", { class: "muted" }, "No artifacts recorded."));
      return;
    }
    section.replaceChildren(heading,
      h("ul", { class: "artifacts" }, list.map((a) => {
        const url = a.url || apiPath("runs", d.id, "artifacts", a.name);
        const meta = [a.type, a.format].filter(Boolean).join(", ");
        return h("li", null, authLink(url, a.name, { download: a.name }), meta ? h("span", { class: "muted" }, ` (${meta})`) : "");
      })));
  }

  function renderTrace(section, d, view) {
    const heading = h("h2", { id: "trace-h" }, "Decision trace");
    if (!d.has_trace) {
      section.replaceChildren(heading, h("p", { class: "muted" }, "This run recorded no decision trace."));
      return;
    }
    const htmlUrl = `${apiPath("runs", d.id, "trace")}?format=html`;
    const list = h("ol", { class: "trace-list", id: "trace-list" });
    const frameHolder = h("div");
    const details = h("details", { id: "trace-details" }, h("summary", null, "Show the full trace page here"), frameHolder);
    details.addEventListener("toggle", async () => {
      if (!details.open || frameHolder.childElementCount) return;
      const frame = h("iframe", { class: "trace-frame", title: `Decision trace of run ${d.id}`, sandbox: "", loading: "lazy" });
      if (getToken()) {
        // An iframe cannot send the Authorization header; load the page ourselves.
        try {
          const resp = await api(htmlUrl, { raw: true, signal: view.signal });
          frame.srcdoc = await resp.text();
        } catch (err) {
          frameHolder.replaceChildren(errorBox(err, "Could not load the trace") || "");
          return;
        }
      } else {
        frame.src = htmlUrl;
      }
      frameHolder.replaceChildren(frame);
    });
    section.replaceChildren(heading,
      h("p", null, authLink(htmlUrl, "Open the trace page"), h("span", { class: "muted" }, " (self-contained HTML)")),
      list, details);

    api(`${apiPath("runs", d.id, "trace")}?format=json`, { signal: view.signal })
      .then((chain) => {
        if (!view.alive) return;
        const evs = chain && Array.isArray(chain.events) ? chain.events : [];
        if (evs.length === 0) {
          list.replaceWith(h("p", { class: "muted" }, "The trace has no events yet."));
          return;
        }
        const t0 = parseTime(evs[0].timestamp);
        list.replaceChildren(...evs.map((ev) => {
          const t = parseTime(ev.timestamp);
          const offset = t !== null && t0 !== null ? `+${((t - t0) / 1000).toFixed(3)} s` : "";
          return h("li", { "data-type": ev.type },
            h("span", { class: "when" }, offset),
            h("span", { class: "type" }, ev.type),
            h("span", null,
              h("span", null, ev.decision || ""),
              typeof ev.confidence === "number" ? h("span", { class: "conf" }, `confidence ${ev.confidence.toFixed(2)}`) : "",
              ev.reasoning ? h("div", { class: "reason" }, ev.reasoning) : "",
              Array.isArray(ev.alternatives) && ev.alternatives.length
                ? h("div", { class: "reason" }, `Alternatives: ${ev.alternatives.join("; ")}`)
                : ""));
        }));
      })
      .catch((err) => {
        if (!view.alive || err.name === "AbortError") return;
        list.replaceWith(errorBox(err, "Could not load the trace") || "");
      });
  }

  function renderMore(section, d) {
    section.replaceChildren(h("h2", { id: "more-h" }, "Definition"));
    if (d.experiment) section.append(h("details", null, h("summary", null, "Experiment definition"), pretty(d.experiment)));
    else section.append(h("p", { class: "muted" }, "The definition is not stored."));
  }

  // --- outputs and provenance ----------------------------------------------------------
  //
  // Outputs are read a page at a time from GET /api/runs/{id}/outputs (search on the
  // server too), so a run with thousands of per-example outputs stays one short table.

  const OUTPUTS_PAGE = 25;

  function cellText(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "string") return value;
    if (typeof value === "number" || typeof value === "boolean") return formatValue(value);
    const text = JSON.stringify(value);
    return text.length > 160 ? `${text.slice(0, 159)}…` : text;
  }

  function outputCell(value) {
    // A rendered output (e.g. a report): its bodies, folded.
    if (value && typeof value === "object" && Array.isArray(value.rendered)) {
      const bodies = value.rendered.filter((r) => r && typeof r.body === "string");
      if (bodies.length) {
        return bodies.map((r) => h("details", { class: "output" },
          h("summary", null, `${value.name || "rendered"}${r.format ? ` (${r.format})` : ""}`), h("pre", null, r.body)));
      }
    }
    const text = cellText(value);
    const full = value !== null && typeof value === "object" ? JSON.stringify(value) : null;
    return h("span", { title: full && full !== text ? full : null }, text);
  }

  function renderOutputs(section, d, view) {
    const heading = h("h2", { id: "outputs-h" }, "Outputs");
    const count = Array.isArray(d.outputs) ? d.outputs.length : 0;
    if (count === 0) {
      section.replaceChildren(heading, h("p", { class: "muted" }, TERMINAL.has(d.status) ? "No outputs recorded." : "No outputs yet."));
      return;
    }
    let offset = 0;
    let query = "";
    let token = 0;
    const search = h("input", {
      id: "outputs-search",
      type: "search",
      name: "q",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "text in any field",
    });
    const status = h("p", { class: "muted", id: "outputs-status", role: "status", "aria-live": "polite" }, "Loading…");
    const holder = h("div", { class: "table-wrap", id: "outputs-table" });
    const prev = h("button", { type: "button", id: "outputs-prev", disabled: true }, "← Previous");
    const next = h("button", { type: "button", id: "outputs-next", disabled: true }, "Next →");
    prev.addEventListener("click", () => {
      offset = Math.max(0, offset - OUTPUTS_PAGE);
      load();
    });
    next.addEventListener("click", () => {
      offset += OUTPUTS_PAGE;
      load();
    });
    const form = h("form", {
      class: "filters",
      role: "search",
      "aria-label": "Search the outputs",
      onsubmit: (e) => {
        e.preventDefault();
        query = search.value.trim();
        offset = 0;
        load();
      },
    },
    h("div", { class: "field" }, h("label", { for: "outputs-search" }, "Search outputs"), search),
    h("button", { type: "submit", id: "outputs-go" }, "Search"));
    search.addEventListener("search", () => {
      if (!search.value && query) {
        query = "";
        offset = 0;
        load();
      }
    });
    section.replaceChildren(heading, form, status, holder, h("div", { class: "pager" }, prev, next));

    async function load() {
      const mine = ++token;
      const q = new URLSearchParams({ offset: String(offset), limit: String(OUTPUTS_PAGE) });
      if (query) q.set("q", query);
      try {
        const page = await api(`${apiPath("runs", d.id, "outputs")}?${q}`, { signal: view.signal });
        if (!view.alive || mine !== token) return;
        const rows = page.outputs || [];
        const fields = page.fields || [];
        const keyed = rows.length > 0 && rows.every((o) => o.value && typeof o.value === "object" && !Array.isArray(o.value)) && fields.length > 0;
        const headers = keyed ? fields : ["Value"];
        const table = h("table", { class: "outputs-table" },
          h("caption", { class: "sr-only" }, `Outputs ${page.offset + 1} to ${page.offset + rows.length} of ${page.matched}`),
          h("thead", null, h("tr", null,
            h("th", { scope: "col", class: "num" }, "#"),
            headers.map((f) => h("th", { scope: "col" }, f)))),
          h("tbody", null, rows.map((o) =>
            h("tr", { "data-index": o.index },
              h("th", { scope: "row", class: "num" }, String(o.index + 1)),
              keyed ? fields.map((f) => h("td", { class: typeof o.value[f] === "number" ? "num wrap" : "wrap" }, outputCell(o.value[f])))
                : h("td", { class: "wrap" }, outputCell(o.value))))));
        holder.replaceChildren(rows.length ? table : h("p", { class: "empty" }, `No output contains “${page.query}”.`));
        const span = rows.length ? `${page.offset + 1}–${page.offset + rows.length} of ${page.matched}` : "0";
        status.textContent = page.query
          ? `Showing ${span} outputs containing “${page.query}” (${page.total} in all).`
          : `Showing ${span} outputs.`;
        prev.disabled = page.offset === 0;
        next.disabled = page.offset + rows.length >= page.matched;
      } catch (err) {
        if (!view.alive || err.name === "AbortError") return;
        holder.replaceChildren(errorBox(err, "Could not load the outputs") || "");
      }
    }
    load();
  }

  function factsList(pairs) {
    return h("dl", { class: "facts" }, pairs.map(([k, v]) => h("div", null, h("dt", null, k), h("dd", null, v))));
  }

  function keyValueTable(caption, entries, keyName, valueName, cls) {
    return h("div", { class: "table-wrap" },
      h("table", { class: `metrics-table ${cls}` },
        h("caption", { class: "sr-only" }, caption),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, keyName), h("th", { scope: "col" }, valueName))),
        h("tbody", null, entries.map(([k, v]) =>
          h("tr", { "data-key": k }, h("td", { class: "key" }, k), h("td", { class: "wrap mono" }, cellText(v)))))));
  }

  /** What produced the run (GET /api/runs/{id} "provenance"); hidden when there is none. */
  function renderProvenance(section, d) {
    const p = d.provenance;
    if (!p || typeof p !== "object") {
      section.hidden = true;
      section.replaceChildren();
      return;
    }
    section.hidden = false;
    const git = p.git && typeof p.git === "object" ? p.git : null;
    const facts = [
      ["Python", p.python || "—"],
      ["crucible-actors", p.crucible_actors || "—"],
      ["Platform", p.platform || "—"],
      ["Host", p.host || "—"],
      ["Environment", p.environment
        ? h("code", { title: "the environment record shared by the runs that have the same one" }, String(p.environment).slice(0, 12))
        : "—"],
      ["Git commit", git
        ? h("span", null, h("code", { title: git.commit || "" }, String(git.commit || "").slice(0, 12) || "—"),
          git.dirty ? h("span", { class: "badge failed small", id: "git-dirty", title: "the working tree had uncommitted changes" }, "dirty") : h("span", { class: "muted" }, " clean"))
        : h("span", { class: "muted" }, "not in a git work tree")],
    ];
    const stages = Object.entries(p.stages && typeof p.stages === "object" ? p.stages : {});
    const inputs = Object.entries(p.inputs && typeof p.inputs === "object" ? p.inputs : {});
    const packages = Object.entries(p.packages && typeof p.packages === "object" ? p.packages : {}).sort(([a], [b]) => a.localeCompare(b));
    section.replaceChildren(
      h("h2", { id: "provenance-h" }, "Provenance"),
      factsList(facts),
      h("h3", null, "Stage code"),
      stages.length ? keyValueTable("Code fingerprint of each stage", stages, "Stage", "Fingerprint", "prov-stages") : h("p", { class: "muted" }, "No stage fingerprints."),
      h("h3", null, "Input data"),
      inputs.length ? keyValueTable("Content hash of each large input", inputs, "Input", "Digest", "prov-inputs") : h("p", { class: "muted" }, "No large inputs recorded."),
      h("details", { id: "prov-packages" },
        h("summary", null, `Packages (${packages.length})`),
        packages.length ? keyValueTable("Installed package versions", packages, "Package", "Version", "prov-packages") : h("p", { class: "muted" }, "None recorded.")),
    );
  }

  // --- submit --------------------------------------------------------------------------

  function newIdempotencyKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const MEDIA_TYPES = { auto: "text/plain", toml: "application/toml", json: "application/json", yaml: "application/yaml" };

  /**
   * Have the server read the definition with the CLI's loader (POST /api/experiments/check).
   * Returns { format, body }: the format it was read as and the body for POST /api/runs.
   * Throws ApiError with the loader's errors (field path and message) when it cannot.
   */
  async function checkDefinition(text, format, signal) {
    if (!text.trim()) throw new Error("The definition is empty.");
    const answer = await api("api/experiments/check", {
      method: "POST",
      text,
      contentType: MEDIA_TYPES[format] || MEDIA_TYPES.auto,
      signal,
    });
    return { format: answer.format, body: answer.submission };
  }

  /**
   * Send stage references by name where the server's registry serves that very reference.
   *
   * The service never imports code named by a request (422 ImportPathRejected), but
   * experiment files written for the CLI say e.g. name = "seed", stage = "example_stages:seed".
   * When GET /api/stages lists a stage with the same reference (under the same name, or
   * under the only name serving it when the entry has none) the reference is dropped, which
   * runs the same code. Anything else is sent unchanged, so the server explains the problem.
   * Returns one note per rewritten entry.
   */
  async function resolveStageRefs(experiment, signal) {
    const notes = [];
    const key = Array.isArray(experiment.pipeline) ? "pipeline" : Array.isArray(experiment.stages) ? "stages" : null;
    if (!key) return notes;
    const entries = experiment[key].filter((e) => e && typeof e === "object" && typeof e.stage === "string" && e.stage);
    if (entries.length === 0) return notes;
    let registered;
    try {
      const answer = await api("api/stages", { signal });
      registered = Array.isArray(answer && answer.stages) ? answer.stages : [];
    } catch (err) {
      if (err.name === "AbortError") throw err;
      return notes; // the submission itself will report the problem
    }
    for (const entry of entries) {
      const matches = registered.filter((st) => st.module === entry.stage);
      const same = entry.name ? matches.find((st) => st.name === entry.name) : matches.length === 1 ? matches[0] : null;
      if (!same) continue;
      notes.push(`${entry.name || same.name}: stage reference ${entry.stage} is the server's registered stage "${same.name}"; sent by name.`);
      if (!entry.name) entry.name = same.name;
      delete entry.stage;
    }
    return notes;
  }

  function viewSubmit(main) {
    const view = newView();
    document.title = "Submit experiment · crucible-actors";

    const textarea = h("textarea", {
      id: "definition",
      name: "definition",
      rows: 20,
      spellcheck: "false",
      autocomplete: "off",
      "aria-describedby": "definition-hint",
      placeholder: 'id = "my-experiment"\n\n[[pipeline]]\nname = "validate"\n',
    });
    textarea.value = sessionStorage.getItem(DRAFT_KEY) || "";
    textarea.addEventListener("input", () => sessionStorage.setItem(DRAFT_KEY, textarea.value));

    const fileInput = h("input", { id: "definition-file", type: "file", accept: ".toml,.json,.yaml,.yml,application/json,application/toml,application/yaml,text/plain" });
    const formatRadios = ["auto", "toml", "json", "yaml"].map((f) =>
      h("label", null, h("input", { type: "radio", name: "format", value: f, checked: f === "auto" }), " ",
        { auto: "Detect", toml: "TOML", json: "JSON", yaml: "YAML" }[f]));
    const runIdInput = h("input", { id: "run-id", name: "run_id", type: "text", autocomplete: "off", spellcheck: "false", "aria-describedby": "run-id-hint" });
    const assignsInput = h("textarea", { id: "assigns", name: "assigns", rows: 3, spellcheck: "false", "aria-describedby": "assigns-hint", placeholder: "{}" });
    const validateSelect = h("select", { id: "validate-options", name: "validate_options", "aria-describedby": "validate-hint" },
      h("option", { value: "off" }, "off"),
      h("option", { value: "warn" }, "warn"),
      h("option", { value: "error" }, "error"));
    const traceBox = h("input", { id: "record-trace", type: "checkbox", name: "trace", checked: true });
    const message = h("div", { id: "submit-message", role: "status", "aria-live": "polite" });
    const preview = h("div", { id: "submit-preview" });
    const submitButton = h("button", { type: "submit", class: "primary", id: "submit-run" }, "Submit run");
    const checkButton = h("button", { type: "button", id: "check-definition" }, "Check");

    fileInput.addEventListener("change", async () => {
      const file = fileInput.files && fileInput.files[0];
      if (!file) return;
      textarea.value = await file.text();
      sessionStorage.setItem(DRAFT_KEY, textarea.value);
      const ext = file.name.toLowerCase().split(".").pop();
      const format = { json: "json", toml: "toml", yaml: "yaml", yml: "yaml" }[ext] || "auto";
      const radio = main.querySelector(`input[name="format"][value="${format}"]`);
      if (radio) radio.checked = true;
      message.replaceChildren(h("div", { class: "alert info" }, `Loaded ${file.name} (${file.size} bytes).`));
    });

    function currentFormat() {
      const checked = main.querySelector('input[name="format"]:checked');
      return checked ? checked.value : "auto";
    }

    /** The form's fields, checked here; the definition is read by the server. */
    function formFields() {
      const fields = {};
      const runId = runIdInput.value.trim();
      if (runId) fields.run_id = runId;
      const assignsText = assignsInput.value.trim();
      if (assignsText) {
        let assigns;
        try {
          assigns = JSON.parse(assignsText);
        } catch (err) {
          throw new Error(`Assigns are not valid JSON: ${err.message}`);
        }
        if (!assigns || typeof assigns !== "object" || Array.isArray(assigns)) throw new Error("Assigns must be a JSON object.");
        fields.assigns = assigns;
      }
      if (validateSelect.value !== "off") fields.validate_options = validateSelect.value;
      if (!traceBox.checked) fields.trace = false;
      return fields;
    }

    /** Returns { format, body } for POST /api/runs: the server's reading plus the form's fields. */
    async function buildBody() {
      const fields = formFields();
      const { format, body } = await checkDefinition(textarea.value, currentFormat(), view.signal);
      return { format, body: Object.assign(body, fields) };
    }

    /** Show why the definition could not be used: the server's answer, or a local problem. */
    function showFailure(err, what) {
      if (err instanceof ApiError) message.replaceChildren(errorBox(err, what) || "");
      else showProblem(err.message);
    }

    function showProblem(text) {
      message.replaceChildren(h("div", { class: "alert", role: "alert" }, text));
    }

    checkButton.addEventListener("click", async () => {
      try {
        const { format, body } = await buildBody();
        const notes = await resolveStageRefs(body.experiment, view.signal);
        const stages = Array.isArray(body.experiment.pipeline) ? body.experiment.pipeline.length : 0;
        message.replaceChildren(h("div", { class: "alert info" },
          `Parsed as ${format.toUpperCase()}: experiment ${JSON.stringify(body.experiment.id ?? "(no id)")} with ${stages} stage(s).`,
          notes.length ? h("ul", null, notes.map((n) => h("li", null, n))) : ""));
        preview.replaceChildren(h("details", { open: true }, h("summary", null, "Request body (JSON)"), pretty(body)));
      } catch (err) {
        if (!view.alive || err.name === "AbortError") return;
        preview.replaceChildren();
        showFailure(err, "Could not check the definition");
      }
    });

    let idempotencyKey = null;
    let lastBodyKey = null;
    const form = h("form", {
      class: "form-grid",
      id: "submit-form",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        submitButton.disabled = true;
        message.replaceChildren(h("p", { class: "muted" }, "Submitting…"));
        let body;
        try {
          body = (await buildBody()).body;
        } catch (err) {
          submitButton.disabled = false;
          if (!view.alive || err.name === "AbortError") return;
          showFailure(err, "The server could not read the definition");
          textarea.focus();
          return;
        }
        try {
          await resolveStageRefs(body.experiment, view.signal);
        } catch (err) {
          submitButton.disabled = false;
          if (!view.alive || err.name === "AbortError") return;
          message.replaceChildren(errorBox(err, "Could not submit") || "");
          return;
        }
        // The same body keeps its key, so a double click or a retry cannot start two runs.
        const bodyKey = JSON.stringify(body);
        if (bodyKey !== lastBodyKey) {
          lastBodyKey = bodyKey;
          idempotencyKey = newIdempotencyKey();
        }
        try {
          const result = await api("api/runs", {
            method: "POST",
            body,
            headers: { "Idempotency-Key": idempotencyKey },
            signal: view.signal,
          });
          lastBodyKey = null;
          location.hash = `#/runs/${encodeURIComponent(result.run_id)}`;
        } catch (err) {
          if (!view.alive || err.name === "AbortError") return;
          if (err instanceof ApiError && err.status === 429) {
            showProblem(`The server is busy; try again${err.retryAfter ? ` in ${err.retryAfter} s` : " shortly"}.`);
          } else {
            if (err instanceof ApiError && err.status === 422) lastBodyKey = null; // a fixed definition gets a new key
            message.replaceChildren(errorBox(err, "The server rejected the experiment") || "");
          }
        } finally {
          submitButton.disabled = false;
        }
      },
    },
    h("div", null,
      h("label", { for: "definition" }, "Experiment definition (TOML, JSON or YAML)"),
      textarea,
      h("p", { class: "hint", id: "definition-hint" },
        "Paste an experiment file such as examples/core_pipeline.toml. The server reads it as crucible-actors run does. ",
        "The server runs registered stages only: a reference like ", h("code", null, "module:name"),
        " is sent by name when the server registers that very reference.")),
    h("div", { class: "row" },
      h("div", null, h("label", { for: "definition-file" }, "…or load a file"), fileInput),
      h("fieldset", null, h("legend", null, "Format"), formatRadios)),
    h("div", { class: "row" },
      h("div", null,
        h("label", { for: "run-id" }, "Run id (optional)"), runIdInput,
        h("p", { class: "hint", id: "run-id-hint" }, "Leave empty and the server picks one.")),
      h("div", null,
        h("label", { for: "assigns" }, "Assigns (optional JSON object)"), assignsInput,
        h("p", { class: "hint", id: "assigns-hint" }, "Initial values for the run's Context assigns."))),
    h("div", { class: "row" },
      h("div", null,
        h("label", { for: "validate-options" }, "Option validation"), validateSelect,
        h("p", { class: "hint", id: "validate-hint" }, "Check stage options against their schemas before each stage: off, warn, or fail the stage (error).")),
      h("div", { class: "check" }, traceBox, h("label", { for: "record-trace", class: "inline" }, "Record a decision trace"))),
    h("div", { class: "actions" }, submitButton, checkButton),
    message,
    preview);

    main.append(h("h1", null, "Submit an experiment"), h("section", { class: "panel" }, form));
    focusHeading(main);
  }

  // --- start ---------------------------------------------------------------------------

  function start() {
    updateTokenState();
    const forget = $("#forget-token");
    if (forget) {
      forget.addEventListener("click", () => {
        sessionStorage.removeItem(TOKEN_KEY);
        updateTokenState();
        route();
      });
    }
    window.addEventListener("hashchange", route);
    route();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
