// prefpipe annotate: the annotator's page. Talks only to the JSON API. Signing in trades the
// annotator's token for a session token (POST /api/login); only the session is kept, in this tab's
// sessionStorage, and signing out revokes it on the server (POST /api/logout).
// Responses arrive as server-rendered, escaped HTML (markdown-it, raw HTML off); everything else is
// written with textContent. The page's Content-Security-Policy forbids inline script as well.
// An account with the admin role sees the admin view (admin.js) instead of tasks.
"use strict";

(function () {
  const SCALE = ["A>>B", "A>B", "A=B", "B>A", "B>>A"];
  const TOKEN_KEY = "prefpipe.token";
  const $ = (id) => document.getElementById(id);
  const state = { token: sessionStorage.getItem(TOKEN_KEY), task: null, label: null, busy: false };
  const admin = window.PrefpipeAdmin(api, $);

  function show(view) {
    for (const id of ["login-view", "message-view", "task-view", "admin-view"]) $(id).hidden = id !== view;
    $("logout").hidden = view === "login-view";
  }

  function forget(reason) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.task = null;
    $("progress").textContent = "";
    $("login-error").textContent = reason || "";
    show("login-view");
    $("token").focus();
  }

  async function api(path, options = {}) {
    const headers = Object.assign({ Authorization: "Bearer " + state.token }, options.headers || {});
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status === 401) {
      const body = await response.json().catch(() => null);
      forget("Signed out: " + (detailText(body) || "that token was not accepted") + ".");
      throw new Error("unauthorized");
    }
    return response;
  }

  async function signOut() {
    // Revoke the session on the server first; forget it here whatever the answer.
    try {
      if (state.token) await fetch("/api/logout", { method: "POST", headers: { Authorization: "Bearer " + state.token } });
    } catch (err) {
      /* offline: the session still expires on its own */
    }
    forget("");
  }

  function detailText(body) {
    if (!body || body.detail === undefined) return "";
    if (typeof body.detail === "string") return body.detail;
    return body.detail.map((d) => (d.loc || []).slice(1).join(".") + ": " + d.msg).join("; ");
  }

  async function refreshProgress() {
    const response = await api("/api/me");
    if (!response.ok) return null;
    const me = await response.json();
    $("progress").textContent = me.role === "admin" ? me.name + " · admin" :
      me.name + " · answered " + me.answered + " · skipped " + me.skipped +
      (me.flagged ? " · paused for review" : "");
    return me;
  }

  async function start() {
    // An admin's account does not label: it gets the admin view; everyone else their next task.
    const me = await refreshProgress();
    if (me && me.role === "admin") {
      show("admin-view");
      await admin.load();
    } else {
      await loadNext();
    }
  }

  function message(text) {
    state.task = null;
    $("message").textContent = text;
    show("message-view");
  }

  function setHtml(el, html, text) {
    // `html` is produced by the server's safe renderer; fall back to plain text if it is absent.
    if (typeof html === "string") el.innerHTML = html;
    else el.textContent = text;
  }

  function scoreSelect(dimension, side, scale) {
    const select = document.createElement("select");
    select.dataset.dimension = dimension;
    select.dataset.side = side;
    select.setAttribute("aria-label", dimension + " score for " + side);
    const blank = document.createElement("option");
    blank.value = "";
    blank.textContent = "–";
    select.appendChild(blank);
    for (let v = scale[0]; v <= scale[1]; v++) {
      const option = document.createElement("option");
      option.value = String(v);
      option.textContent = String(v);
      select.appendChild(option);
    }
    select.addEventListener("change", () => select.blur()); // give keys 1-5 back to the labels
    return select;
  }

  function renderRubric(rubric) {
    const body = $("rubric-body");
    body.replaceChildren();
    for (const dim of rubric) {
      const row = document.createElement("tr");
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = dim.name;
      name.title = dim.description || "";
      row.appendChild(name);
      for (const side of ["A", "B"]) {
        const cell = document.createElement("td");
        cell.appendChild(scoreSelect(dim.name, side, dim.scale || [1, 5]));
        row.appendChild(cell);
      }
      body.appendChild(row);
    }
  }

  function choose(label) {
    state.label = label;
    for (const button of document.querySelectorAll("#labels button")) {
      button.setAttribute("aria-checked", String(button.dataset.label === label));
    }
    $("submit").disabled = label === null;
  }

  function renderTask(task) {
    state.task = task;
    const rendered = task.rendered || {};
    setHtml($("prompt"), rendered.prompt, task.prompt);
    setHtml($("response-a"), rendered.response_a, task.response_a);
    setHtml($("response-b"), rendered.response_b, task.response_b);
    $("guideline-version").textContent = task.guideline_version;
    renderRubric(task.rubric || []);
    $("task-error").textContent = "";
    $("skip").open = false;
    $("skip-note").value = "";
    choose(null);
    show("task-view");
    document.activeElement && document.activeElement.blur();
    window.scrollTo(0, 0);
  }

  async function loadNext() {
    const response = await api("/api/tasks/next?render=html");
    if (response.status === 204) return message("Nothing left to label for now. Thank you!");
    const body = await response.json().catch(() => null);
    if (response.status === 403) {
      return message(body && body.flagged ? "Your account is paused while an admin reviews it." : detailText(body));
    }
    if (!response.ok) return message("Could not load a task: " + detailText(body));
    renderTask(body);
  }

  function dimensions() {
    const out = {};
    for (const select of document.querySelectorAll("#rubric-body select")) {
      if (select.value === "") continue;
      const dim = select.dataset.dimension;
      out[dim] = out[dim] || {};
      out[dim][select.dataset.side] = Number(select.value);
    }
    return out;
  }

  async function act(path, payload) {
    if (state.busy || !state.task) return;
    state.busy = true;
    try {
      const response = await api("/api/tasks/" + encodeURIComponent(state.task.task_id) + path, {
        method: "POST",
        body: JSON.stringify(payload),
      });
      if (response.ok || response.status === 409 || response.status === 404) {
        await loadNext();
        await refreshProgress();
      } else {
        $("task-error").textContent = detailText(await response.json().catch(() => null)) || "Not saved.";
      }
    } catch (err) {
      if (String(err.message) !== "unauthorized") $("task-error").textContent = "Not saved: " + err.message;
    } finally {
      state.busy = false;
    }
  }

  function submit() {
    if (state.label !== null) act("/annotations", { label: state.label, dimensions: dimensions() });
  }

  function skip() {
    const note = $("skip-note").value.trim();
    act("/skip", { reason: $("skip-reason").value + (note ? ": " + note : "") });
  }

  document.addEventListener("keydown", (event) => {
    if ($("task-view").hidden || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
    const index = "12345".indexOf(event.key);
    if (event.key.length === 1 && index >= 0) {
      choose(SCALE[index]);
      event.preventDefault();
    } else if (event.key === "Enter") {
      submit();
      event.preventDefault();
    }
  });

  for (const button of document.querySelectorAll("#labels button")) {
    button.addEventListener("click", () => choose(button.dataset.label));
  }
  $("submit").addEventListener("click", submit);
  $("skip-button").addEventListener("click", skip);
  $("retry").addEventListener("click", () => loadNext().catch(() => {}));
  $("logout").addEventListener("click", () => signOut());

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    $("token").value = "";
    try {
      const response = await api("/api/login", { method: "POST" });
      if (!response.ok) return forget("Sign-in failed: " + detailText(await response.json().catch(() => null)));
      state.token = (await response.json()).token;
      sessionStorage.setItem(TOKEN_KEY, state.token);
      await start();
    } catch (err) {
      /* forget() already showed why */
    }
  });

  if (state.token) {
    start().catch(() => {});
  } else {
    show("login-view");
  }
})();
