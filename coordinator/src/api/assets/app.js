// The fleet dashboard: a wall-screen view of the status API (/api/v1).
//
// Plain script, no build step, no dependencies. The login cookie authorizes
// every (same-origin) fetch. Every value from the API reaches the page
// through textContent or setAttribute, never innerHTML, so no tenant id,
// error message or output can inject markup.
//
// Views (URL hash, so a link reproduces the view):
//   #/?state=unreachable&wave=canary   the fleet, filtered
//   #/tenants/<id>                     one tenant in detail
'use strict';

const REFRESH_MS = 5000; // how often the data is fetched again
const FETCH_TIMEOUT_MS = 4000; // a request slower than this counts as failed

// Heartbeat states: text label, a symbol (a second cue besides colour) and a
// rank (lower sorts first, so the tenants that need attention are on top).
const STATES = {
  unreachable: { label: 'Unreachable', icon: '✖', rank: 0 },
  access_denied: { label: 'Access denied', icon: '⊘', rank: 1 },
  late: { label: 'Late', icon: '⚠', rank: 2 },
  degraded: { label: 'Degraded', icon: '▲', rank: 3 },
  not_deployed: { label: 'Not deployed', icon: '○', rank: 4 },
  unknown: { label: 'Unknown', icon: '?', rank: 5 },
  healthy: { label: 'Healthy', icon: '✔', rank: 6 },
  hosted: { label: 'Hosted default', icon: '☁', rank: 7 },
};
const NEEDS_ATTENTION = ['unreachable', 'access_denied', 'late', 'degraded', 'not_deployed'];

// Everything the page shows, as last fetched.
const app = {
  fleet: null, // GET /api/v1/fleet
  tenants: [], // GET /api/v1/tenants (filtered by the API)
  detail: null, // GET /api/v1/tenants/<id>, on a tenant page
  detailError: null, // why that tenant page could not be shown
  lastOk: null, // when the last refresh succeeded
  failure: null, // null, 'auth' (HTTP 401) or why the last refresh failed
  listHash: '#/', // the fleet view to go back to from a tenant page
  seq: 0, // refresh counter: answers for an older view are dropped
  timer: null, // the next scheduled refresh
};

// ---- small helpers ------------------------------------------------------

// Creates an element with attributes and children (nodes or plain text;
// text is always a text node, never parsed as markup).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const pad = (n) => String(n).padStart(2, '0');

// A timestamp for people: "14:03:07" today, "2026-11-01 14:03" otherwise.
function clock(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === new Date().toDateString()) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms.slice(0, 5)}`;
}

// A duration in words: "12 s", "4 min", "3 h 5 min", "2 d".
function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

// A relative-time element ("12 s ago" or "for 3 min"), kept current by tick().
function relative(iso, kind) {
  return el('time', { datetime: iso, 'data-rel': kind, title: clock(iso) }, relText(iso, kind));
}
function relText(iso, kind) {
  const d = duration(Date.now() - new Date(iso).getTime());
  return kind === 'for' ? `for ${d}` : `${d} ago`;
}

// The state a tenant shows: its heartbeat state, or "hosted".
function stateOf(t) {
  if (t.hosted) return 'hosted';
  return t.heartbeat ? t.heartbeat.state : 'unknown';
}

// A state badge: colour, symbol AND words (and an optional count).
function badge(state, count) {
  const s = STATES[state] || { label: state, icon: '?' };
  return el('span', { class: `badge badge-${state}` },
    el('span', { class: 'icon', 'aria-hidden': 'true' }, s.icon), s.label,
    count === undefined ? null : el('span', { class: 'n' }, count));
}

// A table with a header row; `rows` are arrays of cells (or <tr> nodes).
function table(headers, rows, emptyText, cls) {
  const body = rows.length
    ? rows.map((r) => (r instanceof Node ? r : el('tr', null, r.map((c) => el('td', null, c)))))
    : [el('tr', null, el('td', { colspan: headers.length, class: 'empty' }, emptyText))];
  return el('table', { class: cls || 'grid' },
    el('thead', null, el('tr', null, headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', null, body));
}

// ---- routing and fetching -----------------------------------------------

// Reads the view from the URL hash.
function route() {
  const hash = location.hash.replace(/^#/, '');
  const m = hash.match(/^\/tenants\/([^?]+)/);
  if (m) return { page: 'tenant', id: decodeURIComponent(m[1]) };
  const q = new URLSearchParams(hash.split('?')[1] || '');
  return { page: 'fleet', state: q.get('state') || '', wave: q.get('wave') || '' };
}

// The hash of the fleet view with these filters.
function fleetHash(state, wave) {
  const q = new URLSearchParams();
  if (state) q.set('state', state);
  if (wave) q.set('wave', wave);
  const s = q.toString();
  return s ? `#/?${s}` : '#/';
}

// GETs a JSON API path; a failure is an Error with `status` (0: no answer).
async function getJSON(path) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
  try {
    let res;
    try {
      res = await fetch(path, { credentials: 'same-origin', signal: abort.signal });
    } catch (e) {
      throw Object.assign(new Error('the coordinator did not answer'), { status: 0 });
    }
    if (!res.ok) {
      let message = `HTTP ${res.status}`;
      try { message = (await res.json()).error || message; } catch (e) { /* not JSON */ }
      throw Object.assign(new Error(message), { status: res.status });
    }
    return await res.json();
  } finally {
    clearTimeout(timer);
  }
}

// Fetches what the current view needs, renders, and schedules the next run.
async function refresh() {
  clearTimeout(app.timer);
  const seq = ++app.seq;
  const r = route();
  try {
    const fleet = await getJSON('/api/v1/fleet');
    let { tenants } = app;
    let detail = null;
    let detailError = null;
    if (r.page === 'tenant') {
      try {
        detail = await getJSON(`/api/v1/tenants/${encodeURIComponent(r.id)}`);
      } catch (e) {
        if (e.status !== 404) throw e;
        detailError = e.message;
      }
    } else {
      // "hosted" is not a heartbeat state: the API filters by wave only.
      const q = new URLSearchParams();
      if (r.state && r.state !== 'hosted') q.set('state', r.state);
      if (r.wave) q.set('wave', r.wave);
      tenants = await getJSON(`/api/v1/tenants${q.toString() ? `?${q}` : ''}`);
      if (r.state === 'hosted') tenants = tenants.filter((t) => t.hosted);
    }
    if (seq !== app.seq) return; // the view changed meanwhile
    Object.assign(app, { fleet, tenants, detail, detailError, lastOk: new Date(), failure: null });
  } catch (e) {
    if (seq !== app.seq) return;
    app.failure = e.status === 401 ? 'auth' : e.message;
  }
  render();
  app.timer = setTimeout(refresh, REFRESH_MS);
}

// ---- rendering ----------------------------------------------------------

// Draws the whole page from `app`.
function render() {
  const r = route();
  if (r.page === 'fleet') app.listHash = location.hash || '#/';
  renderHeader();
  document.getElementById('filters').hidden = r.page !== 'fleet' || !app.fleet;
  const main = document.getElementById('app');
  if (!app.fleet) {
    main.replaceChildren(el('p', { class: 'empty' }, 'No data from the coordinator yet.'));
  } else if (r.page === 'fleet') {
    renderFilters(r);
    main.replaceChildren(fleetTable());
  } else {
    main.replaceChildren(tenantPage(r.id));
  }
  tick();
}

// The header: desired release and a count per state (each a filter link).
function renderHeader() {
  const f = app.fleet;
  if (!f) return;
  document.getElementById('desired').textContent = f.desired_release;
  const counts = { ...f.by_state, hosted: f.tenants - f.monitored };
  const chips = Object.keys(STATES).map((state) => {
    const n = counts[state] || 0;
    return el('a', { class: `count${n ? '' : ' zero'}`, href: fleetHash(state, ''), 'data-count': state },
      badge(state, n));
  });
  chips.unshift(el('a', { class: 'count total', href: '#/' },
    el('span', { class: 'badge' }, 'Tenants', el('span', { class: 'n' }, f.tenants))));
  document.getElementById('counts').replaceChildren(...chips);
  const bad = NEEDS_ATTENTION.reduce((sum, s) => sum + (counts[s] || 0), 0);
  document.title = bad ? `(${bad} need attention) docproc fleet` : 'docproc fleet';
}

// The state and wave select boxes, with counts; rebuilt only when changed.
function renderFilters(r) {
  const f = app.fleet || { by_state: {}, by_wave: {}, tenants: 0, monitored: 0 };
  const counts = { ...f.by_state, hosted: f.tenants - f.monitored };
  const states = [['', `All states (${f.tenants})`]].concat(
    Object.keys(STATES).map((s) => [s, `${STATES[s].label} (${counts[s] || 0})`]));
  const waves = [['', 'All waves']].concat(
    Object.entries(f.by_wave).map(([w, n]) => [w, `${w} (${n})`]));
  if (r.wave && !(r.wave in f.by_wave)) waves.push([r.wave, `${r.wave} (0)`]);
  fillSelect(document.getElementById('filter-state'), states, r.state);
  fillSelect(document.getElementById('filter-wave'), waves, r.wave);
  document.getElementById('shown').textContent =
    `Showing ${app.tenants.length} of ${f.tenants} tenants`;
}
function fillSelect(select, options, value) {
  const key = JSON.stringify(options);
  if (select.dataset.key !== key) {
    select.replaceChildren(...options.map(([v, text]) => el('option', { value: v }, text)));
    select.dataset.key = key;
  }
  select.value = value;
}

// One row per tenant, the ones that need attention first.
function fleetTable() {
  const desired = app.fleet ? app.fleet.desired_release : null;
  const rank = (t) => (STATES[stateOf(t)] || STATES.unknown).rank;
  const tenants = [...app.tenants].sort((a, b) => rank(a) - rank(b) || a.id.localeCompare(b.id));
  const rows = tenants.map((t) => {
    const state = stateOf(t);
    const hb = t.heartbeat;
    const stateCell = [badge(state)];
    if (hb && state !== 'healthy') stateCell.push(el('div', { class: 'sub' }, relative(hb.since, 'for')));
    let seen;
    if (t.hosted) seen = el('span', { class: 'muted' }, 'no heartbeat');
    else if (hb && hb.last_seen) seen = relative(hb.last_seen, 'ago');
    else seen = el('span', { class: 'muted' }, 'never');
    return el('tr', { class: `row row-${state}`, 'data-tenant': t.id, 'data-state': state },
      el('td', { class: 'id' }, el('a', { href: `#/tenants/${encodeURIComponent(t.id)}` }, t.id)),
      el('td', null, t.wave),
      el('td', { class: 'state' }, stateCell),
      el('td', { class: 'seen' }, seen),
      el('td', { class: 'release' }, releaseText(t, desired)),
      el('td', { class: 'stacks' }, stackList(t)),
      el('td', { class: t.last_error ? 'error' : 'muted' }, t.last_error || '—'));
  });
  return table(['Tenant', 'Wave', 'State', 'Last seen', 'Release', 'Stacks', 'Last error'],
    rows, 'No tenant matches these filters.', 'grid fleet');
}

// The release a tenant runs, flagged when it is not the desired one.
function releaseText(t, desired) {
  if (t.hosted) return el('span', { class: 'muted' }, 'hosted default');
  if (!t.release) {
    const mixed = t.stacks.some((s) => s.release);
    return el('span', { class: 'warn' }, mixed ? 'mixed' : 'not deployed');
  }
  if (desired && t.release !== desired) {
    return el('span', { class: 'warn' }, `${t.release} (desired ${desired})`);
  }
  return t.release;
}

// "storage CREATE_COMPLETE" lines, coloured by outcome (with the words).
function stackList(t) {
  if (!t.stacks.length) return el('span', { class: 'muted' }, 'none');
  return t.stacks.map((s) => {
    const status = s.status || 'not found';
    let cls = 'ok';
    if (/FAILED|ROLLBACK|not found/.test(status)) cls = 'bad';
    else if (/IN_PROGRESS/.test(status)) cls = 'warn';
    return el('div', { class: 'stack' }, el('span', { class: 'stack-name' }, s.stack), ' ',
      el('span', { class: `stack-status ${cls}` }, status));
  });
}

// The facts about a tenant and its heartbeat, as [label, value] pairs.
function tenantFacts(t) {
  const hb = t.heartbeat;
  const facts = [['Account', t.account_id], ['Region', t.region], ['Wave', t.wave],
    ['Capabilities', t.capabilities.join(', ') || '—'],
    ['Release', releaseText(t, app.fleet && app.fleet.desired_release)]];
  if (!hb) return facts.concat([['Heartbeat', 'none: served by the hosted default']]);
  return facts.concat([['Why', hb.reason], ['Since', relative(hb.since, 'ago')],
    ['Last seen', hb.last_seen ? relative(hb.last_seen, 'ago') : 'never'],
    ['Round trip', hb.last_rtt_ms === null ? '—' : `${hb.last_rtt_ms} ms`],
    ['Missed rounds', hb.consecutive_misses],
    ['Jobs waiting', hb.job_queue_depth ?? '—'], ['Dead letters', hb.dead_letter_depth ?? '—'],
    ['Worker', hb.worker_id || '—'], ['Agent', hb.agent_version || '—'],
    ['Last error', t.last_error || '—']]);
}

// Who runs a dependency, in words and colour: never ambiguous.
function managedBadge(dep) {
  const customer = dep.managed_by === 'customer';
  return el('span', { class: `managed managed-${dep.managed_by}`, 'data-managed-by': dep.managed_by },
    customer ? 'Customer-managed' : 'Hosted by the vendor');
}

// A customer-managed dependency's last check, from the probes.
function checkText(check) {
  const words = {
    not_applicable: 'n/a (vendor-hosted)', not_checked: 'not checked yet',
    passing: 'passing', failing: 'FAILING',
  };
  const cls = { passing: 'ok', failing: 'bad', not_checked: 'warn' }[check.state] || 'muted';
  return el('span', { class: `check ${cls}`, 'data-check': check.state }, words[check.state] || check.state);
}

// The privacy panel: storage and LLM keys, who manages each, their checks,
// hosted fallback, and who last changed the configuration.
function privacyPanel(p) {
  const rows = [['Storage', p.storage], ['LLM keys', p.llm]].map(([name, dep]) =>
    el('tr', { 'data-dependency': name === 'Storage' ? 'storage' : 'llm', 'data-managed-by': dep.managed_by },
      el('td', null, name), el('td', null, managedBadge(dep)), el('td', null, dep.summary),
      el('td', null, checkText(dep.check)),
      el('td', null, dep.check.last_validated ? relative(dep.check.last_validated, 'ago') : '—'),
      el('td', null, dep.check.last_error
        ? [el('code', { class: 'error-code' }, dep.check.last_error_code || ''), ' ', dep.check.last_error, dep.check.remedy ? el('div', { class: 'sub' }, `What to do: ${dep.check.remedy}`) : '']
        : '—')));
  const fb = p.hosted_fallback;
  const customer = p.storage.managed_by === 'customer' || p.llm.managed_by === 'customer';
  let fallback;
  if (fb.enabled) fallback = el('span', { class: 'bad', 'data-fallback': 'enabled' }, `ENABLED: falls back to the vendor's hosted storage/keys when its own fail (${fb.reason || 'no reason recorded'})`);
  else if (customer) fallback = el('span', { class: 'ok', 'data-fallback': 'disabled' }, 'Disabled: fails closed when its own storage or keys fail');
  else fallback = el('span', { class: 'muted', 'data-fallback': 'n/a' }, 'n/a (hosted defaults)');
  const changed = p.version === 0
    ? 'Never configured: hosted defaults.'
    : `Version ${p.version}, changed ${clock(p.changed_at)} (${relText(p.changed_at, 'ago')}) by ${p.changed_by}.`;
  return [
    table(['Dependency', 'Managed by', 'Configuration', 'Check', 'Last validated', 'Last error'], rows, '', 'grid privacy'),
    el('dl', { class: 'facts' },
      el('div', { class: 'fact' }, el('dt', null, 'Hosted fallback'), el('dd', null, fallback)),
      el('div', { class: 'fact' }, el('dt', null, 'Changed'), el('dd', { class: 'privacy-changed' }, changed))),
  ];
}

// The tenant page: facts, heartbeat history, stacks, deployments, outputs,
// audit entries, and a link back to the fleet.
function tenantPage(id) {
  const back = el('a', { class: 'back', href: app.listHash }, '← All tenants');
  const d = app.detail;
  if (app.detailError) return el('section', null, back, el('p', { class: 'empty' }, app.detailError));
  if (!d || d.tenant.id !== id) return el('section', null, back, el('p', { class: 'empty' }, 'Loading…'));
  const t = d.tenant;
  const section = (title, sectionId, content) =>
    el('section', { class: 'panel', id: sectionId }, el('h3', null, title), content);
  return el('article', { class: 'tenant', 'data-tenant': t.id, 'data-state': stateOf(t) },
    back,
    el('h2', null, el('span', { class: 'tenant-id' }, t.id), ' ', badge(stateOf(t))),
    el('dl', { class: 'facts' }, tenantFacts(t).map(([k, v]) =>
      el('div', { class: 'fact' }, el('dt', null, k), el('dd', null, v)))),
    section('Privacy', 'privacy', privacyPanel(d.privacy)),
    section('Heartbeat history', 'history', table(['When', 'State', 'Why'],
      d.heartbeat_history.map((h) => el('tr', { 'data-state': h.state },
        el('td', null, clock(h.at), ' ', el('span', { class: 'sub' }, '(', relative(h.at, 'ago'), ')')),
        el('td', null, badge(h.state)), el('td', null, h.reason))),
      t.hosted ? 'No heartbeat: hosted default.' : 'No state change recorded yet.')),
    section('Stacks', 'stacks', table(['Stack', 'Status', 'Release', 'Last outcome', 'Last error', 'Updated'],
      t.stacks.map((s) => [s.stack, s.status || '—', s.release || '—', s.last_outcome || '—',
        s.last_error || '—', s.updated_at ? relative(s.updated_at, 'ago') : '—']), 'No stacks (hosted default).')),
    section('Recent deployments', 'deployments', table(
      ['Generation', 'Stack', 'Action', 'Started', 'Finished', 'Outcome', 'Status', 'Why'],
      d.deployments.map((x) => [x.generation, x.stack, x.action, clock(x.started_at),
        clock(x.finished_at), x.outcome || 'running', x.status || '—', x.reason || '—']),
      'No deployments recorded.')),
    section('Outputs', 'outputs', d.outputs.length
      ? d.outputs.map((o) => table([`${o.stack} (${o.release})`, 'Value'],
        Object.entries(o.outputs).map(([k, v]) => [k, el('code', null, v)]), 'No outputs.', 'grid kv'))
      : el('p', { class: 'empty' }, 'No outputs recorded.')),
    section('Audit', 'audit', table(['#', 'When', 'Actor', 'Action', 'Details'],
      d.audit.map((a) => [a.seq, clock(a.at), a.actor, a.action,
        el('code', { class: 'details' }, JSON.stringify(a.details))]),
      'No audit entries about this tenant.')));
}

// The warning banner: session expired, or stale data.
function renderBanner() {
  const banner = document.getElementById('banner');
  let text = '';
  let cls = 'banner';
  if (app.failure === 'auth') {
    cls += ' banner-auth';
    text = 'Session expired: the coordinator no longer accepts this screen\'s token (HTTP 401). '
      + 'Log in again by opening /login?token=<your viewer token>.';
  } else if (app.failure) {
    cls += ' banner-error';
    text = app.lastOk
      ? `Stale data: nothing new from the coordinator since ${clock(app.lastOk.toISOString())} `
        + `(${duration(Date.now() - app.lastOk.getTime())} ago): ${app.failure}. Retrying every 5 s.`
      : `Cannot load the fleet: ${app.failure}. Retrying every 5 s.`;
  }
  banner.className = cls;
  banner.textContent = text;
  banner.hidden = !text;
  document.body.classList.toggle('stale', Boolean(app.failure));
}

// Every second: relative times, the "updated" line and the banner, without
// fetching anything.
function tick() {
  for (const node of document.querySelectorAll('time[data-rel]')) {
    node.textContent = relText(node.getAttribute('datetime'), node.dataset.rel);
  }
  if (app.lastOk) {
    document.getElementById('refreshed').textContent =
      `Updated ${clock(app.lastOk.toISOString())} (${duration(Date.now() - app.lastOk.getTime())} ago)`;
  }
  renderBanner();
}

// ---- start --------------------------------------------------------------

// A filter change rewrites the hash; the hashchange handler does the rest.
function onFilterChange() {
  const state = document.getElementById('filter-state').value;
  const wave = document.getElementById('filter-wave').value;
  location.hash = fleetHash(state, wave);
}

document.getElementById('filter-state').addEventListener('change', onFilterChange);
document.getElementById('filter-wave').addEventListener('change', onFilterChange);
document.getElementById('filters').addEventListener('submit', (e) => e.preventDefault());
window.addEventListener('hashchange', () => { render(); refresh(); });
setInterval(tick, 1000);
refresh();
