// The jobs page: every job of the server (or cluster), live from {Root}/jobs/changes, and its actions.
// Nothing received is ever parsed as HTML: every value reaches the page through textContent or an attribute.
"use strict";

const ROOT = location.pathname.replace(/\/ui\/[^/]*$/, "");
const STATES = ["Running", "Pending", "Retry", "Paused", "Failure", "Success"];
const ACTIONS = {  // what each state allows, as the core's jobs registry (README, Jobs)
  Pending: ["pause", "cancel"], Running: ["pause", "cancel"], Paused: ["resume", "cancel"],
  Retry: ["resubmit", "pause", "cancel"], Failure: ["resubmit", "delete"], Success: ["delete"],
};
const POLL_SECONDS = 25;  // one long-poll of the change feed; the server bounds it (MaxWaitSeconds)
const FETCHES_AT_ONCE = 4;

const jobs = new Map();  // id -> the job's JSON as last known
const rows = new Map();  // id -> its <tr>
const selected = new Set();
const dirty = new Set();  // ids whose row must be drawn again
let shownOrder = [];
let openJob = null;
let renderTimer = null;

const $ = (selector) => document.querySelector(selector);

// ---- talking to the server ------------------------------------------------------------------------

class Refused extends Error {
  constructor(status, text) { super(text); this.status = status; }
}

async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.body = typeof body === "string" ? body : JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const answer = await fetch(ROOT + path, options);
  const type = answer.headers.get("Content-Type") || "";
  if (!answer.ok) {
    let text = answer.status + " " + answer.statusText;
    try {
      const error = await answer.json();  // the core's error body
      text = answer.status + " " + (error.HttpError || answer.statusText) + ": " +
             (error.Details || error.Message || "");
    } catch (ignored) { /* not JSON: the status says it */ }
    throw new Refused(answer.status, text);
  }
  return type.startsWith("application/json") ? answer.json() : answer.text();
}

function say(text) { $("#message").textContent = text; }

function setLive(state) {
  if (document.body.dataset.live === state) return;  // an attribute of body set again restyles the whole page
  document.body.dataset.live = state;
  $("#live").textContent = state;
}

// ---- the jobs --------------------------------------------------------------------------------------

const waiting = [];  // ids whose whole JSON is wanted
const asked = new Set();  // queued
const reading = new Set();  // being read
const again = new Set();  // wanted again once the read under way ends (a change came meanwhile)
const versions = new Map();  // id -> changes applied from the feed, to tell an answer older than them
let fetching = 0;

function wantJob(id) {
  if (reading.has(id)) { again.add(id); return; }
  if (asked.has(id)) return;
  asked.add(id);
  waiting.push(id);
  pump();
}

function pump() {
  while (fetching < FETCHES_AT_ONCE && waiting.length) {
    const id = waiting.shift();
    asked.delete(id);
    reading.add(id);
    fetching++;
    const seen = versions.get(id) || 0;
    api("GET", "/jobs/" + encodeURIComponent(id))
      .then((job) => {
        if (gone.has(id)) return;  // deleted meanwhile
        const known = jobs.get(id);
        if (known && (versions.get(id) || 0) !== seen) {
          // The feed moved it while this was read: its state and progress are newer than the answer's.
          job.State = known.State;
          job.Progress = known.Progress;
        }
        jobs.set(id, job);
        changed(id);
      })
      .catch((error) => { if (error.status === 404) forget(id); })
      .finally(() => {
        fetching--;
        reading.delete(id);
        if (again.delete(id)) wantJob(id);
        pump();
      });
  }
}

const gone = new Set();  // deleted: an answer about them read before that is dropped
const GONE_KEPT = 5000;  // the newest deletions remembered, so that a page open for days stays small

function forget(id) {
  jobs.delete(id);
  selected.delete(id);
  versions.delete(id);
  gone.add(id);
  if (gone.size > GONE_KEPT) gone.delete(gone.values().next().value);
  changed(id);
}

function changed(id) {
  dirty.add(id);
  if (renderTimer === null) renderTimer = setTimeout(render, 100);  // changes batched, one drawing
}

function applyChange(change) {
  const id = change.ID;
  versions.set(id, (versions.get(id) || 0) + 1);
  if (change.State === "Deleted") { forget(id); return; }
  gone.delete(id);
  const known = jobs.get(id);
  if (known === undefined) {
    jobs.set(id, { ID: id, Type: change.Type, State: change.State, Progress: change.Progress, Replica: change.Replica });
    wantJob(id);
  } else {
    const before = known.State;
    known.State = change.State;
    known.Progress = change.Progress;
    if (change.Replica !== undefined) known.Replica = change.Replica;
    // What the feed does not carry (an error, the next attempt) is read when the job shows it, or is open.
    if ((before !== change.State && (change.State === "Failure" || change.State === "Retry")) || id === openJob) {
      wantJob(id);
    }
  }
  changed(id);
}

async function follow() {
  let last;
  for (;;) {
    try {
      // A `since` beyond the newest change answers the newest number: start from now, then list.
      last = (await api("GET", "/jobs/changes?since=9007199254740991&timeout=0")).Last;
      const all = await api("GET", "/jobs?expand");
      for (const job of all) { jobs.set(job.ID, job); changed(job.ID); }
      break;
    } catch (error) {
      if (stopIfDenied(error)) return;
      setLive("offline");
      say("The jobs cannot be read: " + error.message);
      await pause(2000);
    }
  }
  setLive("live");
  for (;;) {
    try {
      const feed = await api("GET", "/jobs/changes?since=" + last + "&timeout=" + POLL_SECONDS);
      setLive("live");
      for (const change of feed.Changes) applyChange(change);
      if (feed.Last < last) {  // the server restarted: its numbering too
        last = feed.Last;
        (await api("GET", "/jobs?expand")).forEach((job) => { jobs.set(job.ID, job); changed(job.ID); });
      }
      last = feed.Last;
    } catch (error) {
      if (stopIfDenied(error)) return;
      setLive("offline");
      await pause(2000);
    }
  }
}

function stopIfDenied(error) {
  if (error.status !== 401 && error.status !== 403) return false;
  setLive("denied");
  say("You may not see the jobs here (" + error.message + ")");
  jobs.clear();
  rows.forEach((row) => row.remove());
  rows.clear();
  return true;
}

function pause(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

// ---- drawing ---------------------------------------------------------------------------------------

function cell(row, name) { return row.querySelector("td." + name); }

function setText(element, text) {
  const value = text === undefined || text === null ? "" : String(text);
  if (element.textContent !== value) element.textContent = value;
}

function newRow(id) {
  const row = document.createElement("tr");
  row.dataset.id = id;
  row.tabIndex = 0;
  for (const name of ["select", "type", "state", "progress", "priority", "created", "replica", "error"]) {
    const td = document.createElement("td");
    td.className = name;
    row.appendChild(td);
  }
  const box = document.createElement("input");
  box.type = "checkbox";
  box.setAttribute("aria-label", "Select job " + id);
  box.addEventListener("click", (event) => {
    event.stopPropagation();
    if (box.checked) selected.add(id); else selected.delete(id);
  });
  cell(row, "select").appendChild(box);
  const bar = document.createElement("progress");
  bar.max = 100;
  cell(row, "progress").appendChild(bar);
  row.addEventListener("click", () => openDetails(id));
  row.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); openDetails(id); }
  });
  return row;
}

function drawRow(row, job) {
  if (row.dataset.state !== job.State) row.dataset.state = job.State;
  setText(cell(row, "type"), job.Type);
  setText(cell(row, "state"), job.State);
  const bar = cell(row, "progress").firstChild;
  // A new <progress> without a value is an indeterminate ("busy") bar: 0 is set too, once.
  if (!bar.hasAttribute("value") || bar.value !== (job.Progress || 0)) bar.value = job.Progress || 0;
  const percent = (job.Progress || 0) + "%";
  if (bar.title !== percent) bar.title = percent;
  setText(cell(row, "priority"), job.Priority);
  if (job.CreationTime && row.dataset.created !== job.CreationTime) row.dataset.created = job.CreationTime;
  setText(cell(row, "created"), when(job.CreationTime));
  setText(cell(row, "replica"), job.Replica);
  setText(cell(row, "error"), job.State === "Failure" ? job.ErrorDescription : "");
  cell(row, "select").firstChild.checked = selected.has(job.ID);
}

function when(stamp) {
  // Orthanc's 20261207T142720.414349 as 2026-12-07 14:27:20
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})/.exec(stamp || "");
  return match ? match[1] + "-" + match[2] + "-" + match[3] + " " + match[4] + ":" + match[5] + ":" + match[6]
               : (stamp || "");
}

let limit = 250;  // rows drawn at most (a longer history is counted, and shown on demand): layout stays cheap

function filtered() {
  const state = $("#filter-state").value;
  const type = $("#filter-type").value;
  const found = [];
  for (const job of jobs.values()) {
    if ((!state || job.State === state) && (!type || job.Type === type)) found.push(job);
  }
  return found.sort(order);
}

const RANK = Object.fromEntries(STATES.map((state, i) => [state, i]));

function order(a, b) {
  // Orthanc's timestamps compare as plain strings (one fixed format), far faster than localeCompare.
  const ta = a.CreationTime || "", tb = b.CreationTime || "";
  return (RANK[a.State] ?? 9) - (RANK[b.State] ?? 9) || (b.Priority || 0) - (a.Priority || 0) ||
         (ta < tb ? 1 : ta > tb ? -1 : 0);
}

function render() {
  renderTimer = null;
  for (const id of dirty) {
    const job = jobs.get(id);
    let row = rows.get(id);
    if (job === undefined) {
      if (row) { row.remove(); rows.delete(id); }
      if (id === openJob) closeDetails();
      continue;
    }
    if (!row) { row = newRow(id); rows.set(id, row); }
    drawRow(row, job);
    if (id === openJob) drawDetails(job);
  }
  dirty.clear();
  const matching = filtered();
  const visible = matching.slice(0, limit).map((job) => job.ID);
  const more = $("#more");
  more.hidden = matching.length <= limit;
  setText(more, "Show " + Math.min(250, matching.length - limit) + " more (" + matching.length + " in all)");
  if (visible.length !== shownOrder.length || visible.some((id, i) => id !== shownOrder[i])) {
    reorder($("#jobs tbody"), visible);
    shownOrder = visible;
  }
  drawCounts();
}

function reorder(body, visible) {
  // Rows leave or move only where they must: those already in order (the longest run of the current
  // rows whose order the new one keeps) stay, the others are moved in beside them.
  const keep = new Set(visible);
  for (const [id, row] of rows) if (!keep.has(id) && row.parentNode) row.remove();
  const position = new Map(visible.map((id, i) => [id, i]));
  const current = [...body.children].map((row) => position.get(row.dataset.id));
  const stay = new Set(steadiest(current).map((i) => visible[current[i]]));
  let anchor = null;
  for (let i = visible.length - 1; i >= 0; i--) {
    const row = rows.get(visible[i]);
    if (!stay.has(visible[i])) body.insertBefore(row, anchor);
    anchor = row;
  }
}

function steadiest(values) {
  // The indexes of a longest increasing subsequence of `values` (patience sorting, n log n).
  const tails = [], previous = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    let low = 0, high = tails.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (values[tails[middle]] < values[i]) low = middle + 1; else high = middle;
    }
    previous[i] = low > 0 ? tails[low - 1] : -1;
    tails[low] = i;
  }
  const found = [];
  for (let i = tails.length ? tails[tails.length - 1] : -1; i >= 0; i = previous[i]) found.push(i);
  return found.reverse();
}

function drawCounts() {
  const counts = Object.fromEntries(STATES.map((state) => [state, 0]));
  const types = new Set();
  for (const job of jobs.values()) {
    if (job.State in counts) counts[job.State]++;
    if (job.Type) types.add(job.Type);
  }
  for (const state of STATES) setText($('#counts li[data-state="' + state + '"] .count'), counts[state]);
  const select = $("#filter-type");
  const present = new Set([...select.options].map((option) => option.value));
  [...types].sort().forEach((type) => {
    if (!present.has(type)) select.appendChild(new Option(type, type));
  });
}

// ---- one job, and actions --------------------------------------------------------------------------

function openDetails(id) {
  openJob = id;
  $("#details").hidden = false;
  wantJob(id);
  const job = jobs.get(id);
  if (job) drawDetails(job);
}

function closeDetails() {
  openJob = null;
  $("#details").hidden = true;
}

function drawDetails(job) {
  setText($("#details-id"), job.ID);
  setText($("#details-json"), JSON.stringify(job, null, 2));
  setText($("#details-error"), job.State === "Failure" || job.State === "Retry"
    ? (job.ErrorDescription || "") + (job.ErrorDetails ? ": " + job.ErrorDetails : "") : "");
  setText($("#details-creator"), job.Content && job.Content.Creator ? "Created by " + job.Content.Creator : "");
  setText($("#details-retry"), job.Attempt !== undefined
    ? "Attempt " + job.Attempt + (job.NextAttempt ? ", next at " + job.NextAttempt : "") : "");
  const place = $("#details-actions");
  const wanted = ACTIONS[job.State] || [];
  const present = [...place.querySelectorAll("button")].map((button) => button.dataset.action);
  if (wanted.join() === present.join()) return;
  place.replaceChildren();
  for (const action of wanted) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = action;
    button.textContent = action;
    button.addEventListener("click", () => act(action, [job.ID]));
    place.appendChild(button);
  }
}

function request(action, id) {
  const path = "/jobs/" + encodeURIComponent(id);
  return action === "delete" ? api("DELETE", path) : api("POST", path + "/" + action, "");
}

async function act(action, ids, bulk = false) {
  let done = 0;
  const refusals = [];
  for (const id of ids) {
    try {
      await request(action, id);
      done++;
      if (action === "delete") forget(id); else wantJob(id);
    } catch (error) {
      refusals.push(error.message);
    }
  }
  if (!bulk) {
    say(refusals.length ? action + " refused: " + refusals[0] : action + ": done");
  } else {
    say(action + ": " + done + " done, " + refusals.length + " refused" +
        (refusals.length ? " (" + refusals[0] + ")" : ""));
  }
}

// ---- webhook deliveries ----------------------------------------------------------------------------

async function deliveries() {
  let endpoints;
  try {
    endpoints = await api("GET", "/webhooks");
  } catch (error) {
    return;  // refused, or webhooks off: the section stays hidden
  }
  if (!endpoints.length) return;
  $("#webhooks").hidden = false;
  const select = $("#webhook-endpoint");
  endpoints.forEach((endpoint) => select.appendChild(new Option(endpoint.Name, endpoint.Name)));
  $("#webhook-test").addEventListener("click", async () => {
    try {
      const result = await api("POST", "/webhooks/test", { Endpoint: select.value });
      say("test event to " + select.value + ": " + (result.Delivered ? "delivered" : "not delivered") +
          (result.Status ? " (HTTP " + result.Status + ")" : "") + (result.Error ? ": " + result.Error : ""));
    } catch (error) {
      say("test event refused: " + error.message);
    }
  });
  $("#deliveries-state").addEventListener("change", drawDeliveries);
  for (;;) {
    await drawDeliveries();
    await pause(2000);
  }
}

async function drawDeliveries() {
  const state = $("#deliveries-state").value;
  let answer;
  try {
    answer = await api("GET", "/webhooks/deliveries?limit=1000" + (state ? "&state=" + state : ""));
  } catch (error) {
    return;
  }
  const body = $("#deliveries tbody");
  const newest = answer.Deliveries.slice(-200).reverse();
  const keep = new Set(newest.map((delivery) => delivery.ID));
  [...body.children].forEach((row) => { if (!keep.has(row.dataset.id)) row.remove(); });
  newest.forEach((delivery, index) => {
    let row = body.querySelector('tr[data-id="' + CSS.escape(delivery.ID) + '"]');
    if (!row) {
      row = document.createElement("tr");
      row.dataset.id = delivery.ID;
      for (const name of ["event", "job", "endpoint", "state", "attempts", "last-error", "actions"]) {
        const td = document.createElement("td");
        td.className = name;
        row.appendChild(td);
      }
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.action = "redeliver";
      button.textContent = "redeliver";
      button.addEventListener("click", async () => {
        try {
          await api("POST", "/webhooks/deliveries/" + encodeURIComponent(delivery.ID) + "/redeliver", "");
          say("redeliver: done");
        } catch (error) {
          say("redeliver refused: " + error.message);
        }
        drawDeliveries();
      });
      row.querySelector("td.actions").appendChild(button);
    }
    setText(row.querySelector("td.event"), delivery.Event);
    setText(row.querySelector("td.job"), delivery.Job);
    setText(row.querySelector("td.endpoint"), delivery.Endpoint);
    setText(row.querySelector("td.state"), String(delivery.State || "").toLowerCase());
    setText(row.querySelector("td.attempts"), delivery.Attempts);
    setText(row.querySelector("td.last-error"), delivery.LastError ||
            (delivery.LastStatus ? "HTTP " + delivery.LastStatus : ""));
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
  });
}

// ---- headline figures ------------------------------------------------------------------------------

function sample(line) {
  // `name{label="value",...} number` of the Prometheus text format
  const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
  if (!match) return null;
  const labels = {};
  (match[3] || "").replace(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g, (all, name, value) => {
    labels[name] = value;
    return all;
  });
  return { name: match[1], labels, value: Number(match[4]) };
}

async function figures() {
  for (;;) {
    try {
      const text = await api("GET", "/metrics");
      const sums = { "jobs-running": 0, "jobs-failed": 0, "create-dicom-requests": 0, "create-dicom-errors": 0 };
      for (const line of text.split("\n")) {
        if (line.startsWith("#")) continue;
        const found = sample(line);
        if (!found) continue;
        if (found.name === "orthanc_jobs" && found.labels.state === "Running") sums["jobs-running"] += found.value;
        if (found.name === "orthanc_jobs" && found.labels.state === "Failure") sums["jobs-failed"] += found.value;
        if (found.name === "orthanc_create_dicom_requests_total") {
          sums["create-dicom-requests"] += found.value;
          if (Number(found.labels.status) >= 400) sums["create-dicom-errors"] += found.value;
        }
      }
      for (const [name, value] of Object.entries(sums)) setText($('[data-figure="' + name + '"]'), value);
    } catch (ignored) { /* refused or unreachable: the figures keep their last values */ }
    await pause(10000);
  }
}

// ---- wiring ----------------------------------------------------------------------------------------

function redrawAll() {
  jobs.forEach((job, id) => dirty.add(id));
  render();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#filter-state").addEventListener("change", redrawAll);
  $("#filter-type").addEventListener("change", redrawAll);
  $("#details-close").addEventListener("click", closeDetails);
  $("#more").addEventListener("click", () => { limit += 250; redrawAll(); });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeDetails(); });
  $("#select-all").addEventListener("change", (event) => {
    for (const id of shownOrder) {
      if (event.target.checked) selected.add(id); else selected.delete(id);
    }
    redrawAll();
  });
  $("#bulk").addEventListener("click", (event) => {
    const action = event.target.dataset && event.target.dataset.action;
    if (!action) return;
    const ids = shownOrder.filter((id) => selected.has(id));
    if (!ids.length) { say(action + ": no job selected"); return; }
    act(action, ids, true);
  });
  follow();
  deliveries();
  figures();
});
