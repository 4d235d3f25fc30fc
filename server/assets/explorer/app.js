// The log explorer: plain JavaScript, no build step, nothing loaded from elsewhere.
// It owns the page's state (kept in the URL so a view can be shared), talks only to
// this server's read API with the admin key, and keeps that key in sessionStorage
// (this tab's session) and nowhere else: never in the URL, never in localStorage.
'use strict';

(() => {
  const RANGES = ['15m', '1h', '6h', '24h', '7d', '30d'];
  const DEFAULT_RANGE = '1h';
  const PAGE_SIZE = 100;
  const MAX_LIVE_ROWS = 2000;
  /** The request view reads at most this many entries of one request. */
  const MAX_REQUEST_ENTRIES = 5000;
  // Severity groups, lowest first; each lists the stored spellings it covers.
  const SEVERITIES = [
    { name: 'DEBUG', css: 'debug', spellings: ['DEBUG'] },
    { name: 'INFO', css: 'info', spellings: ['INFO'] },
    { name: 'WARN', css: 'warn', spellings: ['WARN', 'WARNING'] },
    { name: 'ERROR', css: 'error', spellings: ['ERROR'] },
    { name: 'FATAL', css: 'fatal', spellings: ['FATAL', 'CRITICAL'] },
  ];

  const { $, el, svgEl, pad, toLocalInput, fromLocalInput, showCustomRange } = window.Explorer;

  let view = null; // the current filters, as read from the URL
  let nextCursor = null;
  let live = null; // { controller, lastEventId }
  let searchGeneration = 0;
  let lastHistogram = null;
  let requestTruncated = false;

  // ---------------------------------------------------------------- the key and the API

  const { storedKey, signedIn, authHeaders, askForKey, forgetKey, api } = window.Explorer.session({
    onForget: () => stopLive(),
    onKey: () => refresh(),
  });

  // ---------------------------------------------------------------- the view <-> URL

  function parseMeta(text) {
    const pairs = [];
    const pattern = /([^\s=]+)=("([^"]*)"|\S*)/g;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      pairs.push([match[1], match[3] !== undefined ? match[3] : match[2]]);
    }
    return pairs;
  }

  const formatMeta = (pairs) =>
    pairs.map(([key, value]) => (/[\s"]/.test(value) ? `${key}="${value}"` : `${key}=${value}`)).join(' ');

  const splitList = (text) => (text || '').split(',').map((s) => s.trim()).filter(Boolean);

  function readUrl() {
    const params = new URLSearchParams(location.search);
    const until = params.get('until');
    // `since=1h` (as the API and saved searches write a preset) is that preset.
    const preset = !until && RANGES.includes(params.get('since')) ? params.get('since') : null;
    const since = preset ? null : params.get('since');
    const range = preset || (since ? 'custom' : RANGES.includes(params.get('range')) ? params.get('range') : DEFAULT_RANGE);
    return {
      range,
      since: since || null,
      until: until || null,
      services: params.getAll('service').flatMap(splitList),
      levels: params.getAll('level').flatMap(splitList).map((l) => l.toUpperCase()),
      q: params.get('q') || '',
      meta: [...params.entries()].filter(([k]) => k.startsWith('meta.')).map(([k, v]) => [k.slice(5), v]),
      request: params.get('request_id') || '',
      trace: params.get('trace_id') || '',
      live: params.get('live') === '1',
    };
  }

  /** The filters a view shares between its page URL and its API calls. */
  function setFilterParams(params, v) {
    if (v.services.length) params.set('service', v.services.join(','));
    if (v.levels.length) params.set('level', v.levels.join(','));
    if (v.q) params.set('q', v.q);
    for (const [key, value] of v.meta) params.append(`meta.${key}`, value);
    if (v.request) params.set('request_id', v.request);
    if (v.trace) params.set('trace_id', v.trace);
  }

  /** Sets `since`/`until` for a custom range, or the preset under `presetKey`. */
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
    setFilterParams(params, v);
    if (v.live) params.set('live', '1');
    return `${location.pathname}?${params}`;
  }

  /** The API's filter parameters for a view; `withTime` false for the live tail. */
  function apiParams(v, withTime = true) {
    const params = new URLSearchParams();
    if (withTime) setRangeParams(params, v, 'since');
    setFilterParams(params, v);
    return params;
  }

  function fillForm(v) {
    $('range').value = v.range;
    $('since').value = toLocalInput(v.since);
    $('until').value = toLocalInput(v.until);
    showCustomRange(v.range === 'custom');
    $('service').value = v.services.join(', ');
    for (const box of document.querySelectorAll('input[name="level"]')) box.checked = v.levels.includes(box.value);
    $('q').value = v.q;
    $('meta').value = formatMeta(v.meta);
    $('request-filter').hidden = !v.request;
    $('request-filter-id').textContent = v.request;
    $('trace-filter').hidden = !v.trace;
    $('trace-filter-id').textContent = v.trace;
    $('live-toggle').checked = v.live;
  }

  function readForm() {
    const range = $('range').value;
    return {
      range,
      since: range === 'custom' ? fromLocalInput($('since').value) : null,
      until: range === 'custom' ? fromLocalInput($('until').value) : null,
      services: splitList($('service').value),
      levels: [...document.querySelectorAll('input[name="level"]:checked')].map((box) => box.value),
      q: $('q').value.trim(),
      meta: parseMeta($('meta').value),
      request: view ? view.request : '',
      trace: view ? view.trace : '',
      live: $('live-toggle').checked,
    };
  }

  function navigate(v) {
    history.pushState(null, '', urlFor(v));
    refresh();
  }

  // ---------------------------------------------------------------- rendering rows

  const severityOf = (level) => SEVERITIES.find((s) => s.spellings.includes(String(level).toUpperCase())) || SEVERITIES[0];

  function formatTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function logRow(log, options = {}) {
    const row = el('tr', 'log-row');
    if (options.anchor) row.classList.add('anchor');
    if (options.fresh) row.classList.add('fresh');
    row.dataset.id = String(log.id);
    const time = el('td', 'time', formatTime(log.timestamp));
    time.title = `${log.timestamp} (UTC)`;
    const level = el('td', 'level-cell');
    level.append(el('span', `level level-${severityOf(log.level).css}`, log.level));
    const service = el('td', 'service', log.service);
    service.title = log.service;
    const message = el('td', 'message');
    const facts = canonicalFacts(log.metadata);
    if (facts.job) {
      row.classList.add('job-row');
      message.append(el('span', 'kind-badge', 'job'), ' ');
    }
    message.append(el('span', 'message-text', log.message));
    if (facts.parts.length) {
      const line = el('span', 'facts');
      facts.parts.forEach(([className, text, title], i) => {
        if (i > 0) line.append(' ');
        const part = el('span', `fact ${className}`, text);
        if (title) part.title = title;
        line.append(part);
      });
      message.append(' ', line);
    }
    row.append(time, level, service, message);
    row.addEventListener('click', () => toggleDetails(row, log, options));
    return row;
  }

  // ---------------------------------------------------------------- canonical fields

  const MAX_FACT_CHARS = 120;

  /** A metadata value as short display text: strings, numbers and booleans only. */
  function factText(value, maxChars = MAX_FACT_CHARS) {
    if (typeof value === 'number') return Number.isFinite(value) ? String(value) : null;
    if (typeof value === 'boolean') return String(value);
    if (typeof value !== 'string' || !value) return null;
    // Two UTF-16 units per character at most: enough of a long value to cut it by characters.
    const chars = [...value.slice(0, maxChars * 2)];
    return chars.length > maxChars || value.length > maxChars * 2 ? `${chars.slice(0, maxChars - 1).join('')}…` : value;
  }

  /** `12.3 ms` for a finite number of milliseconds, else null. */
  function durationText(value) {
    const ms = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof ms !== 'number' || !Number.isFinite(ms)) return null;
    return `${ms >= 100 ? ms.toFixed(0) : ms.toFixed(1)} ms`;
  }

  /**
   * The class of an entry's exception: `exception.class`, `error.class` of older entries,
   * or a job run's `exception_class`.
   */
  function exceptionClass(metadata) {
    for (const key of ['exception', 'error']) {
      const value = metadata[key];
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        const name = factText(value.class);
        if (name) return name;
      }
    }
    return factText(metadata.exception_class);
  }

  /**
   * The canonical fields an entry carries, as [cssClass, text, title] parts shown in its
   * row: a request's status, method and path, duration and exception class; a job's
   * class, queue, outcome and duration. `job` says whether the entry is a job's.
   */
  function canonicalFacts(metadata) {
    const parts = [];
    if (!metadata || typeof metadata !== 'object' || Array.isArray(metadata)) return { job: false, parts };
    // A job's canonical entry says so; older entries logged while a job ran carry its ids.
    const job = metadata.kind === 'job'
      || (metadata.kind === undefined && (typeof metadata.job_id === 'string' || typeof metadata.job_class === 'string'));
    const add = (className, text, title) => {
      if (text) parts.push([className, text, title]);
    };
    if (job) {
      add('fact-job-class', factText(metadata.job_class), 'job class');
      const queue = factText(metadata.queue) || factText(metadata.queue_name);
      add('fact-queue', queue && `queue ${queue}`, 'queue');
      add('fact-outcome', factText(metadata.outcome, 40), 'outcome');
    } else {
      const status = factText(metadata.status, 3);
      if (status) {
        const group = /^[1-5]\d\d$/.test(status) ? `status-${status[0]}xx` : 'status-other';
        add(`fact-status ${group}`, status, 'status');
      }
      const request = [factText(metadata.method, 10), factText(metadata.path)].filter(Boolean).join(' ');
      add('fact-request', request, 'method and path');
    }
    add('fact-duration', durationText(metadata.duration_ms), 'duration');
    add('fact-exception', exceptionClass(metadata), 'exception');
    return { job, parts };
  }

  function toggleDetails(row, log, options) {
    const next = row.nextElementSibling;
    if (next && next.classList.contains('log-details')) {
      next.remove();
      row.classList.remove('open');
      return;
    }
    row.classList.add('open');
    const details = el('tr', 'log-details');
    const cell = el('td');
    cell.colSpan = 4;
    cell.append(el('pre', 'metadata', JSON.stringify(log.metadata || {}, null, 2)));
    const actions = el('div', 'details-actions');
    actions.append(el('span', 'muted', `id ${log.id} · received ${formatTime(log.received_at)}`));
    if (!options.inContext) {
      const around = el('button', 'link-button context-button', 'Surrounding entries');
      around.type = 'button';
      around.addEventListener('click', (event) => {
        event.stopPropagation();
        showContext(log);
      });
      actions.append(around);
    }
    if (typeof log.fingerprint === 'string' && log.fingerprint) {
      // An error entry: its group on the Errors page (found by its exact fingerprint).
      const group = el('a', 'group-link', 'Its error group');
      group.href = `/errors?${new URLSearchParams({ range: '30d', service: log.service, q: log.fingerprint })}`;
      group.addEventListener('click', (event) => event.stopPropagation());
      actions.append(group);
    }
    for (const id of requestIdsOf(log)) {
      const caused = el('button', 'link-button request-button', `Everything request ${id} caused`);
      caused.type = 'button';
      caused.addEventListener('click', (event) => {
        event.stopPropagation();
        showRequest(id);
      });
      actions.append(caused);
    }
    const traceId = traceIdOf(log);
    if (traceId) {
      const traced = el('button', 'link-button trace-button', `Everything of trace ${traceId}`);
      traced.type = 'button';
      traced.addEventListener('click', (event) => {
        event.stopPropagation();
        showTrace(traceId);
      });
      actions.append(traced);
    }
    cell.append(actions);
    details.append(cell);
    row.after(details);
  }

  /** The request ids an entry links to: its own request's, and the one that enqueued its job. */
  function requestIdsOf(log) {
    const metadata = log.metadata || {};
    const ids = [metadata.request_id, metadata.parent_request_id, metadata.enqueued_by_request_id]
      .filter((id) => typeof id === 'string' && id);
    return [...new Set(ids)];
  }

  /** The entry's OpenTelemetry trace id (32 hex digits, as OTLP senders and the gem set it), or null. */
  function traceIdOf(log) {
    const id = (log.metadata || {}).trace_id;
    return typeof id === 'string' && /^[0-9a-f]{32}$/.test(id) ? id : null;
  }

  /** Everything of one trace, from every service: `trace_id=` on the query API. */
  function showTrace(id) {
    const current = view || readUrl();
    navigate({ ...current, services: [], levels: [], q: '', meta: [], request: '', trace: id, live: false,
      range: current.range === 'custom' ? current.range : '30d' });
  }

  /** Everything one request caused, in every process: `request_id=` on the query API. */
  function showRequest(id) {
    const current = view || readUrl();
    navigate({ ...current, services: [], levels: [], q: '', meta: [], request: id, trace: '', live: false,
      range: current.range === 'custom' ? current.range : '30d' });
  }

  function showError(message) {
    $('error').textContent = message;
    $('error').hidden = !message;
  }

  // ---------------------------------------------------------------- histogram

  function renderHistogram(histogram) {
    lastHistogram = histogram;
    const svg = $('histogram');
    svg.replaceChildren();
    const width = Math.max(svg.clientWidth || 800, 200);
    const height = 130;
    const axis = 16;
    const chart = height - axis;
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    const buckets = histogram.buckets || [];
    const total = buckets.reduce((sum, b) => sum + b.total, 0);
    $('histogram-caption').textContent =
      `${total.toLocaleString()} entries · ${histogram.bucket} buckets · click a bar to zoom in`;
    if (!buckets.length) return;
    const max = Math.max(1, ...buckets.map((b) => b.total));
    const slot = width / buckets.length;
    const barWidth = Math.max(1, slot - Math.min(2, slot * 0.2));
    buckets.forEach((bucket, i) => {
      const x = i * slot;
      const group = svgEl('g', { class: 'bar' });
      group.append(svgEl('rect', { class: 'hit', x, y: 0, width: slot, height: chart }));
      let y = chart;
      const parts = [];
      for (const severity of SEVERITIES) {
        const count = severity.spellings.reduce((sum, s) => sum + (bucket.counts[s] || 0), 0);
        if (!count) continue;
        parts.push(`${severity.name} ${count}`);
        const h = (count / max) * (chart - 4);
        y -= h;
        group.append(svgEl('rect', { class: `seg-${severity.css}`, x: x + (slot - barWidth) / 2, y, width: barWidth, height: h }));
      }
      const end = new Date(new Date(bucket.start).getTime() + histogram.bucket_seconds * 1000);
      const title = svgEl('title');
      title.textContent = `${formatTime(bucket.start)} – ${formatTime(end.toISOString())}\n${bucket.total} entries${parts.length ? ` (${parts.join(', ')})` : ''}`;
      group.append(title);
      group.addEventListener('click', () => {
        navigate({ ...view, range: 'custom', since: bucket.start, until: end.toISOString(), live: false });
      });
      svg.append(group);
    });
    svg.append(svgEl('line', { class: 'baseline', x1: 0, y1: chart + 0.5, x2: width, y2: chart + 0.5 }));
    const labels = [0, Math.floor(buckets.length / 2), buckets.length - 1];
    for (const i of new Set(labels)) {
      const anchor = i === 0 ? 'start' : i === buckets.length - 1 ? 'end' : 'middle';
      const x = i === buckets.length - 1 ? width : i * slot + (i === 0 ? 0 : slot / 2);
      const text = svgEl('text', { class: 'axis', x, y: height - 3, 'text-anchor': anchor });
      text.textContent = formatTime(buckets[i].start).slice(5, 16);
      svg.append(text);
    }
  }

  function renderLegend() {
    const legend = $('legend');
    legend.replaceChildren(...SEVERITIES.map((s) => el('span', `legend-item legend-${s.css}`, s.name)));
  }

  // ---------------------------------------------------------------- search

  async function refresh() {
    view = readUrl();
    fillForm(view);
    if (!(await signedIn())) {
      askForKey();
      return;
    }
    $('forget-key').hidden = !storedKey();
    const generation = ++searchGeneration;
    showError('');
    $('context-panel').hidden = true;
    const params = apiParams(view);
    const pageParams = new URLSearchParams(params);
    pageParams.set('limit', String(PAGE_SIZE));
    $('summary').textContent = 'Searching…';
    try {
      const [page, histogram] = await Promise.all([
        view.request ? requestEntries(params) : api('/api/v1/logs', pageParams),
        api('/api/v1/logs/histogram', params),
      ]);
      if (generation !== searchGeneration) return;
      renderHistogram(histogram);
      $('rows').replaceChildren(...page.logs.map((log) => logRow(log)));
      nextCursor = page.next_cursor;
      $('more').hidden = !nextCursor;
      summarize();
    } catch (error) {
      if (generation !== searchGeneration) return;
      $('summary').textContent = '';
      showError(error.message);
    }
    if (view.live) startLive();
    else stopLive();
    loadServices();
  }

  /**
   * One request's entries, oldest first (the order it happened in): every page of
   * `request_id=` up to MAX_REQUEST_ENTRIES, reversed. `next_cursor` is null: what a
   * request caused is read whole, or its newest MAX_REQUEST_ENTRIES (`truncated`).
   */
  async function requestEntries(params) {
    const logs = [];
    let cursor = null;
    do {
      const pageParams = new URLSearchParams(params);
      pageParams.set('limit', String(Math.min(1000, MAX_REQUEST_ENTRIES - logs.length)));
      if (cursor) pageParams.set('cursor', cursor);
      const page = await api('/api/v1/logs', pageParams);
      logs.push(...page.logs);
      cursor = page.next_cursor;
    } while (cursor && logs.length < MAX_REQUEST_ENTRIES);
    requestTruncated = Boolean(cursor);
    return { logs: logs.reverse(), next_cursor: null };
  }

  function summarize() {
    const shown = $('rows').querySelectorAll('tr.log-row').length;
    const entries = `${shown.toLocaleString()} ${shown === 1 ? 'entry' : 'entries'}`;
    if (!shown) $('summary').textContent = 'No entries match these filters.';
    else if (view && view.request) {
      $('summary').textContent = `${entries} of this request, oldest first`
        + (requestTruncated ? ` (its newest ${MAX_REQUEST_ENTRIES.toLocaleString()} only)` : '');
    } else {
      $('summary').textContent = `${entries} shown, newest first${nextCursor ? ' · older entries available' : ''}`;
    }
  }

  // ---------------------------------------------------------------- fields and export

  /** The view with `value` of `field` (service, level or meta.KEY) added as a filter. */
  function withFieldFilter(v, field, value) {
    if (field === 'service') return { ...v, services: [value] };
    if (field === 'level') return { ...v, levels: [value.toUpperCase()] };
    return { ...v, meta: [...v.meta.filter(([key]) => key !== field.slice(5)), [field.slice(5), value]] };
  }

  /** The most frequent values of the field named in the form, for the current search. */
  async function showField(event) {
    if (event) event.preventDefault();
    const field = $('field-name').value.trim();
    if (!field || !view) return;
    const params = apiParams(view);
    params.set('field', field);
    params.set('top', '20');
    showError('');
    try {
      const answer = await api('/api/v1/logs/fields', params);
      $('field-title').textContent = field;
      const examined = answer.examined.toLocaleString();
      $('field-note').textContent = answer.sampled
        ? `in the newest ${examined} matching entries (more match) · ${answer.distinct.toLocaleString()} values`
        : `in all ${examined} matching entries · ${answer.distinct.toLocaleString()} values`
          + (answer.missing ? ` · ${answer.missing.toLocaleString()} without it` : '');
      $('field-rows').replaceChildren(...answer.values.map((item) => {
        const filter = el('button', 'link-button field-value', item.truncated ? `${item.value}…` : item.value);
        filter.type = 'button';
        filter.title = 'Add as a filter';
        filter.addEventListener('click', () => navigate(withFieldFilter(view, field, item.value)));
        const bar = el('span', 'share-bar');
        bar.style.width = `${Math.max(1, item.share * 100)}%`;
        const share = el('td', 'share');
        share.append(bar, ` ${(item.share * 100).toFixed(1)}%`);
        const value = el('td', 'field-value-cell');
        value.append(filter);
        const row = el('tr');
        row.append(value, el('td', 'num', item.count.toLocaleString()), share);
        return row;
      }));
      $('field-panel').hidden = false;
    } catch (error) {
      showError(error.message);
    }
  }

  /** Downloads every entry of the current search (the export API streams them). */
  async function exportAs(format) {
    if (!view) return;
    if (!(await signedIn())) {
      askForKey();
      return;
    }
    const params = apiParams(view);
    params.set('format', format);
    showError('');
    try {
      const response = await fetch(`/api/v1/logs/export?${params}`, { headers: authHeaders() });
      if (!response.ok) {
        const answer = await response.json().catch(() => null);
        throw new Error(window.Explorer.errorText(response, answer));
      }
      const disposition = response.headers.get('content-disposition') || '';
      const name = (/filename="([^"]+)"/.exec(disposition) || [])[1] || `logs.${format}`;
      const link = el('a');
      link.href = URL.createObjectURL(await response.blob());
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    } catch (error) {
      showError(`Export failed: ${error.message}`);
    }
  }

  async function loadMore() {
    if (!nextCursor) return;
    const params = apiParams(view);
    params.set('limit', String(PAGE_SIZE));
    params.set('cursor', nextCursor);
    $('more').disabled = true;
    try {
      const page = await api('/api/v1/logs', params);
      $('rows').append(...page.logs.map((log) => logRow(log)));
      nextCursor = page.next_cursor;
      $('more').hidden = !nextCursor;
      summarize();
    } catch (error) {
      showError(error.message);
    } finally {
      $('more').disabled = false;
    }
  }

  let servicesLoaded = false;
  async function loadServices() {
    if (servicesLoaded) return;
    try {
      const body = await api('/api/v1/services', new URLSearchParams({ since: '30d' }));
      $('service-list').replaceChildren(
        ...body.services.map((s) => {
          const option = el('option');
          option.value = s.service;
          option.label = `${s.count.toLocaleString()} entries, last ${formatTime(s.last_seen)}`;
          return option;
        }),
      );
      servicesLoaded = true;
    } catch (_) {
      // The datalist is a convenience; searching works without it.
    }
  }

  async function showContext(log) {
    const params = apiParams(view, false);
    params.set('timestamp', log.timestamp);
    params.set('before', '10');
    params.set('after', '10');
    try {
      const body = await api(`/api/v1/logs/${encodeURIComponent(log.id)}/context`, params);
      const rows = [
        ...body.after.slice().reverse().map((entry) => logRow(entry, { inContext: true })),
        logRow(body.entry, { inContext: true, anchor: true }),
        ...body.before.map((entry) => logRow(entry, { inContext: true })),
      ];
      $('context-rows').replaceChildren(...rows);
      $('context-panel').hidden = false;
      $('context-panel').scrollIntoView({ behavior: 'smooth', block: 'start' });
    } catch (error) {
      showError(error.message);
    }
  }

  // ---------------------------------------------------------------- live tail

  function setLiveStatus(text, on) {
    const status = $('live-status');
    status.hidden = !text;
    status.textContent = text || '';
    status.classList.toggle('on', Boolean(on));
  }

  function stopLive() {
    if (live) live.controller.abort();
    live = null;
    setLiveStatus('', false);
  }

  function startLive() {
    stopLive();
    const session = { controller: new AbortController(), lastEventId: null, tailView: view };
    live = session;
    followTail(session);
  }

  async function followTail(session) {
    while (live === session) {
      const headers = authHeaders();
      if (session.lastEventId) headers['Last-Event-ID'] = session.lastEventId;
      setLiveStatus('connecting…', false);
      try {
        const response = await fetch(`/api/v1/logs/tail?${apiParams(session.tailView, false)}`, {
          headers,
          signal: session.controller.signal,
        });
        if (response.status === 401) {
          if (storedKey()) forgetKey('The stored key was refused; enter an admin key.');
          else askForKey('Your session has ended: sign in again or enter an admin key.');
          return;
        }
        if (response.status >= 400 && response.status < 500) {
          // The filters themselves were refused (e.g. a metadata path nested too
          // deeply, copied from a link): retrying cannot help, so say why and stop.
          const body = await response.json().catch(() => null);
          stopLive();
          showError(`Live tail: ${window.Explorer.errorText(response, body)}`);
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        await readEvents(response.body, session);
      } catch (error) {
        if (session.controller.signal.aborted) return;
        setLiveStatus(`reconnecting (${error.message})`, false);
      }
      if (live !== session) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  async function readEvents(body, session) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = { type: 'message', id: null, data: [] };
        for (const line of block.split('\n')) {
          const colon = line.indexOf(':');
          if (colon === 0) continue;
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? '' : line.slice(colon + 1);
          if (text.startsWith(' ')) text = text.slice(1);
          if (field === 'event') event.type = text;
          else if (field === 'id') event.id = text;
          else if (field === 'data') event.data.push(text);
        }
        handleEvent(event, session);
      }
    }
  }

  function handleEvent(event, session) {
    if (live !== session) return;
    if (event.id) session.lastEventId = event.id;
    if (event.type === 'ready') {
      setLiveStatus('live', true);
    } else if (event.type === 'log') {
      const log = JSON.parse(event.data.join('\n'));
      const rows = $('rows');
      // A request's view reads oldest first: its new entries go below, the oldest leave.
      const oldestFirst = Boolean(session.tailView.request);
      if (oldestFirst) rows.append(logRow(log, { fresh: true }));
      else rows.prepend(logRow(log, { fresh: true }));
      const all = [...rows.querySelectorAll('tr.log-row')];
      const excess = oldestFirst ? all.slice(0, Math.max(0, all.length - MAX_LIVE_ROWS)) : all.slice(MAX_LIVE_ROWS);
      for (const row of excess) {
        const details = row.nextElementSibling;
        if (details && details.classList.contains('log-details')) details.remove();
        row.remove();
      }
      summarize();
    } else if (event.type === 'cutoff' || event.type === 'error') {
      setLiveStatus('catching up…', false);
    }
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    renderLegend();
    $('request-filter-clear').addEventListener('click', () => navigate({ ...(view || readUrl()), request: '' }));
    $('trace-filter-clear').addEventListener('click', () => navigate({ ...(view || readUrl()), trace: '' }));
    $('range').addEventListener('change', () => {
      const custom = $('range').value === 'custom';
      showCustomRange(custom);
      if (custom && !$('since').value) {
        const now = new Date();
        $('since').value = toLocalInput(new Date(now.getTime() - 3600 * 1000).toISOString());
        $('until').value = toLocalInput(now.toISOString());
      }
    });
    $('filters').addEventListener('submit', (event) => {
      event.preventDefault();
      navigate(readForm());
    });
    $('live-toggle').addEventListener('change', () => navigate({ ...(view || readUrl()), live: $('live-toggle').checked }));
    $('more').addEventListener('click', loadMore);
    $('field-form').addEventListener('submit', showField);
    $('field-close').addEventListener('click', () => {
      $('field-panel').hidden = true;
    });
    $('export-ndjson').addEventListener('click', () => exportAs('ndjson'));
    $('export-csv').addEventListener('click', () => exportAs('csv'));
    $('alert-on-search').addEventListener('click', () => {
      const { services, levels, q, meta } = view || readUrl();
      const params = new URLSearchParams({ new: '1' });
      setFilterParams(params, { services, levels, q, meta });
      location.assign(`/alerts?${params}`);
    });
    $('context-close').addEventListener('click', () => {
      $('context-panel').hidden = true;
    });
    window.addEventListener('popstate', refresh);
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => lastHistogram && renderHistogram(lastHistogram), 200);
    });
    refresh();
  }

  document.addEventListener('DOMContentLoaded', init);
})();
