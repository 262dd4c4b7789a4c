// prefpipe annotate: the admin view of the same page, shown instead of tasks to an account with the
// admin role. It reads /api/admin/batches and /api/admin/annotators (403 for anyone else) and
// lifts a gold flag with POST /api/admin/annotators/NAME/unflag. Every value is written with
// textContent or as an element's property, never as HTML.
"use strict";

window.PrefpipeAdmin = function (api, $) {
  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function percent(x) {
    return (100 * x).toFixed(1).replace(/\.0$/, "") + "%";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return (Math.round(seconds * 10) / 10) + " s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + Math.round(seconds - 60 * minutes) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function when(iso) {
    // "2027-01-15T08:00:00.000Z" -> "2027-01-15 08:00:00 UTC": the store's own time, no browser clock
    return iso ? iso.slice(0, 10) + " " + iso.slice(11, 19) + " UTC" : "–";
  }

  function labelsCell(row, batch) {
    const td = cell(row, "", "labels");
    const bar = document.createElement("progress");
    bar.max = Math.max(batch.labels_wanted, 1);
    bar.value = Math.min(batch.answered, bar.max);
    bar.setAttribute("aria-label", "labels answered of wanted");
    const text = document.createElement("span");
    text.textContent = batch.answered + " / " + batch.labels_wanted;
    td.append(bar, text);
  }

  function renderBatches(batches) {
    const body = $("admin-batches-body");
    body.replaceChildren();
    $("admin-batches-empty").hidden = batches.length > 0;
    for (const b of batches) {
      const row = document.createElement("tr");
      row.dataset.batch = b.batch_id;
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = b.batch_id;
      row.appendChild(name);
      cell(row, b.guideline_version, "version");
      cell(row, String(b.items), "num items");
      cell(row, String(b.complete), "num complete");
      cell(row, String(b.waiting), "num waiting" + (b.waiting ? " attention" : ""));
      labelsCell(row, b);
      cell(row, String(b.skipped), "num skipped");
      cell(row, String(b.in_flight), "num in-flight");
      cell(row, String(b.gold_items), "num gold-items");
      cell(row, b.gold_answers ? b.gold_correct + " / " + b.gold_answers : "–", "num gold-answers");
      body.appendChild(row);
    }
  }

  function flagCell(row, a) {
    const td = cell(row, "", "flag");
    if (!a.flagged) {
      td.textContent = "no";
      return;
    }
    const reason = document.createElement("span");
    reason.className = "flag-reason";
    reason.textContent = "flagged" + (a.flag_shown ? "" : " (not yet shown to them)") + (a.flag_reason ? ": " + a.flag_reason : "");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "unflag";
    button.textContent = "Unflag";
    button.addEventListener("click", () => unflag(a.name, button));
    td.append(reason, button);
  }

  function renderAnnotators(annotators) {
    const body = $("admin-annotators-body");
    body.replaceChildren();
    for (const a of annotators) {
      const row = document.createElement("tr");
      row.dataset.annotator = a.name;
      if (a.flagged) row.className = "flagged";
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = a.name;
      row.appendChild(name);
      cell(row, a.role + (a.disabled ? " (disabled)" : ""), "role");
      cell(row, String(a.answered), "num answered");
      cell(row, String(a.skipped), "num skipped");
      cell(row, a.gold_answers ? a.gold_correct + " / " + a.gold_answers : "–", "num gold");
      cell(row, a.gold_answers
        ? percent(a.gold_accuracy) + " (" + percent(a.gold_ci_low) + "–" + percent(a.gold_ci_high) + ")"
        : "–", "num accuracy");
      cell(row, duration(a.median_time_on_task_s), "num median-time");
      cell(row, when(a.last_seen_at), "last-seen");
      flagCell(row, a);
      body.appendChild(row);
    }
  }

  async function readJson(path) {
    const response = await api(path);
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error((body && typeof body.detail === "string" ? body.detail : "error " + response.status));
    return body;
  }

  async function load() {
    $("admin-error").textContent = "";
    try {
      const [batches, annotators] = await Promise.all([readJson("/api/admin/batches"), readJson("/api/admin/annotators")]);
      renderBatches(batches);
      renderAnnotators(annotators);
      $("admin-loaded").textContent = "Loaded " + new Date().toLocaleTimeString();
    } catch (err) {
      if (String(err.message) !== "unauthorized") $("admin-error").textContent = "Could not load: " + err.message;
    }
  }

  async function unflag(name, button) {
    button.disabled = true;
    try {
      const response = await api("/api/admin/annotators/" + encodeURIComponent(name) + "/unflag", { method: "POST" });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        $("admin-error").textContent = "Could not unflag " + name + ": " + ((body && body.detail) || response.status);
        button.disabled = false;
        return;
      }
      await load();
    } catch (err) {
      if (String(err.message) !== "unauthorized") $("admin-error").textContent = "Could not unflag " + name + ": " + err.message;
      button.disabled = false;
    }
  }

  $("admin-refresh").addEventListener("click", () => load());
  return { load };
};
