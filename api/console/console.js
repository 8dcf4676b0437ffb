// codex-cloud console: plain JavaScript over the HTTP API. The API key lives in sessionStorage
// (this tab only); events arrive over EventSource with a short-lived events token, because
// EventSource cannot send the key header.
"use strict";

const KEY_STORAGE = "codex-cloud.api-key";
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out"]);
const $ = (id) => document.getElementById(id);

const state = { key: null, current: null, source: null, lastSeq: -1, refreshTimer: null };

// ---- HTTP ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(path, options = {}) {
  const headers = { "X-API-KEY": state.key, ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    throw new ApiError(0, { detail: "The API is unreachable. Is the stack running?" });
  }
  if (!response.ok) {
    let problem = {};
    try { problem = await response.json(); } catch (err) { /* not JSON */ }
    if (response.status === 429) {
      const wait = response.headers.get("Retry-After");
      problem.detail = `${problem.detail || "Rate limited"}${wait ? ` (retry in ${wait}s)` : ""}`;
    }
    throw new ApiError(response.status, problem);
  }
  return response;
}

const getJson = async (path, options) => (await api(path, options)).json();

// ---- small DOM helpers ---------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function badge(status) {
  return el("span", { class: `badge ${status}`, text: status.replace("_", " ") });
}

function showAlert(message) {
  const alert = $("alert");
  alert.textContent = message || "";
  alert.hidden = !message;
}

// ---- sign in -------------------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  await getJson("/v2/jobs?limit=1"); // proves the key before anything else is shown
  sessionStorage.setItem(KEY_STORAGE, key);
  $("who-key").textContent = `key ${key.split("_")[1] || ""}`;
  $("who").hidden = false;
  $("signin").hidden = true;
  $("app").hidden = false;
  await loadJobs();
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  closeStream();
  state.key = null;
  state.current = null;
  $("who").hidden = true;
  $("app").hidden = true;
  $("detail").hidden = true;
  $("signin").hidden = false;
  $("api-key").value = "";
  $("api-key").focus();
}

// ---- job list ------------------------------------------------------------------------------

async function loadJobs() {
  const data = await getJson("/v2/jobs?limit=30");
  const body = $("jobs-body");
  body.replaceChildren();
  for (const job of data.jobs) {
    const prompt = (job.request && job.request.prompt) || "";
    const open = el("button", {
      type: "button", class: "link", text: job.job_id.slice(0, 12),
      "aria-label": `Open job ${job.job_id}`, onclick: () => openJob(job.job_id, true),
    });
    const row = el("tr", { "data-job": job.job_id },
      el("td", {}, badge(job.status)), el("td", {}, open),
      el("td", { text: job.channel }), el("td", { class: "prompt", title: prompt, text: prompt }));
    if (job.job_id === state.current) row.classList.add("current");
    body.append(row);
  }
  $("jobs-empty").hidden = data.jobs.length > 0;
  clearTimeout(state.refreshTimer);
  if (data.jobs.some((j) => !TERMINAL.has(j.status))) {
    state.refreshTimer = setTimeout(() => loadJobs().catch(() => {}), 3000);
  }
}

// ---- submit --------------------------------------------------------------------------------

async function submitJob(event) {
  event.preventDefault();
  const prompt = $("prompt").value;
  const error = $("submit-error");
  error.textContent = "";
  if (!prompt.trim()) {
    error.textContent = "Enter a prompt.";
    $("prompt").setAttribute("aria-invalid", "true");
    $("prompt").focus();
    return;
  }
  $("prompt").removeAttribute("aria-invalid");
  const body = {
    prompt,
    priority: $("priority").value,
    timeout_ms: Math.round(Number($("timeout").value || 300) * 1000),
  };
  if ($("session").value.trim()) body.session_id = $("session").value.trim();
  const button = $("submit-button");
  button.disabled = true;
  try {
    const accepted = await getJson("/v2/exec/async", { method: "POST", body: JSON.stringify(body) });
    $("prompt").value = "";
    await openJob(accepted.job_id, true);
    loadJobs().catch(() => {});
  } catch (err) {
    const details = (err.problem && err.problem.errors) || [];
    error.textContent = [err.message, ...details.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`)].join(" — ");
  } finally {
    button.disabled = false;
  }
}

// ---- job detail and live events ------------------------------------------------------------

function closeStream() {
  if (state.source) state.source.close();
  state.source = null;
}

async function openJob(jobId, focus) {
  closeStream();
  state.current = jobId;
  state.lastSeq = -1;
  for (const row of document.querySelectorAll("#jobs-body tr")) {
    row.classList.toggle("current", row.dataset.job === jobId);
  }
  $("detail").hidden = false;
  $("events").replaceChildren();
  $("final").hidden = true;
  $("diff-block").hidden = true;
  $("artifacts-block").hidden = true;
  const job = await getJson(`/v2/jobs/${encodeURIComponent(jobId)}`);
  renderJob(job);
  if (focus) $("detail-title").focus();
  await follow(jobId);
}

function renderJob(job) {
  $("detail-title").textContent = `Job ${job.job_id}`;
  const status = $("detail-status");
  status.className = `badge ${job.status}`;
  status.textContent = job.status.replace("_", " ");
  status.setAttribute("role", "status");
  const meta = $("detail-meta");
  meta.replaceChildren();
  const rows = [["session", job.session_id], ["channel", job.channel], ["priority", job.priority],
    ["created", job.created_at]];
  if (job.execution_time_ms != null) rows.push(["duration", `${(job.execution_time_ms / 1000).toFixed(1)} s`]);
  if (job.error) rows.push(["error", job.error.message]);
  for (const [name, value] of rows) meta.append(el("dt", { text: name }), el("dd", { text: value || "—" }));
  $("cancel-job").hidden = TERMINAL.has(job.status);
  $("follow-up").hidden = !TERMINAL.has(job.status);
  $("follow-up").dataset.session = job.session_id;
}

async function follow(jobId) {
  const grant = await getJson(`/console/api/jobs/${encodeURIComponent(jobId)}/events-token`, { method: "POST" });
  if (state.current !== jobId) return;
  let url = grant.events_url;
  if (state.lastSeq >= 0) url += `&last_event_id=${state.lastSeq}`;
  const source = new EventSource(url);
  state.source = source;
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (typeof event.seq === "number") {
      if (event.seq <= state.lastSeq) return;
      state.lastSeq = event.seq;
    }
    appendEvent(event);
    if (isFinal(event)) {
      closeStream();
      finished(jobId).catch((err) => showAlert(err.message));
    }
  };
  source.onerror = () => {
    // The browser retries by itself while the token is valid; once it gives up (closed), mint
    // a new token and resume after the last event we saw.
    if (source.readyState === EventSource.CLOSED && state.source === source && state.current === jobId) {
      setTimeout(() => follow(jobId).catch((err) => showAlert(err.message)), 1000);
    }
  };
}

function isFinal(event) {
  return event.message_type === "complete" && event.data && TERMINAL.has(event.data.status);
}

function eventLines(event) {
  const d = event.data || {};
  const kind = d.event;
  if (kind === undefined && d.status) {
    const where = d.worker ? ` on ${d.worker}` : "";
    const reason = d.reason && d.status !== "succeeded" ? `: ${d.reason}` : "";
    return [[isFinal(event) ? (d.status === "succeeded" ? "ok" : "bad") : "dim", `${isFinal(event) ? "■" : "→"} ${d.status}${where}${reason}`]];
  }
  if (event.message_type === "error") return [["bad", `! ${d.message || d.code || "error"}`]];
  if (kind === "thread.started") return [["dim", `· thread ${d.thread_id}`]];
  if (kind === "turn.started") return [["dim", "· turn started"]];
  if (kind === "turn.completed") {
    const u = d.usage || {};
    return [["dim", `· turn completed (${u.input_tokens || 0} in / ${u.output_tokens || 0} out tokens)`]];
  }
  if (d.item_type === "command_execution") {
    if (kind === "item.started") return [["cmd", `$ ${d.command}`]];
    if (kind === "item.completed") {
      const lines = [[d.exit_code === 0 ? "ok" : "bad", `  exit ${d.exit_code}`]];
      const output = (d.output || "").trimEnd();
      if (output) output.split("\n").slice(0, 4).forEach((line) => lines.push(["dim", `  │ ${line}`]));
      return lines;
    }
  }
  if (d.item_type === "file_change" && kind === "item.completed") {
    const marks = { add: "+", update: "~", delete: "-" };
    // Codex reports absolute paths inside the job workspace; show them relative to it.
    const short = (path) => String(path).split("/workspace/").pop();
    return (d.changes || []).map((c) => ["file", `${marks[c.kind] || "~"} ${short(c.path)}`]);
  }
  if (d.item_type === "agent_message" && kind === "item.completed") return [["msg", `» ${d.text}`]];
  if (d.item_type === "reasoning" && kind === "item.completed") return [["dim", `… ${(d.text || "").split("\n")[0]}`]];
  return [];
}

function appendEvent(event) {
  const list = $("events");
  for (const [cls, text] of eventLines(event)) {
    list.append(el("li", { class: cls, text }));
  }
  list.scrollTop = list.scrollHeight;
  if (event.data && event.data.status && event.data.event === undefined) {
    const status = $("detail-status");
    status.className = `badge ${event.data.status}`;
    status.textContent = event.data.status.replace("_", " ");
  }
}

async function finished(jobId) {
  const job = await getJson(`/v2/jobs/${encodeURIComponent(jobId)}`);
  if (state.current !== jobId) return;
  renderJob(job);
  const message = job.result && job.result.final_message;
  $("final-message").textContent = message || "";
  $("final").hidden = !message;
  const listing = await getJson(`/v2/jobs/${encodeURIComponent(jobId)}/artifacts`);
  const list = $("artifacts");
  list.replaceChildren();
  for (const artifact of listing.artifacts) {
    const button = el("button", {
      type: "button", class: "link", text: `${artifact.name} (${artifact.size} bytes)`,
      onclick: () => download(jobId, artifact.name).catch((err) => showAlert(err.message)),
    });
    list.append(el("li", {}, button));
  }
  $("artifacts-block").hidden = listing.artifacts.length === 0;
  if (listing.artifacts.some((a) => a.name === "diff.patch")) {
    const patch = await (await api(artifactPath(jobId, "diff.patch"))).text();
    renderDiff(patch);
  }
  loadJobs().catch(() => {});
}

function artifactPath(jobId, name) {
  return `/v2/jobs/${encodeURIComponent(jobId)}/artifacts/${name.split("/").map(encodeURIComponent).join("/")}`;
}

function renderDiff(patch) {
  const pre = $("diff");
  pre.replaceChildren();
  for (const line of patch.replace(/\n$/, "").split("\n")) {
    let cls = "";
    if (line.startsWith("+") && !line.startsWith("+++")) cls = "add";
    else if (line.startsWith("-") && !line.startsWith("---")) cls = "del";
    else if (line.startsWith("@@")) cls = "hunk";
    pre.append(cls ? el("span", { class: cls, text: line }) : document.createTextNode(`${line}\n`));
  }
  $("diff-block").hidden = !patch.trim();
}

async function download(jobId, name) {
  // Links cannot carry the key header: fetch the bytes, then hand the browser a blob URL.
  const blob = await (await api(artifactPath(jobId, name))).blob();
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name.split("/").pop() });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---- wiring --------------------------------------------------------------------------------

function init() {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    $("signin-error").textContent = "";
    if (!key) {
      $("signin-error").textContent = "Enter your API key.";
      $("api-key").focus();
      return;
    }
    signIn(key).catch((err) => {
      state.key = null;
      $("signin-error").textContent = err.status === 401 ? "That key is not valid." : err.message;
      $("api-key").setAttribute("aria-invalid", "true");
      $("api-key").focus();
    });
  });
  $("sign-out").addEventListener("click", signOut);
  $("submit-form").addEventListener("submit", (event) => submitJob(event).catch((err) => showAlert(err.message)));
  $("refresh").addEventListener("click", () => loadJobs().catch((err) => showAlert(err.message)));
  $("cancel-job").addEventListener("click", async () => {
    try {
      await api(`/v2/jobs/${encodeURIComponent(state.current)}:cancel`, { method: "POST" });
    } catch (err) {
      showAlert(err.message);
    }
  });
  $("follow-up").addEventListener("click", () => {
    $("session").value = $("follow-up").dataset.session || "";
    $("prompt").focus();
  });
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) {
    signIn(saved).catch(() => signOut());
  } else {
    $("signin").hidden = false;
    $("api-key").focus();
  }
}

document.addEventListener("DOMContentLoaded", init);
