"""The console page's look (console.py has the page): one stylesheet,
inlined in the page and allowed by its hash in console.CSP.  Colours are
variables, with a dark set for a dark system; under 960 pixels the table
turns into one card per machine, each cell a labelled line.
"""

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
