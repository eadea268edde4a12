"""The web console: one HTML page, served at ``/`` by httpd, that shows
every machine the server knows and changes what a machine boots next.

`PAGE` is the whole document: inline CSS and plain JavaScript, nothing
fetched from anywhere but the server that sent it (no framework, CDN or
font).  It reads ``GET /api/machines``, then follows ``GET /api/events``
(server-sent events, one Machine object per change); while the stream is
down, or with ``?poll`` in its address (a proxy that holds event streams
back), it polls ``/api/machines``.  Its actions (assign a job once, cancel
the job, boot locally) are ``POST /api/machines/<mac>/{assign,cancel,local}``
with ``Authorization: Bearer <token>``, the token typed once and kept in
the tab's sessionStorage; 401 and 403 are said on the page.

Text from machines and the site (names, jobs, log lines) goes in with
textContent or as an attribute value: the script never parses markup it
did not write (there is no innerHTML in it).  `CSP` is the
Content-Security-Policy to send with the page: only its own script and
style (by their hashes), connections only to the server itself, nothing
else from anywhere: a second wall behind the first.
"""

import base64
import hashlib
import json

STYLE = """
:root { --fg: #1d2330; --dim: #5b6475; --bg: #f6f7f9; --card: #fff; --line: #d9dde4;
  --ok: #1f8a4c; --bad: #c0392b; --warn: #b7791f; --run: #2f6fd0; color-scheme: light dark; }
@media (prefers-color-scheme: dark) { :root { --fg: #e4e7ec; --dim: #9aa3b2;
  --bg: #15181d; --card: #1e232b; --line: #343b46; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .5em 1em; align-items: center; padding: .6em 1em;
  background: var(--card); border-bottom: 1px solid var(--line); }
h1 { font-size: 1.15em; margin: 0; }
#live { font-size: .85em; padding: .1em .6em; border-radius: 1em; background: var(--line); }
#live.live, #live.poll, #live.down { color: #fff; background: var(--ok); }
#live.poll { background: var(--warn); } #live.down { background: var(--bad); }
#tokenform { margin-left: auto; display: flex; gap: .4em; align-items: center; flex-wrap: wrap; }
#tokenform input { width: 14em; max-width: 100%; }
input, select, button { font: inherit; } button { cursor: pointer; }
main { padding: .8em 1em; }
#msg { margin: 0 0 .8em; padding: .5em .8em; border-radius: 4px; border: 1px solid var(--line);
  background: var(--card); }
#msg.error { border-color: var(--bad); color: var(--bad); font-weight: 600; }
#msg.ok { border-color: var(--ok); color: var(--ok); }
#summary { margin: 0 0 .6em; color: var(--dim); }
#tablebox { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; background: var(--card);
  border: 1px solid var(--line); }
th, td { text-align: left; vertical-align: top; padding: .45em .6em;
  border-bottom: 1px solid var(--line); }
th { font-size: .8em; text-transform: uppercase; letter-spacing: .04em; color: var(--dim); }
.mac, pre, .mono { font-family: ui-monospace, monospace; font-size: .9em; }
.name { font-weight: 600; } .dim { color: var(--dim); font-size: .85em; }
.state { display: inline-block; padding: .05em .55em; border-radius: 1em; font-size: .85em;
  background: var(--line); }
.state-started, .state-assigned, .state-done, .state-local, .state-failed { color: #fff; }
.state-started { background: var(--run); } .state-assigned { background: var(--warn); }
.state-done, .state-local { background: var(--ok); } .state-failed { background: var(--bad); }
progress { width: 100%; max-width: 14em; height: .9em; }
.c-progress { min-width: 9em; }
.log summary { cursor: pointer; max-width: 14em; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
.log pre { margin: .3em 0 0; max-height: 16em; overflow: auto; white-space: pre-wrap;
  word-break: break-all; max-width: 40em; }
.actions { display: flex; flex-wrap: wrap; gap: .3em; }
.actions button, .seen, .state, .mac { white-space: nowrap; }
.actions select { max-width: 10em; }
#empty { padding: 1.5em; text-align: center; color: var(--dim); }
@media (max-width: 960px) {
  #tokenform { margin-left: 0; }
  table, tbody, tr, td { display: block; width: 100%; }
  thead { display: none; } table { border: 0; background: none; }
  tr { background: var(--card); border: 1px solid var(--line); border-radius: 6px;
    margin-bottom: .7em; padding: .3em 0; }
  td { border: 0; padding: .25em .8em; display: flex; gap: .6em; }
  td::before { content: attr(data-label); flex: 0 0 6.5em; color: var(--dim); font-size: .85em; }
  td > * { min-width: 0; }
  .log summary { max-width: 60vw; } .log pre { max-width: 80vw; }
}
"""

#: The table's columns, in order (cells are td.c-<name lower case>).
COLUMNS = ("Machine", "Seen", "Job", "State", "Progress", "Log", "Actions")

SCRIPT = r"""
"use strict";
(() => {
const TOKEN_KEY = "pxeconf.token", POLL_MS = 3000, RETRY_MS = 30000;
const STATES = ["unknown", "idle", "assigned", "started", "done", "failed", "cancelled", "local"];
const FIRMWARE = {"bios": "BIOS", "efi": "UEFI", "ipxe-bios": "iPXE, BIOS",
  "ipxe-efi": "iPXE, UEFI"};
const COLUMNS = __COLUMNS__;
const $ = (id) => document.getElementById(id);
const machines = new Map(), rows = new Map();
let jobs = [], stream = null, poller = null;
const forcePoll = new URLSearchParams(location.search).has("poll");

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
const put = (cell, ...nodes) => cell.replaceChildren(...nodes);

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0; n = Number(n) || 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(Math.round(n))) + " " + units[i];
}
function span(seconds) {
  seconds = Math.max(0, Math.round(Number(seconds) || 0));
  if (seconds < 60) return seconds + " s";
  if (seconds < 600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min";
  return Math.floor(seconds / 3600) + " h " + Math.floor(seconds % 3600 / 60) + " min";
}
function ago(unix) {
  return unix === null || unix === undefined ? "never" : span(Date.now() / 1000 - unix) + " ago";
}
function when(unix) {
  if (!unix) return "";
  const d = new Date(unix * 1000), two = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) +
    " " + two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
}

function say(text, kind) {
  const msg = $("msg"); msg.textContent = text; msg.className = kind || ""; msg.hidden = !text;
}
function setLive(kind, text) { const l = $("live"); l.className = kind; l.textContent = text; }

const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
function showToken() {
  $("tokenstate").textContent = token() ? "token set for this tab" : "no token";
  $("forget").hidden = !token();
}

function newRow(mac) {
  const tr = el("tr");
  tr.dataset.mac = mac;
  const cells = {};
  for (const name of COLUMNS) {
    const td = cells[name] = el("td", "c-" + name.toLowerCase());
    td.dataset.label = name;
    tr.append(td);
  }
  const box = el("div", "actions"), pick = el("select", "job");
  pick.setAttribute("aria-label", "job for " + mac);
  const assign = el("button", "assign", "Run once");
  const cancel = el("button", "cancel", "Cancel");
  const local = el("button", "local", "Local boot");
  assign.addEventListener("click", () =>
    act(mac, "assign", {job: pick.value, once: true}, assign));
  cancel.addEventListener("click", () => act(mac, "cancel", null, cancel));
  local.addEventListener("click", () => act(mac, "local", null, local));
  box.append(pick, assign, cancel, local);
  cells.Actions.append(box);
  // kept across updates (a click must not land on a node replaced under it)
  const log = el("details", "log"), tail = el("summary"), all = el("pre"),
    nolog = el("span", "dim", "—");
  log.append(tail, all);
  cells.Log.append(log, nolog);
  const row = {tr, cells, pick, assign, cancel, log, tail, all, nolog, jobs: null};
  rows.set(mac, row);
  return row;
}

function fillJobs(row) {
  const key = JSON.stringify(jobs);
  if (row.jobs === key) return;
  const keep = row.pick.value;
  row.pick.replaceChildren(...jobs.map((name) => {
    const o = el("option", null, name); o.value = name; return o; }));
  if (jobs.includes(keep)) row.pick.value = keep;
  row.pick.disabled = row.assign.disabled = !jobs.length;
  row.jobs = key;
}

function progressNodes(p, state) {
  if (!p) return [el("span", "dim", state === "started" ? "starting" : "—")];
  const pct = Number(p.percent ?? (p.total ? 100 * p.done / p.total : 0));
  const bar = el("progress");
  bar.max = 100;
  bar.value = Math.min(100, Math.max(0, pct));
  const parts = [(typeof p.task === "string" ? p.task + " " : "") + pct.toFixed(1) + " %"];
  if (p.total) parts.push(bytes(p.done) + " of " + bytes(p.total));
  if (p.rate) parts.push(bytes(p.rate) + "/s");
  if (p.eta !== null && p.eta !== undefined && state === "started")
    parts.push(span(p.eta) + " left");
  return [bar, el("div", "dim pct", parts.join(" · "))];
}

function render(m) {
  const row = rows.get(m.mac) || newRow(m.mac);
  const c = row.cells;
  const who = el("div");
  who.append(el("div", "name", m.name || "(no name)"), el("div", "mac", m.mac));
  put(c.Machine, who);
  const seen = el("div"), last = el("span", "seen", ago(m.last_seen));
  last.title = when(m.last_seen);
  seen.append(last, el("div", "dim firmware",
    FIRMWARE[m.firmware] || m.firmware || "firmware not seen"));
  put(c.Seen, seen);
  const job = el("div");
  if (m.job) {
    job.append(el("span", "mono", m.job), el("div", "dim",
      (m.once ? "once" : "every boot") +
      (m.attempts ? ", try " + m.attempts + " of " + ((m.retries || 0) + 1) : "")));
  } else job.append(el("span", "dim", "none"));
  if (m.next) job.append(el("div", "dim next", "next boot: " + m.next));
  put(c.Job, job);
  const state = STATES.includes(m.state) ? m.state : "unknown";
  const st = el("div");
  st.append(el("span", "state state-" + state, m.state || "unknown"));
  const r = m.result;
  if (r) {
    st.append(el("div", "result", "last: " + r.event +
      (r.exit !== null && r.exit !== undefined ? ", exit " + r.exit : "")),
      el("div", "dim", when(r.at)));
  }
  put(c.State, st);
  put(c.Progress, ...progressNodes(m.progress, m.state));
  const log = Array.isArray(m.log) ? m.log.map(String) : [];
  const text = (node, value) => { if (node.textContent !== value) node.textContent = value; };
  text(row.tail, log.length ? log[log.length - 1] : "");
  text(row.all, log.join("\n"));
  row.tail.title = log.length + " lines";
  row.log.hidden = !log.length;
  row.nolog.hidden = !!log.length;
  row.cancel.disabled = !m.job;
  fillJobs(row);
  return row;
}

function order() {
  const key = (mac) => ((machines.get(mac).name || "~") + " " + mac).toLowerCase();
  const body = $("rows");
  [...rows.keys()].sort((a, b) => key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)
    .forEach((mac) => body.append(rows.get(mac).tr));
}

function summary() {
  const counts = {};
  for (const m of machines.values()) counts[m.state] = (counts[m.state] || 0) + 1;
  const parts = Object.keys(counts).sort().map((s) => counts[s] + " " + s);
  $("summary").textContent = machines.size + (machines.size === 1 ? " machine" : " machines") +
    (parts.length ? ": " + parts.join(", ") : "");
  $("empty").hidden = machines.size > 0;
  $("tablebox").hidden = machines.size === 0;
}

function upsert(m) {
  if (!m || typeof m.mac !== "string") return;
  const old = machines.get(m.mac);
  machines.set(m.mac, m); render(m);
  if (!old || old.name !== m.name) order();
  summary();
}

async function load() {
  const answer = await fetch("/api/machines", {cache: "no-store"});
  if (!answer.ok) throw new Error("/api/machines: HTTP " + answer.status);
  const data = await answer.json();
  jobs = Array.isArray(data.jobs) ? data.jobs.map(String) : [];
  const seen = new Set();
  for (const m of data.machines || []) { seen.add(m.mac); upsert(m); }
  for (const mac of [...machines.keys()]) if (!seen.has(mac)) {
    machines.delete(mac); rows.get(mac).tr.remove(); rows.delete(mac);
  }
  for (const row of rows.values()) fillJobs(row);
  summary();
}

function poll(on) {
  if (on && !poller) {
    const tick = () => load().then(() => {
      if (!stream || stream.readyState !== EventSource.OPEN)
        setLive("poll", forcePoll ? "polling" : "polling (no event stream)");
    }).catch(() => setLive("down", "server unreachable"));
    tick();
    poller = setInterval(tick, POLL_MS);
  } else if (!on && poller) { clearInterval(poller); poller = null; }
}

function connect() {
  if (forcePoll || typeof EventSource === "undefined") { poll(true); return; }
  stream = new EventSource("/api/events");
  stream.onopen = () => {
    setLive("live", "live"); poll(false);
    load().catch((e) => say(String(e.message || e), "error"));
  };
  stream.onmessage = (event) => {
    try { upsert(JSON.parse(event.data)); } catch (e) { /* not a machine */ } };
  stream.onerror = () => {
    poll(true);
    if (stream.readyState === EventSource.CLOSED) {
      stream = null; setTimeout(connect, RETRY_MS);
    }
  };
}

const WHAT = {assign: "assign a job to", cancel: "cancel the job of",
  local: "set local boot for"};
async function act(mac, action, body, button) {
  const m = machines.get(mac) || {};
  const who = (m.name ? m.name + " (" + mac + ")" : mac);
  const headers = {"Content-Type": "application/json"};
  if (token()) headers["Authorization"] = "Bearer " + token();
  button.disabled = true;
  try {
    const answer = await fetch("/api/machines/" + encodeURIComponent(mac) + "/" + action,
      {method: "POST", headers, body: JSON.stringify(body || {}), cache: "no-store"});
    let detail = "";
    try { const j = await answer.json(); detail = j.error || j.message || ""; } catch (e) {}
    if (answer.ok) {
      say(action === "assign" ? body.job + " runs once on " + who + " at its next boot"
        : action === "cancel" ? "job of " + who + " cancelled"
        : who + " boots its local disk next", "ok");
      await load().catch(() => {});
    } else if (answer.status === 401 || answer.status === 403) {
      say("Not allowed to " + WHAT[action] + " " + who + (answer.status === 401
        ? ": the server wants the console token. Type it in the Token field above" +
          " (pxeconf serve printed it; it is in the site's state/token)."
        : ": the server refused this token (403). Type the right one in the Token field above."),
        "error");
    } else {
      say("Could not " + WHAT[action] + " " + who + ": HTTP " + answer.status +
        (detail ? ": " + detail : ""), "error");
    }
  } catch (e) {
    say("Could not " + WHAT[action] + " " + who + ": " + (e.message || e), "error");
  } finally {
    button.disabled = false;
    if (action === "cancel") button.disabled = !(machines.get(mac) || {}).job;
  }
}

$("tokenform").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  $("token").value = ""; showToken();
  say(value ? "token kept for this tab" : "", value ? "ok" : "");
});
$("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY); showToken(); say("token forgotten", "ok"); });
setInterval(() => {
  for (const [mac, row] of rows) {
    const s = row.cells.Seen.querySelector(".seen");
    if (s) s.textContent = ago(machines.get(mac).last_seen);
  } }, 1000);
showToken();
summary();
load().catch((e) => setLive("down", String(e.message || e)));
connect();
})();
"""

SCRIPT = SCRIPT.replace("__COLUMNS__", json.dumps(COLUMNS))

BODY = """<header>
<h1>pxeconf</h1><span id="live">connecting</span>
<form id="tokenform" autocomplete="off"><label for="token">Token</label>
<input id="token" type="password" placeholder="console token" spellcheck="false">
<button type="submit" id="usetoken">Use</button><span id="tokenstate" class="dim"></span>
<button type="button" id="forget" hidden>Forget</button></form></header>
<main>
<noscript><p>This page needs JavaScript (its own, nothing from elsewhere).
<a href="/api/machines">/api/machines</a> has every machine as JSON.</p></noscript>
<p id="msg" role="alert" hidden></p>
<p id="summary"></p>
<div id="tablebox"><table id="table"><thead><tr>""" + "".join(
    f"<th>{name}</th>" for name in COLUMNS) + """</tr></thead>
<tbody id="rows"></tbody></table></div>
<p id="empty">No machine has asked this server for its boot configuration yet.</p>
</main>"""


def _hash(text):
    digest = hashlib.sha256(text.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


PAGE = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>pxeconf: machines</title>\n"
        f"<style>{STYLE}</style>\n</head><body>\n{BODY}\n"
        f"<script>{SCRIPT}</script>\n</body></html>\n").encode()

CSP = ("default-src 'none'; "
       f"script-src {_hash(SCRIPT)}; style-src {_hash(STYLE)}; "
       "connect-src 'self'; img-src 'none'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
