// groupsync dashboard, history kept in SQL (issue 23): the charts of /api/history over
// 1 h, 24 h or 14 d. The server renders each chart as SVG (chart=svg); the page shows it
// as an image (no script in it, no network beyond this API) with the server's one-line
// summary as its text alternative and a table of the points beneath. One read, on load,
// on a range change and every few slow polls (the points are minutes apart).
(() => {
  'use strict';

  const g = window.groupsync;
  const { $, el } = g;
  const RANGE_KEY = 'groupsync.historyRange';
  const EVERY = 5; // slow polls between two reads of the charts
  const history = { range: sessionStorage.getItem(RANGE_KEY) || '1h', slow: 0 };

  function stepText(seconds) {
    return seconds < 10 ? `${Math.round(seconds * 100) / 100} s` : g.duration(Math.round(seconds));
  }

  function pointTime(iso, stepSeconds) {
    const at = new Date(iso);
    return stepSeconds < 60 || stepSeconds >= 3600 ? at.toLocaleString() : at.toLocaleTimeString();
  }

  function valueText(value, unit) {
    if (value === null || value === undefined) return '—';
    return unit === 'ms' ? `${Math.round(value)} ms` : String(Math.round(value * 100) / 100);
  }

  function table(series, stepSeconds) {
    // Only the points where something happened: a day of empty minutes says nothing.
    const points = series.points.filter((p) => Object.values(p.values).some((v) => v));
    const head = el('tr', {}, el('th', { scope: 'col', text: 'From' }),
      ...series.labels.map((label) => el('th', { scope: 'col', text: label })));
    const rows = points.map((p) => el('tr', {},
      el('th', { scope: 'row', text: pointTime(p.at, stepSeconds) }),
      ...series.labels.map((label) => el('td', { text: valueText(p.values[label], series.unit) }))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: String(series.labels.length + 1), text: 'No data in this range yet.' })));
    return el('table', { id: `chart-${series.name}-table`, class: 'chart-table' },
      el('caption', { text: `${series.title} (${series.unit}) by ${series.label_names}: the points with data` }),
      el('thead', {}, head), el('tbody', {}, ...rows));
  }

  function figure(series, stepSeconds) {
    const image = el('img', {
      id: `chart-${series.name}`, class: 'chart-image', alt: series.summary,
      src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(series.svg)}`,
    });
    return el('figure', { class: 'chart', id: `chart-${series.name}-figure` },
      el('figcaption', {}, el('strong', { text: series.title }), ` — ${series.summary}`),
      image,
      el('details', {}, el('summary', { text: `Table of ${series.title.toLowerCase()}` }),
        table(series, stepSeconds)));
  }

  async function readCharts(force) {
    if (!force && history.slow++ % EVERY !== 0) return;
    const params = new URLSearchParams({ range: history.range, chart: 'svg' });
    const result = await g.request('GET', `/api/history?${params}`);
    if (!g.readOk(result)) return;
    const body = result.body;
    const from = new Date(body.from).toLocaleString();
    $('charts-summary').textContent = `From ${from}, a point every ${stepText(body.step_seconds)}`
      + `${body.time_scale !== 1 ? ` (time scaled by ${body.time_scale})` : ''}.`;
    $('charts').replaceChildren(...body.series.map((s) => figure(s, body.step_seconds)));
  }

  function choose(range) {
    history.range = range;
    sessionStorage.setItem(RANGE_KEY, range);
    for (const button of document.querySelectorAll('.range-button')) {
      button.setAttribute('aria-pressed', String(button.dataset.range === range));
    }
    readCharts(true);
  }

  for (const button of document.querySelectorAll('.range-button')) {
    button.addEventListener('click', () => choose(button.dataset.range));
    button.setAttribute('aria-pressed', String(button.dataset.range === history.range));
  }
  g.onSlowPoll(() => readCharts(false));
})();
