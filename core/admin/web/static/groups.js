// groupsync dashboard: "Find a group" (issue 23). A group id or part of a name; one
// match opens its page, several are listed as links. Text only through textContent.
(() => {
  'use strict';

  const g = window.groupsync;
  const { $, el } = g;

  async function find(event) {
    event.preventDefault();
    const text = $('find-group').value.trim();
    const results = $('find-group-results');
    if (!text) return;
    const found = await g.request('GET', `/api/groups?q=${encodeURIComponent(text)}`);
    if (found.status !== 200) {
      results.replaceChildren(el('p', { class: 'error', text: `Search failed: ${g.problemText(found)}.` }));
      return;
    }
    const items = found.body.items || [];
    if (items.length === 1) {
      window.location.assign(`/groups/${items[0].id}`);
      return;
    }
    results.replaceChildren(items.length
      ? el('ul', {}, ...items.map((item) => el('li', {}, g.groupLink(item.id, `Group ${item.id}: ${item.name}`))))
      : el('p', { text: `No group matches “${text}”.` }));
  }

  $('find-group-form').addEventListener('submit', find);
})();
