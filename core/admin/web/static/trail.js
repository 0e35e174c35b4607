// groupsync dashboard, the operator's trail and the needs-attention set (issue 23):
// - "Needs attention": its own view of /api/attention, searchable, with "new since you
//   last looked" (the moment is kept in localStorage, per browser) and an acknowledgement
//   with a note that every operator sees until the key next succeeds;
// - "Operator actions": /api/audit, who did what and when, with the result;
// - "Bulk jobs": recent bulk retries, finished and cancelled ones with their outcome.
// These are read on the page's slower beat (window.groupsync.onSlowPoll), so a poll stays
// mostly three reads. Text is only ever set through textContent.
(() => {
  'use strict';

  const g = window.groupsync;
  const { $, el } = g;
  const SEEN_KEY = 'groupsync.attentionSeenAt';
  const ACK_BY_KEY = 'groupsync.ackBy';

  const trail = {
    attention: null,
    audit: null,
    jobs: null,
    search: '',
    acking: null, // the item whose acknowledgement dialog is open
  };

  // "12:03:04 PM (in 3 min)" or "(12 min ago)": relative times beside absolute ones.
  const when = (iso) => g.sinceText(iso);

  // ---- needs attention -----------------------------------------------------------------
  function seenAt() {
    return localStorage.getItem(SEEN_KEY) || null;
  }

  async function readAttention() {
    const params = new URLSearchParams({ limit: '100' });
    if (trail.search) params.set('q', trail.search);
    const seen = seenAt();
    if (seen) params.set('since', seen);
    const result = await g.request('GET', `/api/attention?${params}`);
    if (!g.readOk(result)) return;
    trail.attention = result.body;
    // A first visit: what is here now is "seen"; the next visit counts what is new.
    if (!seen) localStorage.setItem(SEEN_KEY, new Date(g.serverNow()).toISOString());
    renderAttention();
  }

  function ackText(ack) {
    if (!ack) return 'not yet';
    return `by ${ack.by} ${when(ack.at)}: ${ack.note}`;
  }

  function summaryText(found) {
    const counts = found.counts || {};
    const parts = [`${counts.total || 0} need attention, ${counts.acknowledged || 0} acknowledged`];
    if (found.since && counts.new_since !== null && counts.new_since !== undefined) {
      parts.push(`${counts.new_since} new since you last looked (${when(found.since)})`);
    }
    let text = `${parts.join('; ')}.`;
    if (found.search) {
      text += ` ${found.total} match “${found.search}”${found.total > found.items.length ? `, ${found.items.length} shown` : ''}.`;
    }
    return text;
  }

  function renderAttention() {
    const found = trail.attention;
    if (!found) return;
    $('attention-summary').textContent = summaryText(found);
    const body = $('attention-body');
    const focused = document.activeElement && document.activeElement.id;
    body.replaceChildren();
    for (const item of found.items || []) {
      const id = `${item.sync_type}-${item.group_id}`;
      const what = `${item.sync_type} for group ${item.group_id}`;
      const blocker = g.readOnly() ? 'read-only: actions run on the active daemon' : null;
      const button = el('button', {
        type: 'button', id: `ack-${id}`, class: 'ack-button',
        text: item.acknowledged ? 'Change note…' : 'Acknowledge…',
        disabled: Boolean(blocker),
        'aria-label': `${item.acknowledged ? 'Change the note on' : 'Acknowledge'} ${what}`,
        'aria-describedby': blocker ? `ack-reason-${id}` : null,
        onclick: () => openAck(item),
      });
      body.append(el('tr', { id: `attention-${id}`, class: item.new ? 'attention-row new' : 'attention-row' },
        el('td', {}, item.new ? el('span', { class: 'new-mark', text: 'New' }) : null, item.sync_type),
        el('td', {}, g.groupLink(item.group_id, item.group_name ? `${item.group_id} (${item.group_name})` : String(item.group_id))),
        el('td', { text: when(item.attention_since) }),
        el('td', { class: 'attention-error', text: item.last_error || '—' }),
        el('td', { class: 'ack-text', text: ackText(item.acknowledged) }),
        el('td', {}, button, blocker ? el('span', { class: 'reason', id: `ack-reason-${id}`, text: blocker }) : null)));
    }
    if (!(found.items || []).length) {
      body.append(el('tr', {}, el('td', {
        colspan: '6', text: found.search ? `Nothing needing attention matches “${found.search}”.` : 'Nothing needs attention.',
      })));
    }
    if (focused && focused.startsWith('ack-')) {
      const again = $(focused);
      if (again && !again.disabled) again.focus();
    }
  }

  function openAck(item) {
    trail.acking = item;
    $('ack-title').textContent = `Acknowledge ${item.sync_type} for group ${item.group_id}`;
    $('ack-what').textContent = item.last_error || '';
    $('ack-note').value = item.acknowledged ? item.acknowledged.note : '';
    $('ack-dialog').showModal();
    $('ack-note').focus();
  }

  async function saveAck(event) {
    event.preventDefault();
    const item = trail.acking;
    const note = $('ack-note').value.trim();
    if (!item) return;
    if (!note) {
      g.toast('Write a note: what is being done about it.', 'error');
      $('ack-note').focus();
      return;
    }
    $('ack-dialog').close();
    trail.acking = null;
    const by = $('ack-by').value.trim();
    localStorage.setItem(ACK_BY_KEY, by);
    const what = `${item.sync_type} for group ${item.group_id}`;
    const result = await g.act('POST',
      `/api/attention/${encodeURIComponent(item.sync_type)}/${encodeURIComponent(item.group_id)}/ack`,
      by ? { note, by } : { note }, `acknowledgement of ${what}`);
    if (result.status === 200) g.toast(`Acknowledged: ${what}.`);
    else g.toast(`Not acknowledged: ${g.problemText(result)}.`, 'error');
    g.pollSoon(true);
  }

  // ---- operator actions ----------------------------------------------------------------
  const ACTION_WORDS = {
    retry: 'Retry now', bulk_retry: 'Retry all failing', bulk_cancel: 'Cancel bulk retry',
    resync: 'Force re-sync', pause: 'Pause', resume: 'Resume', breaker_reset: 'Reset breaker',
    approve: 'Approve held sync', reject: 'Reject held sync', acknowledge: 'Acknowledge',
    sync_now: 'Sync now',
  };

  function scopeText(scope) {
    if (!scope) return '—';
    if (scope.sync_type && scope.group_id) return `${scope.sync_type} for group ${scope.group_id}`;
    if (scope.group_id) return `group ${scope.group_id}`;
    if (scope.job) return `bulk job ${scope.job}`;
    const parts = [];
    if (scope.service) parts.push(g.serviceName(scope.service));
    if (scope.status) parts.push(g.statusWords(scope.status));
    return parts.join(', ') || 'every failing sync';
  }

  async function readAudit() {
    const result = await g.request('GET', '/api/audit?limit=30');
    if (!g.readOk(result)) return;
    trail.audit = result.body.items || [];
    const body = $('audit-body');
    body.replaceChildren();
    for (const entry of trail.audit) {
      body.append(el('tr', { id: `audit-${entry.id}`, class: 'audit-row' },
        el('td', { text: when(entry.at) }),
        el('td', { text: entry.who }),
        el('td', { class: 'audit-action', text: ACTION_WORDS[entry.action] || g.statusWords(entry.action) }),
        el('td', { text: scopeText(entry.scope) }),
        el('td', { class: 'audit-result', text: entry.detail ? `${entry.outcome}: ${entry.detail}` : entry.outcome })));
    }
    if (!trail.audit.length) body.append(el('tr', {}, el('td', { colspan: '5', text: 'No operator action yet.' })));
  }

  // ---- bulk jobs -----------------------------------------------------------------------
  function outcomeText(job) {
    const counts = `${job.done} done, ${job.failed} failed`;
    if (job.state === 'cancelled') return `Cancelled: ${counts}, ${job.cancelled} not started.`;
    if (job.state === 'cancelling') return `Cancelling: ${counts}; ${job.remaining} still running.`;
    if (job.state === 'done') {
      return job.failed ? `Finished with failures: ${counts} of ${job.total}.` : `Finished: all ${job.total} done.`;
    }
    return `${g.statusWords(job.state)}: ${counts}, ${job.remaining} to go.`;
  }

  async function readJobs() {
    const result = await g.request('GET', '/api/bulk-jobs');
    if (!g.readOk(result)) return;
    trail.jobs = result.body.items || [];
    const body = $('finished-jobs-body');
    body.replaceChildren();
    for (const job of trail.jobs.slice(0, 10)) {
      body.append(el('tr', { id: `finished-job-${job.id}`, class: 'finished-job-row' },
        el('th', { scope: 'row', text: `Bulk retry ${job.id}` }),
        el('td', { class: 'job-outcome', text: outcomeText(job) }),
        el('td', { text: scopeText(job.scope) }),
        el('td', { text: `${when(job.created_at)} by ${job.requested_by}` }),
        el('td', { text: job.finished_at ? when(job.finished_at) : 'not yet' })));
    }
    if (!trail.jobs.length) body.append(el('tr', {}, el('td', { colspan: '5', text: 'No bulk job yet.' })));
  }

  // ---- start ---------------------------------------------------------------------------
  $('attention-search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    trail.search = $('attention-search').value.trim();
    g.pollSoon(true);
  });
  $('attention-clear').addEventListener('click', () => {
    $('attention-search').value = '';
    trail.search = '';
    g.pollSoon(true);
  });
  $('attention-seen').addEventListener('click', () => {
    localStorage.setItem(SEEN_KEY, new Date(g.serverNow()).toISOString());
    g.pollSoon(true);
  });
  $('ack-form').addEventListener('submit', saveAck);
  $('ack-cancel').addEventListener('click', () => { trail.acking = null; $('ack-dialog').close(); });
  $('ack-by').value = localStorage.getItem(ACK_BY_KEY) || '';
  g.onSlowPoll(readAttention);
  g.onSlowPoll(readAudit);
  g.onSlowPoll(readJobs);
})();
