// The explorer's Errors page: the error groups of a time range (table with trend, counts,
// first/last seen, status) and one group (title, template, backtrace, events per bucket,
// occurrences linking to their request's view, status and merge actions). Plain
// JavaScript, no build step, nothing loaded from elsewhere; the view lives in the URL, the
// admin key in sessionStorage (the same entry the logs page uses). Every string from the
// server is set as text, never parsed as HTML.
'use strict';

(() => {
  const RANGES = ['15m', '1h', '6h', '24h', '7d', '30d'];
  const DEFAULT_RANGE = '24h';
  const SORTS = ['last_seen', 'count', 'first_seen'];
  const STATUSES = ['unresolved', 'resolved', 'ignored'];
  const PAGE_SIZE = 50;
  const OCCURRENCE_PAGE = 50;
  const MAX_TEXT = 300;

  const { $, el, svgEl, pad, toLocalInput, fromLocalInput, showCustomRange } = window.Explorer;

  let view = null;
  let generation = 0;
  let groupsCursor = null;
  let occurrencesCursor = null;
  let currentGroup = null;

  // ---------------------------------------------------------------- the key and the API

  const { storedKey, signedIn, askForKey, api } = window.Explorer.session({
    onKey: () => refresh(),
  });

  // ---------------------------------------------------------------- the view <-> URL

  function readUrl() {
    const params = new URLSearchParams(location.search);
    const since = params.get('since');
    return {
      range: since ? 'custom' : RANGES.includes(params.get('range')) ? params.get('range') : DEFAULT_RANGE,
      since: since || null,
      until: params.get('until') || null,
      service: params.get('service') || '',
      status: STATUSES.includes(params.get('status')) ? params.get('status') : '',
      q: params.get('q') || '',
      sort: SORTS.includes(params.get('sort')) ? params.get('sort') : 'last_seen',
      group: params.get('group') || '',
    };
  }

  function setRangeParams(params, v, presetKey) {
    if (v.range === 'custom') {
      if (v.since) params.set('since', v.since);
      if (v.until) params.set('until', v.until);
    } else {
      params.set(presetKey, v.range);
    }
  }

  function urlFor(v) {
    const params = new URLSearchParams();
    setRangeParams(params, v, 'range');
    if (v.service) params.set('service', v.service);
    if (v.status) params.set('status', v.status);
    if (v.q) params.set('q', v.q);
    if (v.sort !== 'last_seen') params.set('sort', v.sort);
    if (v.group) params.set('group', v.group);
    return `/errors?${params}`;
  }

  function navigate(v) {
    history.pushState(null, '', urlFor(v));
    refresh();
  }

  function fillForm(v) {
    $('range').value = v.range;
    $('since').value = toLocalInput(v.since);
    $('until').value = toLocalInput(v.until);
    showCustomRange(v.range === 'custom');
    $('service').value = v.service;
    $('status').value = v.status;
    $('q').value = v.q;
    $('sort').value = v.sort;
  }

  function readForm() {
    const range = $('range').value;
    return {
      range,
      since: range === 'custom' ? fromLocalInput($('since').value) : null,
      until: range === 'custom' ? fromLocalInput($('until').value) : null,
      service: $('service').value.trim(),
      status: $('status').value,
      q: $('q').value.trim(),
      sort: $('sort').value,
      group: '',
    };
  }

  // ---------------------------------------------------------------- formatting

  function formatTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  /** "3 min ago"-style text for a timestamp, with the exact time as its title. */
  function timeCell(iso) {
    const cell = el('td', 'time', ago(iso));
    cell.title = iso ? `${formatTime(iso)} (${iso})` : '';
    return cell;
  }

  function ago(iso) {
    const t = new Date(iso).getTime();
    if (!iso || Number.isNaN(t)) return '—';
    const seconds = Math.max(0, (Date.now() - t) / 1000);
    if (seconds < 60) return 'just now';
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  /** Short display text for any value (strings cut to MAX_TEXT characters). */
  function shortText(value, max = MAX_TEXT) {
    if (value === null || value === undefined) return '';
    const text = typeof value === 'string' ? value : String(value);
    const chars = [...text.slice(0, max * 2)];
    return chars.length > max || text.length > max * 2 ? `${chars.slice(0, max - 1).join('')}…` : text;
  }

  const number = (n) => (typeof n === 'number' && Number.isFinite(n) ? n.toLocaleString() : '—');

  function badge(kind, text, title) {
    const node = el('span', `badge badge-${kind}`, text);
    if (title) node.title = title;
    return node;
  }

  /** The status badges of a group: its status, and "new" / "regressed" when they apply. */
  function badges(group) {
    const list = [];
    const status = STATUSES.includes(group.status) ? group.status : 'unresolved';
    list.push(badge(status, status));
    if (group.new_in_range) list.push(badge('new', 'new', 'first seen in this time range'));
    if (group.regressed_at) list.push(badge('regressed', 'regressed', `seen again after it was resolved, ${formatTime(group.regressed_at)}`));
    return list;
  }

  function showError(message) {
    $('error').textContent = message || '';
    $('error').hidden = !message;
  }

  // ---------------------------------------------------------------- charts

  /** A small area sparkline of `[{t, count}]`. */
  function sparkline(points) {
    const width = 120;
    const height = 28;
    const svg = svgEl('svg', { class: 'sparkline', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img' });
    const counts = (Array.isArray(points) ? points : []).map((p) => (typeof p.count === 'number' ? p.count : 0));
    const total = counts.reduce((a, b) => a + b, 0);
    svg.setAttribute('aria-label', `${total} events in range`);
    if (counts.length < 2) {
      svg.append(svgEl('line', { class: 'spark-base', x1: 0, y1: height - 1, x2: width, y2: height - 1 }));
      return svg;
    }
    const max = Math.max(1, ...counts);
    const step = width / (counts.length - 1);
    const coords = counts.map((c, i) => [i * step, height - 1 - (c / max) * (height - 3)]);
    const line = coords.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
    svg.append(svgEl('polygon', { class: 'spark-area', points: `0,${height} ${line} ${width},${height}` }));
    svg.append(svgEl('polyline', { class: 'spark-line', points: line }));
    return svg;
  }

  function renderBuckets(buckets) {
    const svg = $('buckets');
    svg.replaceChildren();
    const list = Array.isArray(buckets) ? buckets : [];
    const width = Math.max(svg.clientWidth || 800, 200);
    const height = 110;
    const axis = 16;
    const chart = height - axis;
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    const total = list.reduce((sum, b) => sum + (typeof b.count === 'number' ? b.count : 0), 0);
    $('buckets-caption').textContent = `${total.toLocaleString()} events in range`;
    if (!list.length) return;
    const max = Math.max(1, ...list.map((b) => b.count || 0));
    const slot = width / list.length;
    const barWidth = Math.max(1, slot - Math.min(2, slot * 0.2));
    list.forEach((bucket, i) => {
      const h = ((bucket.count || 0) / max) * (chart - 4);
      const rect = svgEl('rect', { class: 'bucket', x: i * slot + (slot - barWidth) / 2, y: chart - h, width: barWidth, height: h });
      const title = svgEl('title');
      title.textContent = `${formatTime(bucket.t)}: ${bucket.count || 0} events`;
      const group = svgEl('g');
      group.append(svgEl('rect', { class: 'hit', x: i * slot, y: 0, width: slot, height: chart }), rect, title);
      svg.append(group);
    });
    svg.append(svgEl('line', { class: 'baseline', x1: 0, y1: chart + 0.5, x2: width, y2: chart + 0.5 }));
    for (const i of new Set([0, list.length - 1])) {
      const text = svgEl('text', { class: 'axis', x: i === 0 ? 0 : width, y: height - 3, 'text-anchor': i === 0 ? 'start' : 'end' });
      text.textContent = formatTime(list[i].t).slice(5, 16);
      svg.append(text);
    }
  }

  // ---------------------------------------------------------------- the list

  function listParams(v) {
    const params = new URLSearchParams();
    setRangeParams(params, v, 'since');
    if (v.service) params.set('service', v.service);
    if (v.status) params.set('status', v.status);
    if (v.q) params.set('q', v.q);
    params.set('sort', v.sort);
    params.set('limit', String(PAGE_SIZE));
    return params;
  }

  function groupRow(group) {
    const row = el('tr', 'group-row');
    row.dataset.id = String(group.id);
    const title = el('td', 'group-cell');
    const link = el('a', 'group-link', shortText(group.title || group.exception_class || group.message_template || '(untitled)'));
    link.href = urlFor({ ...view, group: String(group.id) });
    title.append(link);
    if (group.message_template && group.title !== group.message_template) {
      title.append(el('div', 'template muted', shortText(group.message_template, 160)));
    }
    const service = el('td', 'service', shortText(group.service, 80));
    service.title = String(group.service || '');
    const trend = el('td', 'trend');
    trend.append(sparkline(group.trend));
    const count = el('td', 'count');
    count.append(el('span', 'count-range', number(group.count_in_range)));
    count.append(el('span', 'count-total muted', ` / ${number(group.count)}`));
    count.title = `${number(group.count_in_range)} in range, ${number(group.count)} in all`;
    const status = el('td', 'status');
    status.append(...badges(group));
    row.append(title, service, trend, count, timeCell(group.first_seen), timeCell(group.last_seen), status);
    return row;
  }

  async function showList(v, token) {
    $('list-view').hidden = false;
    $('group-view').hidden = true;
    $('summary').textContent = 'Loading…';
    const page = await api('/api/v1/errors', listParams(v));
    if (token !== generation) return;
    const groups = Array.isArray(page.groups) ? page.groups : [];
    $('group-rows').replaceChildren(...groups.map(groupRow));
    groupsCursor = page.next_cursor || null;
    $('more-groups').hidden = !groupsCursor;
    summarizeList();
  }

  function summarizeList() {
    const shown = $('group-rows').querySelectorAll('tr.group-row').length;
    $('summary').textContent = shown
      ? `${shown.toLocaleString()} ${shown === 1 ? 'error group' : 'error groups'}${groupsCursor ? ' · more available' : ''}`
      : 'No errors match these filters.';
  }

  async function loadMoreGroups() {
    if (!groupsCursor) return;
    const params = listParams(view);
    params.set('cursor', groupsCursor);
    $('more-groups').disabled = true;
    try {
      const page = await api('/api/v1/errors', params);
      $('group-rows').append(...(page.groups || []).map(groupRow));
      groupsCursor = page.next_cursor || null;
      $('more-groups').hidden = !groupsCursor;
      summarizeList();
    } catch (error) {
      showError(error.message);
    } finally {
      $('more-groups').disabled = false;
    }
  }

  // ---------------------------------------------------------------- one group

  const groupPath = (id) => `/api/v1/errors/${encodeURIComponent(id)}`;

  function fact(label, value) {
    const wrap = el('div', 'fact-item');
    wrap.append(el('dt', null, label), el('dd', null, value));
    return wrap;
  }

  function renderGroup(group) {
    currentGroup = group;
    document.title = `${shortText(group.title, 80)} · Errors`;
    $('group-title').textContent = shortText(group.title || group.exception_class || '(untitled)', 500);
    $('group-badges').replaceChildren(...badges(group));
    $('group-template').textContent = shortText(group.message_template || '', 1000);
    $('group-message').textContent = shortText(group.exception_message || '', 1000);
    $('group-message').closest('p').hidden = !group.exception_message;
    const affected = group.affected || {};
    $('group-facts').replaceChildren(
      fact('Service', shortText(group.service, 120)),
      fact('Events in range', number(group.count_in_range)),
      fact('Events in all', number(group.count)),
      fact('First seen', formatTime(group.first_seen)),
      fact('Last seen', formatTime(group.last_seen)),
      fact('Requests affected', number(affected.request_ids)),
      fact('Users affected', number(affected.user_ids)),
      fact('Fingerprint', shortText(group.fingerprint, 80)),
      fact('Group id', shortText(group.id, 80)),
    );
    const status = STATUSES.includes(group.status) ? group.status : 'unresolved';
    $('resolve-button').hidden = status === 'resolved';
    $('reopen-button').hidden = status === 'unresolved';
    $('ignore-button').closest('.ignore-box').hidden = status === 'ignored';
    renderBuckets(group.buckets);
    renderBacktrace(group.backtrace);
  }

  function renderBacktrace(frames) {
    const list = Array.isArray(frames) ? frames : [];
    const appOnly = $('app-only').checked;
    const items = list
      .filter((f) => f && (!appOnly || f.in_app))
      .map((f) => {
        const item = el('li', f.in_app ? 'frame in-app' : 'frame');
        if (f.in_app) item.append(el('span', 'frame-tag', 'app'));
        item.append(el('code', 'frame-text', shortText(f.frame, 600)));
        return item;
      });
    $('backtrace').replaceChildren(...items);
    if (!items.length) $('backtrace').append(el('li', 'muted', list.length ? 'No app frames.' : 'No backtrace was sent with this error.'));
  }

  /** The request ids an occurrence links to: its own request's, and the one that enqueued its job. */
  function requestIdsOf(log) {
    const metadata = log && typeof log.metadata === 'object' && log.metadata ? log.metadata : {};
    const ids = [metadata.request_id, metadata.parent_request_id, metadata.enqueued_by_request_id]
      .filter((id) => typeof id === 'string' && id);
    return [...new Set(ids)];
  }

  /** The logs page's view of everything a request caused. */
  function requestUrl(id) {
    const params = new URLSearchParams({ range: '30d', request_id: id });
    return `/?${params}`;
  }

  function levelClass(level) {
    const name = String(level || '').toUpperCase();
    if (name === 'FATAL' || name === 'CRITICAL') return 'fatal';
    if (name === 'ERROR') return 'error';
    if (name === 'WARN' || name === 'WARNING') return 'warn';
    if (name === 'INFO') return 'info';
    return 'debug';
  }

  function occurrenceRow(log) {
    const row = el('tr', 'occurrence-row');
    row.dataset.id = String(log.id);
    const time = el('td', 'time', formatTime(log.timestamp));
    time.title = String(log.timestamp || '');
    const level = el('td', 'level-cell');
    level.append(el('span', `level level-${levelClass(log.level)}`, shortText(log.level, 12)));
    const service = el('td', 'service', shortText(log.service, 80));
    const message = el('td', 'message', shortText(log.message, 500));
    const links = el('td', 'request-links');
    for (const id of requestIdsOf(log)) {
      const link = el('a', 'request-link', shortText(id, 40));
      link.href = requestUrl(id);
      link.title = `Everything request ${id} and its jobs logged`;
      links.append(link);
    }
    if (!links.childNodes.length) links.append(el('span', 'muted', '—'));
    row.append(time, level, service, message, links);
    return row;
  }

  async function loadOccurrences(id, cursor) {
    const params = new URLSearchParams({ limit: String(OCCURRENCE_PAGE) });
    if (cursor) params.set('cursor', cursor);
    const page = await api(`${groupPath(id)}/occurrences`, params);
    const logs = Array.isArray(page.logs) ? page.logs : [];
    if (cursor) $('occurrence-rows').append(...logs.map(occurrenceRow));
    else $('occurrence-rows').replaceChildren(...logs.map(occurrenceRow));
    occurrencesCursor = page.next_cursor || null;
    $('more-occurrences').hidden = !occurrencesCursor;
    const shown = $('occurrence-rows').querySelectorAll('tr.occurrence-row').length;
    $('occurrences-summary').textContent = `${shown.toLocaleString()} shown, newest first${occurrencesCursor ? ' · older ones available' : ''}`;
  }

  async function showGroup(v, token) {
    $('list-view').hidden = true;
    $('group-view').hidden = false;
    $('back-link').href = urlFor({ ...v, group: '' });
    const params = new URLSearchParams();
    setRangeParams(params, v, 'since');
    const [group] = await Promise.all([
      api(groupPath(v.group), params),
      loadOccurrences(v.group, null),
    ]);
    if (token !== generation) return;
    if (group.merged_into !== null && group.merged_into !== undefined) {
      // A stale link to a group merged into another: show where its events went.
      history.replaceState(null, '', urlFor({ ...v, group: String(group.merged_into) }));
      refresh();
      return;
    }
    renderGroup(group);
  }

  async function changeStatus(status) {
    if (!currentGroup) return;
    const body = { status };
    if (status === 'ignored') {
      const choice = $('ignore-until').value;
      if (choice.startsWith('count:')) body.ignore_until = { count: Number(choice.slice(6)) };
      if (choice.startsWith('time:')) {
        const hours = choice.endsWith('7d') ? 24 * 7 : 24;
        body.ignore_until = { time: new Date(Date.now() + hours * 3600 * 1000).toISOString() };
      }
    }
    await act(() => api(`${groupPath(currentGroup.id)}/status`, null, body));
  }

  async function merge(event) {
    event.preventDefault();
    const into = $('merge-into').value.trim();
    if (!currentGroup || !into) return;
    const target = /^\d+$/.test(into) ? Number(into) : into;
    if (!window.confirm(`Merge this group into group ${into}? Its events will count there.`)) return;
    await act(async () => {
      await api(`${groupPath(currentGroup.id)}/merge`, null, { into: target });
      navigate({ ...view, group: into });
    }, false);
  }

  async function act(action, reload = true) {
    const buttons = document.querySelectorAll('.group-actions button');
    for (const button of buttons) button.disabled = true;
    try {
      showError('');
      await action();
      if (reload) await refresh();
    } catch (error) {
      showError(error.message);
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- refresh and wiring

  async function refresh() {
    view = readUrl();
    fillForm(view);
    if (!(await signedIn())) {
      askForKey();
      return;
    }
    $('forget-key').hidden = !storedKey();
    const token = ++generation;
    showError('');
    try {
      if (view.group) await showGroup(view, token);
      else await showList(view, token);
    } catch (error) {
      if (token !== generation) return;
      $('summary').textContent = '';
      showError(error.message);
    }
  }

  function init() {
    $('range').addEventListener('change', () => {
      const custom = $('range').value === 'custom';
      showCustomRange(custom);
      if (custom && !$('since').value) {
        const now = new Date();
        $('since').value = toLocalInput(new Date(now.getTime() - 24 * 3600 * 1000).toISOString());
        $('until').value = toLocalInput(now.toISOString());
      }
    });
    $('filters').addEventListener('submit', (event) => {
      event.preventDefault();
      navigate(readForm());
    });
    $('sort').addEventListener('change', () => navigate({ ...readForm(), group: '' }));
    $('more-groups').addEventListener('click', loadMoreGroups);
    $('more-occurrences').addEventListener('click', async () => {
      if (!occurrencesCursor || !currentGroup) return;
      $('more-occurrences').disabled = true;
      try {
        await loadOccurrences(currentGroup.id, occurrencesCursor);
      } catch (error) {
        showError(error.message);
      } finally {
        $('more-occurrences').disabled = false;
      }
    });
    $('resolve-button').addEventListener('click', () => changeStatus('resolved'));
    $('reopen-button').addEventListener('click', () => changeStatus('unresolved'));
    $('ignore-button').addEventListener('click', () => changeStatus('ignored'));
    $('merge-form').addEventListener('submit', merge);
    $('app-only').addEventListener('change', () => currentGroup && renderBacktrace(currentGroup.backtrace));
    window.addEventListener('popstate', refresh);
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => currentGroup && !$('group-view').hidden && renderBuckets(currentGroup.buckets), 200);
    });
    refresh();
  }

  document.addEventListener('DOMContentLoaded', init);
})();
