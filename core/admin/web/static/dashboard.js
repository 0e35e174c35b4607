// groupsync dashboard: polls the admin API and renders what it says. No framework, no
// build step. Text is only ever set through textContent, never parsed as HTML.
//
// A well-behaved client of its own API:
// - reads (polling) and actions go to separate server buckets; a 429 on reads pauses
//   polling for Retry-After seconds, and the pause is kept in sessionStorage so a reload
//   does not hammer the API again;
// - a read failing with 503 / no answer after an earlier success shows "connection issues"
//   until reads succeed again;
// - an action meeting 503 (or 429) is retried with backoff behind a blocking
//   "Retrying…" overlay, always with the same Idempotency-Key, so the server performs
//   it once however many times it is sent.
(() => {
  'use strict';

  const POLL_MS = 2000;
  const MAX_POLL_MS = 60000;
  const INTERVAL_KEY = 'groupsync.pollMs';
  const JOB_POLL_MS = 1000;
  const PAUSE_KEY = 'groupsync.readsPausedUntil';
  const SUCCESS_KEY = 'groupsync.readSucceeded';
  const DATA_KEY = 'groupsync.lastData';
  const ACTION_GIVE_UP_MS = 120000;
  const FINISHED_JOB_STATES = new Set(['done', 'finished', 'completed', 'cancelled', 'canceled', 'failed']);

  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  const state = {
    serverOffsetMs: 0,
    hadSuccess: sessionStorage.getItem(SUCCESS_KEY) === '1',
    connectionIssue: null,   // text while reads fail after an earlier success
    waitingForApi: null,     // text while reads fail before any success
    overview: null,
    keys: null,
    held: null,              // the deletion guard's held plans (/api/held)
    requested: new Map(),    // "type:group" → what the operator asked for, until the next poll
    job: null,
    pollTimer: null,
    role: null,              // this daemon's role (X-Groupsync-Role): active, standby, …
  };

  // ---- small helpers -------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') node.textContent = value;
      else if (key === 'class') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key in node && typeof value !== 'string') node[key] = value;
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // A group id as a link to its page (issue 23); a click is not the row's own click.
  function groupLink(id, text) {
    return el('a', {
      href: `/groups/${encodeURIComponent(id)}`, class: 'group-link', text: text || String(id),
      'aria-label': `Open the page of group ${id}`,
      onclick: (event) => event.stopPropagation(), onkeydown: (event) => event.stopPropagation(),
    });
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const serverNow = () => Date.now() + state.serverOffsetMs;

  function secondsUntil(iso) {
    if (!iso) return null;
    return Math.max(0, Math.ceil((Date.parse(iso) - serverNow()) / 1000));
  }

  function duration(seconds) {
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function clockTime(iso) {
    if (!iso) return '—';
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  // "12:03:04 (12 min ago)": the absolute time with the relative one beside it.
  function sinceText(iso) {
    if (!iso) return '—';
    const seconds = Math.max(0, Math.floor((serverNow() - Date.parse(iso)) / 1000));
    return `${clockTime(iso)} (${duration(seconds)} ago)`;
  }

  // This daemon only reads: actions run on the active one.
  const readOnly = () => state.role !== null && state.role !== 'active';

  // The services' labels come with the overview (the sync-type registry names them).
  const serviceName = (name) => {
    const services = (state.overview && state.overview.services) || [];
    const found = services.find((s) => s.name === name);
    return (found && found.label) || name;
  };
  const statusWords = (status) => (status || '').replace(/_/g, ' ');

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function problemText(result) {
    const body = result.body;
    if (body && typeof body === 'object') {
      if (body.detail) return typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail);
      if (body.title) return body.title;
    }
    if (result.status === 0) return 'the admin API did not answer';
    return `the admin API answered ${result.status}`;
  }

  // ---- talking to the API --------------------------------------------------------------
  async function request(method, path, body, headers) {
    const sent = { Accept: 'application/json', ...(headers || {}) };
    if (body !== undefined) sent['Content-Type'] = 'application/json';
    if (method !== 'GET' && method !== 'HEAD') sent['X-CSRF-Token'] = csrfToken;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (error) {
      return { status: 0, body: null, retryAfter: null };
    }
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    const header = response.headers.get('Retry-After');
    let retryAfter = null;
    if (header !== null) {
      const seconds = Number(header);
      retryAfter = Number.isFinite(seconds) ? seconds : Math.max(0, (Date.parse(header) - Date.now()) / 1000);
    }
    const role = response.headers.get('X-Groupsync-Role');
    if (role) state.role = role;
    if (response.status === 401) {
      window.location.assign('/login');
    }
    return { status: response.status, body: data, retryAfter };
  }

  // ---- reads: polling, 429 pause, connection issues -------------------------------------
  function readsPausedFor() {
    const until = Number(sessionStorage.getItem(PAUSE_KEY) || 0);
    const left = until - Date.now();
    if (left <= 0) {
      if (until) sessionStorage.removeItem(PAUSE_KEY);
      return 0;
    }
    return left;
  }

  // The polling interval doubles on each 429 and creeps back after successes, so a page
  // polling faster than the server allows settles at a rate it does allow.
  function pollInterval() {
    return Math.min(MAX_POLL_MS, Math.max(POLL_MS, Number(sessionStorage.getItem(INTERVAL_KEY)) || POLL_MS));
  }

  function pauseReads(seconds) {
    const until = Date.now() + Math.max(1, seconds) * 1000;
    sessionStorage.setItem(PAUSE_KEY, String(until));
    sessionStorage.setItem(INTERVAL_KEY, String(Math.min(MAX_POLL_MS, pollInterval() * 2)));
  }

  // True when the answer can be used; otherwise records why not.
  function readOk(result) {
    if (result.status === 200) {
      sessionStorage.setItem(INTERVAL_KEY, String(Math.max(POLL_MS, Math.floor(pollInterval() * 0.95))));
      state.hadSuccess = true;
      sessionStorage.setItem(SUCCESS_KEY, '1');
      state.connectionIssue = null;
      state.waitingForApi = null;
      return true;
    }
    if (result.status === 429) {
      pauseReads(result.retryAfter || 5);
    } else if (result.status === 0 || result.status >= 500) {
      const why = result.status === 0
        ? 'the admin API did not answer'
        : `the admin API answered ${result.status}: ${problemText(result)}`;
      if (state.hadSuccess) state.connectionIssue = why;
      else state.waitingForApi = why;
    } else if (result.status !== 401) {
      toast(`Could not load the dashboard data: ${problemText(result)}`, 'error');
    }
    return false;
  }

  function keysQuery() {
    const params = new URLSearchParams({ limit: '200' });
    const service = $('filter-service').value;
    const status = $('filter-status').value;
    const group = $('filter-group').value.trim();
    if (service) params.set('service', service);
    if (status) params.set('status', status);
    if (group) params.set('group_id', group);
    return params.toString();
  }

  async function refresh() {
    if (readsPausedFor() > 0) return;
    const overview = await request('GET', '/api/overview');
    if (!readOk(overview)) return;
    state.overview = overview.body;
    if (overview.body && overview.body.now) {
      state.serverOffsetMs = Date.parse(overview.body.now) - Date.now();
    }
    const keys = await request('GET', `/api/keys?${keysQuery()}`);
    if (!readOk(keys)) return;
    state.keys = keys.body;
    const held = await request('GET', '/api/held');
    if (!readOk(held)) return;
    state.held = held.body;
    state.requested.clear();
    try {
      sessionStorage.setItem(DATA_KEY, JSON.stringify({ overview: state.overview, keys: state.keys, held: state.held }));
    } catch (error) { /* storage full: the next load just starts empty */ }
    renderOverview();
    renderKeys();
    renderHeld();
  }

  // After a reload while reads are paused, show what was last received (and say so).
  function restoreLastData() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(DATA_KEY) || 'null');
      if (!saved || !saved.overview || !saved.keys) return;
      state.overview = saved.overview;
      state.keys = saved.keys;
      state.held = saved.held || null;
      state.serverOffsetMs = 0;
      renderOverview();
      renderKeys();
      renderHeld();
    } catch (error) { /* unreadable: start empty */ }
  }

  // Other parts of the page (trail.js) read on a slower beat: every SLOW_EVERY-th poll,
  // and at once when they ask (pollSoon(true)), so a poll stays three reads mostly.
  const SLOW_EVERY = 3;
  const slowReaders = [];
  let polls = 0;
  let slowAsked = false;

  async function slowReads() {
    const due = slowAsked || polls % SLOW_EVERY === 0;
    polls += 1;
    slowAsked = false;
    if (!due) return;
    for (const read of slowReaders) {
      if (readsPausedFor() > 0) return;
      await read();
    }
  }

  async function pollLoop() {
    clearTimeout(state.pollTimer);
    await refresh();
    if (readsPausedFor() === 0 && state.overview && !state.connectionIssue && !state.waitingForApi) {
      await slowReads();
    }
    renderBanners();
    const paused = readsPausedFor();
    state.pollTimer = setTimeout(pollLoop, paused > 0 ? paused + 50 : pollInterval());
  }

  function pollSoon(slow) {
    if (slow) slowAsked = true;
    clearTimeout(state.pollTimer);
    state.pollTimer = setTimeout(pollLoop, 100);
  }

  // ---- banners -------------------------------------------------------------------------
  function bannerList() {
    const banners = [];
    const paused = readsPausedFor();
    if (paused > 0) {
      const seconds = Math.ceil(paused / 1000);
      banners.push({
        id: 'banner-reads-paused', kind: 'info', title: 'Updates paused',
        text: `— the admin API asked this page to slow down; resuming in ${duration(seconds)}. Actions still work.`,
      });
    }
    if (readOnly()) {
      const daemons = (state.overview && state.overview.daemons) || [];
      const active = daemons.find((d) => d.role === 'active' && d.alive !== false);
      banners.push({
        id: 'banner-standby', kind: 'info', title: 'Read-only view',
        text: state.role === 'standby'
          ? `— this daemon stands by; actions run on the active daemon${active ? ` (${active.host} pid ${active.pid})` : ', and none is active now'}.`
          : '— this daemon is still starting; actions run once it leads.',
      });
    }
    if (state.connectionIssue) {
      banners.push({
        id: 'banner-connection', kind: 'danger', title: 'Connection issues',
        text: `— ${state.connectionIssue}. Showing the last data received; trying again.`,
      });
    } else if (state.waitingForApi) {
      banners.push({
        id: 'banner-waiting', kind: 'info', title: 'Waiting for the admin API',
        text: `— ${state.waitingForApi}; trying again.`,
      });
    }
    for (const service of (state.overview && state.overview.services) || []) {
      const name = serviceName(service.name);
      const health = service.state || {};
      if (health.state === 'credentials_rejected') {
        banners.push({
          id: `banner-credentials-${service.name}`, kind: 'danger',
          title: `${name} rejected the credentials`, text: credentialsText(health),
        });
      }
      if (service.paused) {
        banners.push({
          id: `banner-paused-${service.name}`, kind: 'warning', title: `${name} paused`,
          text: pausedText(service),
        });
      }
      for (const limit of service.rate_limits || []) {
        const left = secondsUntil(limit.limited_until);
        if (left > 0) {
          banners.push({
            id: `banner-ratelimit-${service.name}-${limit.lane}`, kind: 'warning',
            title: `${name} rate limited`,
            text: `— ${limit.lane} lane; calls resume in ${duration(left)}.`,
          });
        }
      }
      const breaker = service.breaker || {};
      if (breaker.state === 'open') {
        const left = secondsUntil(breaker.half_open_at);
        banners.push({
          id: `banner-breaker-${service.name}`, kind: 'danger', title: `${name} circuit open`,
          text: left > 0
            ? `— calls are stopped after repeated failures; the next probe is in ${duration(left)}.`
            : '— calls are stopped after repeated failures; a probe is due now.',
        });
      } else if (breaker.state === 'half_open') {
        banners.push({
          id: `banner-breaker-${service.name}`, kind: 'warning', title: `${name} circuit half-open`,
          text: '— one probe call decides whether calls resume.',
        });
      } else if ((breaker.consecutive_failures || 0) > 0) {
        banners.push({
          id: `banner-service-connection-${service.name}`, kind: 'warning',
          title: `${name} connection issues`,
          text: `— ${breaker.consecutive_failures} failed calls in a row (server errors or timeouts).`,
        });
      }
    }
    return banners;
  }

  // The service refused groupsync's credentials (issue 25): its words, since when, the
  // setting to fix and the next probe; no call goes out meanwhile.
  function credentialsText(health) {
    const left = secondsUntil(health.next_probe_at);
    const probe = left > 0 ? `next probe in ${duration(left)}` : 'a probe is due now';
    return `— "${health.reason}" since ${sinceText(health.since)}. Fix ${health.variable}: `
      + 'its syncs are parked (no calls) and resume by themselves once a probe finds the '
      + `credentials working; ${probe}.`;
  }

  // Who paused the service, why, since and until when (the trail on the page, issue 23).
  function pausedText(service) {
    const who = service.paused_by ? ` by ${service.paused_by}` : '';
    const since = service.paused_at ? ` since ${sinceText(service.paused_at)}` : '';
    const why = service.paused_reason ? ` Reason: ${service.paused_reason}.` : ' No reason given.';
    const until = service.paused_until
      ? ` No syncs for this service run until ${clockTime(service.paused_until)} (in ${duration(secondsUntil(service.paused_until))}), when the pause ends by itself, or until it is resumed.`
      : ' No syncs for this service run until it is resumed.';
    return `— paused${who}${since}.${why}${until}`;
  }

  function renderBanners() {
    const container = $('banners');
    const wanted = bannerList();
    const ids = new Set(wanted.map((b) => b.id));
    for (const node of Array.from(container.children)) {
      if (!ids.has(node.id)) node.remove();
    }
    for (const banner of wanted) {
      let node = $(banner.id);
      if (!node) {
        node = el('div', { id: banner.id, class: `banner ${banner.kind}` },
          el('strong', { text: banner.title }), ' ', el('span', { class: 'banner-text' }));
        container.append(node);
      }
      node.querySelector('.banner-text').textContent = banner.text;
    }
  }

  // ---- overview ------------------------------------------------------------------------
  function breakerWords(breaker) {
    const words = statusWords(breaker.state || 'closed');
    if (breaker.state === 'open') {
      const left = secondsUntil(breaker.half_open_at);
      return left > 0 ? `open (probe in ${duration(left)})` : 'open (probe due)';
    }
    const failures = breaker.consecutive_failures || 0;
    const limited = breaker.rate_limited || 0;
    const parts = [words];
    if (failures) parts.push(`${failures} failures in a row`);
    if (limited) parts.push(`${limited} rate-limit answers since the last success`);
    return parts.join(', ');
  }

  // The active daemon's Discord gateway: connected / resuming / disconnected since T.
  function gatewayWords(discord) {
    const gateway = discord && discord.gateway;
    if (!gateway) return 'Discord gateway: not connected (off, Discord disabled, or no active daemon); syncs read over REST.';
    const parts = [`Discord gateway: ${gateway.state} since ${clockTime(gateway.since)}`];
    if (gateway.latency !== null && gateway.latency !== undefined) parts.push(`latency ${Math.round(gateway.latency * 1000)} ms`);
    if (gateway.cache_age !== null && gateway.cache_age !== undefined) parts.push(`cache ${gateway.cache_age.toFixed(1)} s old`);
    parts.push(`${gateway.resumes} resumes, ${gateway.identifies} identifies`);
    return parts.join(', ') + (gateway.state === 'connected' ? '; syncs read channels from it.' : '; syncs read over REST.');
  }

  function renderOverview() {
    const overview = state.overview || {};
    const body = $('services-body');
    body.replaceChildren();
    for (const service of overview.services || []) {
      const counts = Object.entries(service.counts || {})
        .filter(([, n]) => n > 0)
        .map(([status, n]) => `${statusWords(status)}: ${n}`)
        .join(', ') || 'no syncs yet';
      const breaker = service.breaker || {};
      const health = (service.state || {}).state;
      const stateWords = [service.enabled === false ? 'not enabled' : 'enabled',
        health === 'credentials_rejected' ? 'CREDENTIALS REJECTED'
          : service.paused ? 'PAUSED' : 'running'].join(', ');
      const name = serviceName(service.name);
      const pauseButton = el('button', {
        type: 'button', id: `${service.paused ? 'resume' : 'pause'}-${service.name}`,
        text: service.paused ? `Resume ${name}` : `Pause ${name}`,
        onclick: () => pauseOrResume(service.name, !service.paused),
      });
      const resetBlocker = !breaker.state || breaker.state === 'closed' ? 'breaker is closed'
        : breaker.state === 'unknown' ? 'breaker state unknown (no active daemon)' : null;
      const resetButton = el('button', {
        type: 'button', id: `reset-breaker-${service.name}`, text: 'Reset breaker',
        disabled: Boolean(resetBlocker), 'aria-describedby': resetBlocker ? `reset-reason-${service.name}` : null,
        onclick: () => resetBreaker(service.name),
      });
      body.append(el('tr', { id: `service-${service.name}` },
        el('th', { scope: 'row', text: name }),
        el('td', { class: 'status', text: stateWords }),
        el('td', { text: counts }),
        el('td', { text: breakerWords(breaker) }),
        el('td', {}, pauseButton, ' ', resetButton,
          resetBlocker ? el('span', { class: 'reason', id: `reset-reason-${service.name}`, text: resetBlocker }) : null)));
    }
    if (!body.children.length) {
      body.append(el('tr', {}, el('td', { colspan: '5', text: 'No service is enabled.' })));
    }
    $('gateway-state').textContent = gatewayWords(
      (overview.services || []).find((s) => s.name === 'discord'));
    const list = $('daemons-list');
    list.replaceChildren();
    // Only live heartbeats count: a dead daemon's row is neither active nor a standby.
    const daemons = (overview.daemons || []).filter((d) => d.alive !== false);
    for (const daemon of daemons) {
      const active = daemon.id === overview.active_daemon || daemon.role === 'active';
      list.append(el('li', { text: `${active ? 'Active' : 'Standby'}: ${daemon.host} pid ${daemon.pid}`
        + ` (since ${clockTime(daemon.since)}, last heartbeat ${clockTime(daemon.last_heartbeat)})` }));
    }
    if (!daemons.length) list.append(el('li', { text: 'No daemon has reported in.' }));
    const active = daemons.find((d) => d.id === overview.active_daemon || d.role === 'active');
    $('daemon-line').textContent = active
      ? `Active daemon: ${active.host} pid ${active.pid}; ${daemons.length - 1} standby`
      : 'No active daemon';
  }

  // ---- failing syncs -------------------------------------------------------------------
  function failingItems() {
    const items = ((state.keys && state.keys.items) || []).slice();
    const since = (item) => (item.failing_since ? Date.parse(item.failing_since) : Infinity);
    return items.sort((a, b) => since(a) - since(b));
  }

  const WAITING_WORDS = {
    backoff: 'backing off', retry_after: 'rate limited', circuit_open: 'circuit open',
    paused: 'service paused', held: 'held for approval',
    credentials_rejected: 'credentials rejected', no_daemon: 'no active daemon',
    queued: 'queued',
  };

  function nextAttemptText(item) {
    if (item.status === 'running') return 'running now';
    const waiting = item.waiting;
    if (waiting) {
      const words = WAITING_WORDS[waiting.code] || statusWords(waiting.code);
      if (!waiting.until) return `${words} — ${waiting.detail}`;
      const left = secondsUntil(waiting.until);
      return left > 0 ? `${words} — next run in ${duration(left)} (${clockTime(waiting.until)})`
        : `${words} — due now`;
    }
    if (!item.next_attempt_at) return item.status === 'needs_attention' ? 'waits for an operator' : '—';
    const left = secondsUntil(item.next_attempt_at);
    return left > 0 ? `in ${duration(left)}` : 'due now';
  }

  function retryBlocker(item) {
    const asked = state.requested.get(`${item.sync_type}:${item.group_id}`);
    if (asked) return asked;
    if (item.status === 'running') return 'running now';
    if (readOnly()) return 'read-only: actions run on the active daemon';
    return null;
  }

  function renderKeys() {
    const body = $('failing-body');
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.focusKey : null;
    body.replaceChildren();
    const items = failingItems();
    for (const item of items) {
      const key = `${item.sync_type}:${item.group_id}`;
      const rowId = `key-${item.sync_type}-${item.group_id}`;
      const blocker = retryBlocker(item);
      const retry = el('button', {
        type: 'button', class: 'retry-button', id: `retry-${item.sync_type}-${item.group_id}`,
        text: 'Retry now', disabled: Boolean(blocker),
        'aria-describedby': blocker ? `${rowId}-reason` : null,
        'data-focus-key': `retry:${key}`,
        onclick: (event) => { event.stopPropagation(); retryOne(item); },
        onkeydown: (event) => event.stopPropagation(),
      });
      const row = el('tr', {
        id: rowId, class: 'key-row', tabindex: '0', 'data-focus-key': `row:${key}`,
        'aria-label': `${item.sync_type} for group ${item.group_id}: ${statusWords(item.status)}. Press Enter for its attempt history.`,
        onclick: () => openHistory(item),
        onkeydown: (event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); openHistory(item); } },
      },
      el('td', { text: item.sync_type }),
      el('td', {}, groupLink(item.group_id)),
      el('td', { class: 'status', text: statusWords(item.status) }),
      el('td', { text: item.attempt }),
      el('td', { class: 'next-attempt', 'data-key': key, text: nextAttemptText(item) }),
      el('td', { class: 'failing-since', text: sinceText(item.failing_since) }),
      el('td', { class: 'error-text', text: item.last_error || '—' }),
      el('td', {}, retry, blocker ? el('span', { class: 'reason', id: `${rowId}-reason`, text: blocker }) : null));
      body.append(row);
    }
    if (!items.length) {
      body.append(el('tr', {}, el('td', { colspan: '8', text: 'Nothing is failing.' })));
    }
    const total = state.keys ? state.keys.total : 0;
    $('failing-summary').textContent = `${items.length} shown${total > items.length ? ` of ${total}` : ''}.`;
    if (focused) {
      const again = body.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
      if (again && !again.disabled) again.focus();
    }
  }

  function usersText(item) {
    const names = item.users.map((u) => (u.name ? `${u.name} (${u.id})` : u.id));
    const shown = names.slice(0, 5).join(', ');
    return `${item.removals} of ${item.members}: ${shown}${names.length > 5 ? `, and ${names.length - 5} more` : ''}`;
  }

  function renderHeld() {
    const body = $('held-body');
    body.replaceChildren();
    const items = (state.held && state.held.items) || [];
    for (const item of items) {
      const key = `${item.sync_type}:${item.group_id}`;
      const id = `${item.sync_type}-${item.group_id}`;
      const asked = state.requested.get(key);
      const blocker = asked || (readOnly() ? 'read-only: actions run on the active daemon' : null);
      const button = (verb, label) => el('button', {
        type: 'button', id: `${verb}-${id}`, text: label, disabled: Boolean(blocker),
        onclick: () => decideHeld(item, verb),
      });
      const decided = item.decided_at
        ? `${item.decision} by ${item.decided_by} ${sinceText(item.decided_at)}` : 'waiting';
      body.append(el('tr', { id: `held-${id}`, class: 'held-row' },
        el('td', { text: item.sync_type }),
        el('td', {}, groupLink(item.group_id)),
        el('td', { class: 'held-reason', text: item.reason }),
        el('td', { class: 'held-users', text: usersText(item) }),
        el('td', { text: sinceText(item.held_at) }),
        el('td', { class: 'held-decision', text: decided }),
        el('td', {}, button('approve', 'Approve…'), button('reject', 'Reject'),
          blocker ? el('span', { class: 'reason', text: blocker }) : null)));
    }
    if (!items.length) {
      body.append(el('tr', {}, el('td', { colspan: '7', text: 'Nothing is held.' })));
    }
  }

  async function decideHeld(item, verb) {
    const key = `${item.sync_type}:${item.group_id}`;
    const what = `${item.sync_type} for group ${item.group_id}`;
    if (verb === 'approve') {
      const ok = await confirmDialog('Apply the held plan?',
        `This removes ${item.removals} of ${item.members} members from ${what} `
        + '(if the membership is unchanged; else the sync is planned again).',
        `Remove ${item.removals} members`);
      if (!ok) return;
    }
    state.requested.set(key, verb === 'approve' ? 'approval sent' : 'rejection sent');
    renderHeld();
    const result = await act('POST', `/api/held/${encodeURIComponent(item.sync_type)}/${encodeURIComponent(item.group_id)}/${verb}`,
      undefined, `${verb} of ${what}`);
    if (result.status === 200) {
      toast(verb === 'approve' ? `Approved: ${what} applies its plan now.`
        : `Rejected: ${what} stays held until its membership changes.`);
    } else {
      state.requested.delete(key);
      toast(`Not ${verb}d: ${problemText(result)}.`, 'error');
    }
    renderHeld();
    pollSoon(true);
  }

  function tickCountdowns() {
    for (const cell of document.querySelectorAll('#failing-body .next-attempt')) {
      const item = failingItems().find((i) => `${i.sync_type}:${i.group_id}` === cell.dataset.key);
      if (item) cell.textContent = nextAttemptText(item);
    }
    renderBanners();
  }

  async function openHistory(item) {
    const dialog = $('history-dialog');
    $('history-title').textContent = `Attempt history: ${item.sync_type} for group ${item.group_id}`;
    const container = $('history-body');
    container.replaceChildren(el('p', { text: 'Loading…' }));
    dialog.showModal();
    const result = await request('GET', `/api/keys/${encodeURIComponent(item.sync_type)}/${encodeURIComponent(item.group_id)}`);
    if (result.status === 429) {
      container.replaceChildren(el('p', { text: `Too many reads; try again in ${duration(Math.ceil(result.retryAfter || 1))}.` }));
      return;
    }
    if (result.status !== 200) {
      container.replaceChildren(el('p', { class: 'error', text: `Could not load the history: ${problemText(result)}` }));
      return;
    }
    const history = result.body.history || [];
    const table = el('table', { id: 'history-table' },
      el('caption', { class: 'sr-only', text: 'Attempts, newest first' }),
      el('thead', {}, el('tr', {}, ...['When', 'Attempt', 'Outcome', 'Took', 'Error'].map((h) => el('th', { scope: 'col', text: h })))));
    const rows = el('tbody');
    for (const entry of history) {
      rows.append(el('tr', {},
        el('td', { text: clockTime(entry.at) }),
        el('td', { text: entry.attempt ?? '—' }),
        el('td', { text: statusWords(entry.outcome) }),
        el('td', { text: entry.duration_ms == null ? '—' : `${entry.duration_ms} ms` }),
        el('td', { text: entry.error || '—' })));
    }
    if (!history.length) rows.append(el('tr', {}, el('td', { colspan: '5', text: 'No attempts recorded yet.' })));
    table.append(rows);
    container.replaceChildren(
      el('p', { text: `Status: ${statusWords(result.body.status)}, attempt ${result.body.attempt}. Last error: ${result.body.last_error || 'none'}` }),
      table);
  }

  // ---- actions: one Idempotency-Key per action, retried through 503 --------------------
  function blocking(text) {
    const overlay = $('blocking');
    if (text === null) {
      overlay.hidden = true;
      document.body.removeAttribute('aria-busy');
      return;
    }
    $('blocking-text').textContent = text;
    if (overlay.hidden) {
      overlay.hidden = false;
      document.body.setAttribute('aria-busy', 'true');
      overlay.tabIndex = -1;
      overlay.focus();
    }
  }

  async function act(method, path, body, what) {
    const headers = { 'Idempotency-Key': newKey() };
    const started = Date.now();
    let delay = 500;
    let tries = 0;
    try {
      for (;;) {
        const result = await request(method, path, body, headers);
        tries += 1;
        // A standby or starting daemon says so: retrying here would never help.
        const elsewhere = result.status === 503 && result.body
          && (result.body.availability === 'standby' || result.body.availability === 'starting');
        if (elsewhere) return result;
        const unavailable = result.status === 0 || result.status === 502 || result.status === 503 || result.status === 504;
        // A re-send meeting our own earlier send still at work (same Idempotency-Key).
        const ownTwin = result.status === 409 && tries > 1 && /in progress|being used/.test(problemText(result));
        if (!(unavailable || ownTwin || result.status === 429)) return result;
        if (Date.now() - started > ACTION_GIVE_UP_MS) return result;
        const wait = Math.max(delay, (result.retryAfter || 0) * 1000);
        const why = result.status === 429 ? 'too many actions at once'
          : ownTwin ? 'the first try is still at work' : 'the admin API is unavailable';
        blocking(`Retrying… ${what}: ${why}; attempt ${tries + 1} in ${duration(Math.ceil(wait / 1000))}.`);
        await sleep(wait * (0.9 + Math.random() * 0.2));
        delay = Math.min(delay * 2, 8000);
      }
    } finally {
      blocking(null);
    }
  }

  async function retryOne(item) {
    const key = `${item.sync_type}:${item.group_id}`;
    state.requested.set(key, 'retry requested');
    renderKeys();
    const result = await act('POST', `/api/keys/${encodeURIComponent(item.sync_type)}/${encodeURIComponent(item.group_id)}/retry`,
      undefined, `retry of ${item.sync_type} for group ${item.group_id}`);
    if (result.status === 202 || result.status === 200) {
      toast(`Retry of ${item.sync_type} for group ${item.group_id} queued.`);
    } else {
      state.requested.delete(key);
      toast(result.status === 409
        ? `Not retried: ${item.sync_type} for group ${item.group_id} ${problemText(result)}.`
        : `Retry failed: ${problemText(result)}.`, 'error');
    }
    renderKeys();
    pollSoon(true);
  }

  function confirmDialog(title, text, yesLabel) {
    const dialog = $('confirm-dialog');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-yes').textContent = yesLabel;
    return new Promise((resolve) => {
      const finish = (answer) => {
        $('confirm-yes').onclick = null;
        $('confirm-no').onclick = null;
        dialog.oncancel = null;
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      $('confirm-yes').onclick = () => finish(true);
      $('confirm-no').onclick = () => finish(false);
      dialog.oncancel = (event) => { event.preventDefault(); finish(false); };
      dialog.showModal();
      $('confirm-no').focus();
    });
  }

  function scope() {
    const chosen = {};
    if ($('filter-service').value) chosen.service = $('filter-service').value;
    if ($('filter-status').value) chosen.status = $('filter-status').value;
    return chosen;
  }

  async function bulkRetry() {
    const chosen = scope();
    const preview = await act('POST', '/api/bulk-retry/preview', chosen, 'bulk retry preview');
    if (preview.status !== 200) {
      toast(`Could not prepare the bulk retry: ${problemText(preview)}.`, 'error');
      return;
    }
    const p = preview.body;
    if (!p.keys) {
      toast('Nothing to retry in this scope.');
      return;
    }
    const where = chosen.service ? ` for ${serviceName(chosen.service)}` : '';
    const ok = await confirmDialog('Retry all failing syncs?',
      `This retries ${p.keys} failing syncs in ${p.groups} groups${where}, `
      + `about ${p.estimated_calls} calls to the services.`, `Retry ${p.keys} syncs`);
    if (!ok) return;
    const started = await act('POST', '/api/bulk-retry', { ...chosen, confirm: true }, 'bulk retry');
    if (started.status !== 202 && started.status !== 200) {
      toast(`Bulk retry refused: ${problemText(started)}.`, 'error');
      return;
    }
    toast(`Bulk retry started: ${p.keys} syncs.`);
    followJob(started.body.job || started.body);
  }

  function renderJob(job) {
    const section = $('jobs-section');
    section.hidden = false;
    const finished = job.done + job.failed;
    $('bulk-bar').max = Math.max(1, job.total);
    $('bulk-bar').value = finished;
    const words = job.state === 'cancelling'
      ? `Cancelling: ${job.remaining} still running finish first; ${job.cancelled} will not start.`
      : job.cancelled
      ? `Cancelled: ${job.done} done, ${job.failed} failed, ${job.cancelled} not started.`
      : `${finished} of ${job.total} finished (${job.done} done, ${job.failed} failed), ${job.remaining} to go.`;
    $('bulk-text').textContent = words;
    $('bulk-label').textContent = `Bulk retry ${job.id}: ${job.state}`;
    $('bulk-cancel-button').disabled = FINISHED_JOB_STATES.has(job.state) || job.state === 'cancelling' || job.remaining === 0;
  }

  async function followJob(job) {
    state.job = job;
    renderJob(job);
    while (state.job && state.job.id === job.id) {
      if (FINISHED_JOB_STATES.has(state.job.state) || state.job.remaining === 0) {
        toast(`Bulk retry ${state.job.state}: ${state.job.done} done, ${state.job.failed} failed`
          + (state.job.cancelled ? `, ${state.job.cancelled} cancelled.` : '.'));
        pollSoon(true);
        return;
      }
      await sleep(Math.max(JOB_POLL_MS, readsPausedFor()));
      const result = await request('GET', `/api/bulk-jobs/${encodeURIComponent(job.id)}`);
      if (result.status === 200 && state.job && state.job.id === job.id) {
        state.job = result.body;
        renderJob(state.job);
      } else if (result.status === 429) {
        pauseReads(result.retryAfter || 5);
      }
    }
  }

  async function cancelJob() {
    if (!state.job) return;
    const result = await act('POST', `/api/bulk-jobs/${encodeURIComponent(state.job.id)}/cancel`, undefined, 'cancel');
    if (result.status === 200 || result.status === 202) {
      state.job = result.body.job || result.body;
      renderJob(state.job);
      toast(`Bulk retry cancelled; ${state.job.cancelled || state.job.remaining || 0} syncs not started.`);
    } else {
      toast(`Could not cancel: ${problemText(result)}.`, 'error');
    }
  }

  async function resumeRunningJob() {
    if (readsPausedFor() > 0) return;
    const result = await request('GET', '/api/bulk-jobs');
    if (result.status !== 200) return;
    const jobs = Array.isArray(result.body) ? result.body : (result.body.items || result.body.jobs || []);
    const running = jobs.find((j) => !FINISHED_JOB_STATES.has(j.state) && j.remaining > 0);
    if (running) followJob(running);
  }

  async function resyncPreview(event) {
    event.preventDefault();
    const groupId = Number($('resync-group').value);
    if (!Number.isInteger(groupId) || groupId < 1) {
      toast('Enter the id of a group to re-sync.', 'error');
      return;
    }
    const preview = await act('POST', '/api/resync/preview', { group_id: groupId }, 're-sync preview');
    if (preview.status !== 200) {
      toast(`No re-sync preview for group ${groupId}: ${problemText(preview)}.`, 'error');
      return;
    }
    const p = preview.body;
    const ok = await confirmDialog(`Force re-sync of group ${groupId}?`,
      `This forgets what was delivered for group ${groupId} and sends everything again: `
      + `${p.overwrites} Discord permission overwrites, ${p.events} calendar events and `
      + `${p.reminders} reminders, about ${p.calls} calls to the services.`, 'Re-sync now');
    if (!ok) return;
    const result = await act('POST', '/api/resync', { group_id: groupId, confirm: true }, `re-sync of group ${groupId}`);
    if (result.status === 200 || result.status === 202) toast(`Re-sync of group ${groupId} started.`);
    else toast(`Re-sync of group ${groupId} refused: ${problemText(result)}.`, 'error');
    pollSoon(true);
  }

  async function pauseOrResume(service, pause) {
    const verb = pause ? 'pause' : 'resume';
    const reason = pause ? $('pause-reason').value.trim() : '';
    const forSeconds = pause ? Number($('pause-for').value) || null : null;
    const body = {};
    if (reason) body.reason = reason;
    if (forSeconds) body.for_seconds = forSeconds;
    const result = await act('POST', `/api/services/${encodeURIComponent(service)}/${verb}`,
      Object.keys(body).length ? body : undefined, `${verb} ${serviceName(service)}`);
    if (result.status >= 200 && result.status < 300) {
      if (pause) { $('pause-reason').value = ''; $('pause-for').value = ''; }
      const paused = forSeconds ? `paused for ${duration(forSeconds)}: it resumes by itself then`
        : 'paused: no syncs run until it is resumed';
      toast(`${serviceName(service)} ${pause ? paused : 'resumed'}.`);
    } else {
      toast(`Could not ${verb} ${serviceName(service)}: ${problemText(result)}.`, 'error');
    }
    pollSoon(true);
  }

  async function resetBreaker(service) {
    const result = await act('POST', `/api/services/${encodeURIComponent(service)}/breaker/reset`, undefined, `breaker reset for ${serviceName(service)}`);
    if (result.status >= 200 && result.status < 300) toast(`${serviceName(service)} breaker reset: calls resume.`);
    else toast(`Could not reset the breaker: ${problemText(result)}.`, 'error');
    pollSoon(true);
  }

  // ---- toasts --------------------------------------------------------------------------
  function toast(text, kind) {
    const node = el('div', { class: `toast ${kind || ''}`, role: kind === 'error' ? 'alert' : null },
      el('strong', { text: kind === 'error' ? 'Problem: ' : 'Done: ' }), text);
    $('toasts').append(node);
    setTimeout(() => node.remove(), 10000);
  }

  // ---- what other scripts of the page use (trail.js) ----------------------------------
  window.groupsync = Object.freeze({
    $, el, request, act, toast, readOk, readOnly, pollSoon, confirmDialog, problemText,
    sinceText, clockTime, duration, statusWords, serviceName, serverNow, groupLink,
    onSlowPoll: (read) => slowReaders.push(read),
  });

  // ---- start ---------------------------------------------------------------------------
  $('filters').addEventListener('submit', (event) => { event.preventDefault(); pollSoon(); });
  for (const id of ['filter-service', 'filter-status']) $(id).addEventListener('change', () => pollSoon());
  $('bulk-retry-button').addEventListener('click', bulkRetry);
  $('bulk-cancel-button').addEventListener('click', cancelJob);
  $('resync-form').addEventListener('submit', resyncPreview);
  $('history-close').addEventListener('click', () => $('history-dialog').close());
  setInterval(tickCountdowns, 1000);
  // The page's other scripts (deferred, after this one) register before the first poll.
  document.addEventListener('DOMContentLoaded', () => {
    if (readsPausedFor() > 0) restoreLastData();
    renderBanners();
    pollLoop().then(resumeRunningJob);
  });
})();
