// groupsync: one group's page (issue 23). Reads /api/groups/{id} (members, each sync
// type's key and why it waits, the attempt timeline) and /api/groups/{id}/live (desired,
// live and the difference item by item, read on demand as the sync reads it), and runs
// "Sync now": a dry run first (the items it would send), then the run, with its step
// trace. Text is only ever set through textContent. Every action carries the page's CSRF
// token and an Idempotency-Key.
(() => {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const groupId = document.querySelector('meta[name="group-id"]').content;
  let serverOffsetMs = 0;
  let stored = null;
  let live = null;

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') node.textContent = value;
      else if (key === 'class') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const serverNow = () => Date.now() + serverOffsetMs;
  const words = (text) => (text || '').replace(/_/g, ' ');

  function span(seconds) {
    if (seconds < 90) return `${seconds} s`;
    const minutes = Math.round(seconds / 60);
    if (minutes < 90) return `${minutes} min`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function clockTime(iso) {
    if (!iso) return '—';
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  // The absolute time with the relative one beside it: "… (12 min ago)", "… (in 31 s)".
  function when(iso) {
    if (!iso) return '—';
    const seconds = Math.round((Date.parse(iso) - serverNow()) / 1000);
    if (Math.abs(seconds) < 1) return `${clockTime(iso)} (now)`;
    return seconds > 0 ? `${clockTime(iso)} (in ${span(seconds)})` : `${clockTime(iso)} (${span(-seconds)} ago)`;
  }

  function problemText(result) {
    const body = result.body;
    if (body && body.detail) return typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail);
    return result.status === 0 ? 'the admin API did not answer' : `the admin API answered ${result.status}`;
  }

  async function request(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET') {
      headers['X-CSRF-Token'] = csrfToken;
      headers['Idempotency-Key'] = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
    }
    let response;
    try {
      response = await fetch(path, {
        method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      return { status: 0, body: null };
    }
    if (response.status === 401) window.location.assign('/login');
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    return { status: response.status, body: data };
  }

  function toast(text, kind) {
    const node = el('div', { class: `toast ${kind || ''}`, role: kind === 'error' ? 'alert' : null },
      el('strong', { text: kind === 'error' ? 'Problem: ' : 'Done: ' }), text);
    $('toasts').append(node);
    setTimeout(() => node.remove(), 10000);
  }

  const base = `/api/groups/${encodeURIComponent(groupId)}`;

  // ---- stored parts ---------------------------------------------------------------------
  function waitingText(key) {
    if (!key) return 'no sync yet';
    const parts = [`status: ${words(key.status)}`];
    if (key.waiting) {
      parts.push(`waiting: ${words(key.waiting.code)} — ${key.waiting.detail}`);
      if (key.waiting.until) parts.push(`may next run ${when(key.waiting.until)}`);
    } else if (key.status === 'running') {
      parts.push('running now');
    } else {
      parts.push('nothing owed');
    }
    if (key.last_success_at) parts.push(`last success ${when(key.last_success_at)}`);
    if (key.last_error) parts.push(`last error: ${key.last_error}`);
    return parts.join('; ');
  }

  async function readStored() {
    const result = await request('GET', base);
    if (result.status !== 200) {
      $('group-summary').textContent = `No page for group ${groupId}: ${problemText(result)}.`;
      $('group-summary').className = 'error';
      return false;
    }
    stored = result.body;
    serverOffsetMs = Date.parse(stored.now) - Date.now();
    const group = stored.group;
    $('group-title').textContent = group ? `Group ${group.id}: ${group.name}` : `Group ${groupId} (deleted)`;
    document.title = `groupsync: ${$('group-title').textContent}`;
    $('group-summary').textContent = group
      ? `${stored.members.length} active member(s)${group.archived ? '; archived' : ''}. `
        + `Discord guild ${group.discord_guild_id || '—'}, text channel ${group.discord_text_channel_id || '—'}, `
        + `voice channel ${group.discord_voice_channel_id || '—'}, calendar ${group.calendar_id || '—'}.`
      : 'This group no longer exists; its syncs converge it to empty.';
    const members = $('members-body');
    members.replaceChildren();
    for (const m of stored.members) {
      members.append(el('tr', { id: `member-${m.user_id}` },
        el('td', { text: m.user_id }), el('td', { text: m.display_name }),
        el('td', { text: m.email }), el('td', { text: m.discord_user_id || 'none (no Discord access)' }),
        el('td', { text: when(m.joined_at) })));
    }
    if (!stored.members.length) members.append(el('tr', {}, el('td', { colspan: '5', text: 'No active member.' })));
    const attempts = $('attempts-body');
    attempts.replaceChildren();
    for (const a of stored.attempts) {
      attempts.append(el('tr', { class: 'attempt-row' },
        el('td', { text: when(a.at) }), el('td', { text: a.sync_type }),
        el('td', { class: 'status', text: words(a.outcome) }),
        el('td', { text: a.duration_ms == null ? '—' : `${a.duration_ms} ms` }),
        el('td', { text: a.error || '—' })));
    }
    if (!stored.attempts.length) attempts.append(el('tr', {}, el('td', { colspan: '5', text: 'No attempt recorded yet.' })));
    renderTypes();
    return true;
  }

  // ---- desired, live, difference --------------------------------------------------------
  function renderTypes() {
    if (!stored) return;
    const container = $('sync-types');
    container.replaceChildren();
    for (const type of stored.sync_types) {
      const found = live && live.sync_types.find((t) => t.sync_type === type.sync_type);
      const section = el('section', { id: `type-${type.sync_type}`, class: 'sync-type', 'aria-labelledby': `type-${type.sync_type}-heading` },
        el('h3', { id: `type-${type.sync_type}-heading`, text: type.label }),
        el('p', { class: 'key-state', id: `key-${type.sync_type}`, text: waitingText(type.key) }));
      if (!type.live_readable) {
        section.append(el('p', { class: 'muted', text: 'No live state of its own to compare: it writes rows or reads answers back.' }));
      } else if (!found) {
        section.append(el('p', { class: 'muted', text: live ? 'Not read (not on the active daemon).' : 'Reading the live state…' }));
      } else {
        section.append(el('p', { class: 'live-read', text: `Live state read ${when(found.read_at)} in the ${found.lane} lane, `
          + `${found.calls.length} call(s): ${found.calls.join(', ') || 'none'}. ${found.differences} difference(s).` }));
        for (const problem of found.problems) section.append(el('p', { class: 'error', text: problem }));
        const rows = el('tbody', { id: `items-${type.sync_type}` });
        for (const item of found.items) {
          rows.append(el('tr', { class: item.in_step ? 'item in-step' : 'item differs' },
            el('th', { scope: 'row', text: item.subject }),
            el('td', { class: 'desired', text: item.desired }),
            el('td', { class: 'live', text: item.live }),
            el('td', { class: 'difference', text: item.in_step ? '✓ in step' : `≠ ${item.difference}` })));
        }
        if (!found.items.length) rows.append(el('tr', {}, el('td', { colspan: '4', text: 'Nothing wanted and nothing of ours there.' })));
        section.append(el('table', { class: 'items-table' },
          el('caption', { class: 'sr-only', text: `${type.label}: desired, live and the difference, item by item` }),
          el('thead', {}, el('tr', {}, ...['Item', 'Desired', 'Live', 'Difference'].map((h) => el('th', { scope: 'col', text: h })))),
          rows));
      }
      container.append(section);
    }
  }

  async function readLive() {
    $('live-status').textContent = 'Reading the live state…';
    const result = await request('GET', `${base}/live`);
    if (result.status === 200) {
      live = result.body;
      $('live-status').textContent = `Live state read ${when(new Date(serverNow()).toISOString())}.`;
    } else {
      live = { sync_types: [] };
      $('live-status').textContent = `The live state could not be read: ${problemText(result)}.`;
    }
    renderTypes();
  }

  // ---- Sync now: dry run, then the run and its trace -------------------------------------
  function confirmDryRun(preview) {
    const items = $('dry-run-items');
    items.replaceChildren();
    for (const type of preview.sync_types) {
      for (const item of type.items) {
        items.append(el('li', { text: `${type.label}: ${item.subject} — ${item.difference}${item.sends ? ` (${item.sends})` : ''}` }));
      }
      for (const problem of type.problems) items.append(el('li', { text: `${type.label}: ${problem}` }));
    }
    $('dry-run-text').textContent = preview.calls
      ? `Sync now would send ${preview.calls} write(s) for group ${groupId}, then record the outcome; every sync type of the group runs.`
      : `Everything read is in step: Sync now sends no write for group ${groupId}, it only runs every sync type once more.`;
    const dialog = $('dry-run-dialog');
    return new Promise((resolve) => {
      const finish = (answer) => { dialog.close(); resolve(answer); };
      $('dry-run-yes').onclick = () => finish(true);
      $('dry-run-no').onclick = () => finish(false);
      dialog.oncancel = (event) => { event.preventDefault(); finish(false); };
      dialog.showModal();
      $('dry-run-no').focus();
    });
  }

  function renderTrace(run) {
    $('trace-section').hidden = false;
    $('trace-summary').textContent = `Sync now started ${when(run.started_at)}, finished ${when(run.finished_at)}: `
      + run.sync_types.map((t) => `${t.sync_type} ${t.outcome}`).join(', ') + '.';
    const body = $('trace-body');
    body.replaceChildren();
    for (const type of run.sync_types) {
      const list = el('ol', { id: `trace-${type.sync_type}`, class: 'trace' });
      for (const step of type.steps) {
        list.append(el('li', { class: `step step-${step.kind}` },
          el('strong', { text: `${words(step.kind)}: ` }), step.text, el('span', { class: 'muted', text: ` (+${step.at_ms} ms)` })));
      }
      if (type.steps_not_shown) list.append(el('li', { text: `… ${type.steps_not_shown} more step(s) not shown` }));
      body.append(el('h3', { text: `${type.sync_type}: ${type.outcome}` }), list);
    }
    $('trace-heading').focus();
  }

  async function syncNow() {
    const button = $('sync-now');
    button.disabled = true;
    try {
      const preview = await request('POST', `${base}/sync/preview`);
      if (preview.status !== 200) {
        toast(`No dry run for group ${groupId}: ${problemText(preview)}.`, 'error');
        return;
      }
      if (!(await confirmDryRun(preview.body))) return;
      $('live-status').textContent = 'Sync now is running…';
      const run = await request('POST', `${base}/sync`, { confirm: true });
      if (run.status !== 200) {
        $('live-status').textContent = '';
        toast(`Sync now refused: ${problemText(run)}.`, 'error');
        return;
      }
      renderTrace(run.body);
      toast(`Sync now of group ${groupId} finished.`);
      await readStored();
      await readLive();
    } finally {
      button.disabled = false;
    }
  }

  // ---- finding another group -------------------------------------------------------------
  async function findGroup(event) {
    event.preventDefault();
    const text = $('group-search').value.trim();
    const results = $('group-search-results');
    if (!text) return;
    const found = await request('GET', `/api/groups?q=${encodeURIComponent(text)}`);
    if (found.status !== 200) {
      results.replaceChildren(el('p', { class: 'error', text: `Search failed: ${problemText(found)}.` }));
      return;
    }
    const items = found.body.items || [];
    if (items.length === 1) {
      window.location.assign(`/groups/${items[0].id}`);
      return;
    }
    results.replaceChildren(items.length
      ? el('ul', {}, ...items.map((g) => el('li', {}, el('a', { href: `/groups/${g.id}`, text: `Group ${g.id}: ${g.name}` }))))
      : el('p', { text: `No group matches “${text}”.` }));
  }

  $('group-search-form').addEventListener('submit', findGroup);
  $('read-live').addEventListener('click', readLive);
  $('sync-now').addEventListener('click', syncNow);
  $('trace-heading').tabIndex = -1;
  document.addEventListener('DOMContentLoaded', async () => {
    if (await readStored()) await readLive();
    else { $('read-live').disabled = true; $('sync-now').disabled = true; }
  });
})();
