// The explorer's Alerts page: what fires now, the rules (file rules read-only), a form
// that creates or edits a rule with its 24-hour preview shown before saving, the history
// of transitions with each notification's delivery, and silences. It talks only to
// /api/v1/alerts with the admin key; every string from the server is set as text.
// `/alerts?new=1&service=...&level=...&q=...&meta.KEY=...` opens the form prefilled
// (the search page's "Alert on this search").
'use strict';

(() => {
  const { $, el } = window.Explorer;
  const HISTORY_PAGE = 100;
  const SEARCH_KEYS = ['service', 'level', 'min_level', 'q'];

  let rules = [];
  let editing = null; // { id, extraSearch } of the rule in the form, or null for a new one
  let previewTimer = null;
  let previewGeneration = 0;
  let historyBefore = null;

  const { api } = window.Explorer.session({
    onKey: () => {
      loadAll();
      if (!$('rule-editor').hidden) schedulePreview(0);
    },
  });

  function showError(message) {
    $('error').hidden = !message;
    $('error').textContent = message || '';
  }

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : '');
  const valueText = (value) => (value === null || value === undefined ? '' : String(Math.round(value * 1000) / 1000));
  const list = (value) => (Array.isArray(value) ? value : value === undefined || value === null ? [] : [value]);

  function labelsText(labels) {
    return Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(' ');
  }

  function badge(text, kind) {
    return el('span', `badge badge-${kind}`, text);
  }

  function button(text, onClick, className = 'link-button') {
    const node = el('button', className, text);
    node.type = 'button';
    node.addEventListener('click', onClick);
    return node;
  }

  function cell(text, className) {
    return el('td', className, text);
  }

  function emptyRow(tbody, columns, text) {
    const row = el('tr', 'empty');
    const td = cell(text, 'muted');
    td.colSpan = columns;
    row.append(td);
    tbody.append(row);
  }

  // ---------------------------------------------------------------- loading

  async function loadAll() {
    showError('');
    try {
      const [ruleBody, firingBody, silenceBody, channelBody] = await Promise.all([
        api('/api/v1/alerts/rules'),
        api('/api/v1/alerts'),
        api('/api/v1/alerts/silences'),
        api('/api/v1/alerts/channels'),
      ]);
      rules = ruleBody.rules || [];
      renderRules();
      renderFiring(firingBody.alerts || []);
      renderSilences(silenceBody.silences || []);
      $('channel-names').textContent = (channelBody.channels || []).length
        ? `known: ${channelBody.channels.map((c) => c.name).join(', ')}` : 'no channels yet';
      fillRuleSelects();
      await loadHistory(false);
    } catch (error) {
      showError(error.message);
    }
  }

  function ruleName(id) {
    const rule = rules.find((r) => r.id === id);
    return rule ? rule.name : `#${id}`;
  }

  function fillRuleSelects() {
    for (const id of ['history-rule', 'silence-rule']) {
      const select = $(id);
      const chosen = select.value;
      select.replaceChildren();
      if (id === 'history-rule') select.append(el('option', null, 'all'));
      for (const rule of rules) {
        const option = el('option', null, rule.name);
        option.value = String(rule.id);
        select.append(option);
      }
      if (id === 'history-rule') select.firstChild.value = '';
      if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
    }
  }

  // ---------------------------------------------------------------- firing now

  function renderFiring(alerts) {
    const tbody = $('firing-rows');
    tbody.replaceChildren();
    const firing = alerts.filter((a) => a.state === 'firing').length;
    $('firing-summary').textContent = `${firing} firing, ${alerts.length - firing} pending`;
    if (!alerts.length) emptyRow(tbody, 6, 'Nothing is firing.');
    for (const alert of alerts) {
      const row = el('tr', `alert-row state-${alert.state}`);
      row.append(cell(alert.rule_name, 'strong'));
      row.append(cell(labelsText(alert.labels) || alert.series_key || 'one series', 'mono'));
      const state = el('td');
      state.append(badge(alert.state, alert.state));
      if (alert.silenced) state.append(badge('silenced', 'silenced'));
      row.append(state);
      row.append(cell(when(alert.fired_at || alert.active_since), 'time'));
      row.append(cell(valueText(alert.value), 'count'));
      const actions = el('td', 'actions');
      actions.append(button('Silence', () => prefillSilence(alert.rule_id, alert.series_key)));
      row.append(actions);
      tbody.append(row);
    }
  }

  // ---------------------------------------------------------------- rules

  function conditionText(rule) {
    const search = Object.entries(rule.search || {}).map(([k, v]) => `${k}=${list(v).join(',')}`).join(' ');
    const parts = [];
    if (rule.kind === 'count') parts.push(`count(${search || 'all entries'}) ${rule.op} ${rule.threshold}`);
    else if (rule.kind === 'ratio') {
      const base = Object.entries(rule.base_search || {}).map(([k, v]) => `${k}=${list(v).join(',')}`).join(' ');
      parts.push(`ratio(${search || 'all'} ÷ ${base || 'all'}) ${rule.op} ${rule.threshold}`);
    } else if (rule.kind === 'absence') parts.push(`no entry (${search || 'any'})`);
    else parts.push(`${rule.kind}${rule.service ? ` in ${rule.service}` : ''}`);
    parts.push(`over ${rule.window}`);
    if (rule.for && rule.for !== '0s') parts.push(`for ${rule.for}`);
    if (rule.group_by) parts.push(`by ${rule.group_by}`);
    return parts.join(' ');
  }

  function renderRules() {
    const tbody = $('rule-rows');
    tbody.replaceChildren();
    if (!rules.length) emptyRow(tbody, 5, 'No rules yet: create one, or use "Alert on this search" on the Logs page.');
    for (const rule of rules) {
      const row = el('tr', 'rule-row');
      row.dataset.ruleId = String(rule.id);
      const name = el('td');
      name.append(el('div', 'rule-name', rule.name));
      if (rule.source === 'file') name.append(badge('rules file · read-only', 'file'));
      if (!rule.enabled) name.append(badge('disabled', 'disabled'));
      const summary = rule.annotations && rule.annotations.summary;
      if (summary) name.append(el('div', 'muted small', summary));
      row.append(name);
      const condition = el('td', 'mono', conditionText(rule));
      const evaluation = rule.evaluation || {};
      if (evaluation.last_error) condition.append(el('div', 'error small', `evaluation failed: ${evaluation.last_error}`));
      if (evaluation.last_warning) condition.append(el('div', 'warning small', evaluation.last_warning));
      row.append(condition);
      const state = el('td');
      if (evaluation.firing) state.append(badge(`${evaluation.firing} firing`, 'firing'));
      if (evaluation.pending) state.append(badge(`${evaluation.pending} pending`, 'pending'));
      if (!evaluation.firing && !evaluation.pending) state.append(badge('ok', 'ok'));
      row.append(state);
      row.append(cell((rule.channels || []).join(', ') || '—'));
      const actions = el('td', 'actions');
      if (rule.source !== 'file') {
        actions.append(button('Edit', () => openEditor(rule)));
        actions.append(button('Delete', () => deleteRule(rule)));
      }
      actions.append(button('History', () => {
        $('history-rule').value = String(rule.id);
        loadHistory(false);
      }));
      row.append(actions);
      tbody.append(row);
    }
  }

  async function deleteRule(rule) {
    if (!window.confirm(`Delete the rule "${rule.name}"? Its firing series are resolved.`)) return;
    try {
      await api(`/api/v1/alerts/rules/${rule.id}`, null, undefined, 'DELETE');
      await loadAll();
    } catch (error) {
      showError(error.message);
    }
  }

  // ---------------------------------------------------------------- the form

  function parsePairs(text, separator) {
    const pairs = [];
    for (const line of (text || '').split(separator)) {
      const at = line.indexOf('=');
      if (at > 0) pairs.push([line.slice(0, at).trim(), line.slice(at + 1).trim()]);
    }
    return pairs;
  }

  function parseMeta(text) {
    const pairs = [];
    const pattern = /([^\s=]+)=("([^"]*)"|\S*)/g;
    let match;
    while ((match = pattern.exec(text || '')) !== null) pairs.push([match[1], match[3] !== undefined ? match[3] : match[2]]);
    return pairs;
  }

  const formatMeta = (pairs) => pairs.map(([k, v]) => (/[\s"]/.test(v) ? `${k}="${v}"` : `${k}=${v}`)).join(' ');

  function showKindFields() {
    const kind = $('rule-kind').value;
    const show = (selector, shown) => document.querySelectorAll(selector).forEach((node) => { node.hidden = !shown; });
    show('.for-search', ['count', 'ratio', 'absence'].includes(kind));
    show('.for-ratio', kind === 'ratio');
    show('.for-error', kind === 'new_error' || kind === 'regressed_error');
    show('.for-threshold', kind === 'count' || kind === 'ratio');
    show('.for-group', kind === 'count' || kind === 'ratio');
  }

  function fillSearch(search) {
    const extra = {};
    const meta = [];
    for (const [key, value] of Object.entries(search || {})) {
      if (key.startsWith('meta.')) for (const v of list(value)) meta.push([key.slice(5), v]);
      else if (!SEARCH_KEYS.includes(key)) extra[key] = value;
    }
    $('search-service').value = list(search && search.service).join(',');
    $('search-level').value = list(search && search.level).join(',');
    $('search-min-level').value = (search && search.min_level ? String(search.min_level) : '').toLowerCase();
    $('search-q').value = list(search && search.q).join(' ');
    $('search-meta').value = formatMeta(meta);
    return extra;
  }

  function openEditor(rule, prefill) {
    const r = rule || {};
    editing = rule ? { id: rule.id } : null;
    $('editor-title').textContent = rule ? `Edit rule: ${rule.name}` : 'New rule';
    $('rule-name').value = r.name || '';
    $('rule-kind').value = r.kind || 'count';
    $('rule-enabled').checked = r.enabled !== false;
    const extra = fillSearch(r.search || prefill || {});
    if (editing) editing.extraSearch = extra;
    const base = r.base_search || {};
    $('base-service').value = list(base.service).join(',');
    $('base-min-level').value = (base.min_level ? String(base.min_level) : '').toLowerCase();
    $('rule-min-base').value = r.min_base_count || 1;
    $('rule-service').value = r.service || '';
    $('rule-op').value = r.op || '>';
    $('rule-threshold').value = r.threshold !== undefined ? r.threshold : 10;
    $('rule-window').value = r.window || '5m';
    $('rule-for').value = r.for || '0s';
    $('rule-keep').value = r.keep_firing_for || '0s';
    $('rule-interval').value = r.interval || '1m';
    $('rule-group-by').value = r.group_by || '';
    $('rule-max-series').value = r.max_series || 100;
    $('rule-channels').value = (r.channels || []).join(', ');
    $('rule-repeat').value = r.repeat_interval || '4h';
    const annotations = { ...(r.annotations || {}) };
    $('rule-summary').value = annotations.summary || '';
    $('rule-runbook').value = annotations.runbook_url || '';
    delete annotations.summary;
    delete annotations.runbook_url;
    $('rule-annotations').value = Object.entries(annotations).map(([k, v]) => `${k}=${v}`).join('\n');
    $('rule-labels').value = Object.entries(r.labels || {}).map(([k, v]) => `${k}=${v}`).join('\n');
    $('rule-problems').hidden = true;
    showKindFields();
    $('rule-editor').hidden = false;
    $('rule-name').focus();
    schedulePreview(0);
  }

  function readSearch(service, level, minLevel, q, meta) {
    const search = {};
    if (service) search.service = service;
    if (level) search.level = level;
    if (minLevel) search.min_level = minLevel;
    if (q) search.q = q;
    for (const [key, value] of meta || []) {
      const name = `meta.${key}`;
      search[name] = search[name] === undefined ? value : [...list(search[name]), value];
    }
    return search;
  }

  function readRule() {
    const kind = $('rule-kind').value;
    const rule = {
      name: $('rule-name').value.trim(),
      kind,
      window: $('rule-window').value.trim(),
      for: $('rule-for').value.trim() || '0s',
      keep_firing_for: $('rule-keep').value.trim() || '0s',
      interval: $('rule-interval').value.trim() || '1m',
      repeat_interval: $('rule-repeat').value.trim() || '0s',
      channels: $('rule-channels').value.split(',').map((s) => s.trim()).filter(Boolean),
      labels: Object.fromEntries(parsePairs($('rule-labels').value, '\n')),
      annotations: Object.fromEntries(parsePairs($('rule-annotations').value, '\n')),
      enabled: $('rule-enabled').checked,
    };
    if ($('rule-summary').value.trim()) rule.annotations.summary = $('rule-summary').value.trim();
    if ($('rule-runbook').value.trim()) rule.annotations.runbook_url = $('rule-runbook').value.trim();
    if (['count', 'ratio', 'absence'].includes(kind)) {
      rule.search = {
        ...((editing && editing.extraSearch) || {}),
        ...readSearch($('search-service').value.trim(), $('search-level').value.trim(), $('search-min-level').value,
          $('search-q').value.trim(), parseMeta($('search-meta').value)),
      };
    }
    if (kind === 'ratio') {
      rule.base_search = readSearch($('base-service').value.trim(), '', $('base-min-level').value, '', []);
      rule.min_base_count = Number($('rule-min-base').value) || 1;
    }
    if (kind === 'count' || kind === 'ratio') {
      rule.op = $('rule-op').value;
      rule.threshold = Number($('rule-threshold').value);
      if ($('rule-group-by').value.trim()) rule.group_by = $('rule-group-by').value.trim();
      rule.max_series = Number($('rule-max-series').value) || 100;
    }
    if ((kind === 'new_error' || kind === 'regressed_error') && $('rule-service').value.trim()) {
      rule.service = $('rule-service').value.trim();
    }
    return rule;
  }

  function schedulePreview(delay = 500) {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(runPreview, delay);
  }

  function previewBar(periods, from, until) {
    const bar = el('div', 'preview-bar');
    const span = until - from;
    for (const period of periods) {
      const start = Math.max(from, new Date(period.firing_from).getTime());
      const end = period.resolved_at ? new Date(period.resolved_at).getTime() : until;
      const block = el('span', 'preview-firing');
      block.style.left = `${((start - from) / span) * 100}%`;
      block.style.width = `${Math.max(0.3, ((end - start) / span) * 100)}%`;
      block.title = `${when(period.firing_from)} – ${period.resolved_at ? when(period.resolved_at) : 'still firing'}`;
      bar.append(block);
    }
    return bar;
  }

  async function runPreview() {
    const generation = ++previewGeneration;
    const rule = readRule();
    if (!rule.name) rule.name = 'preview';
    $('preview-summary').textContent = 'Computing…';
    $('preview-series').replaceChildren();
    try {
      const answer = await api('/api/v1/alerts/rules/preview', null, rule);
      if (generation !== previewGeneration) return;
      const from = new Date(answer.from).getTime();
      const until = new Date(answer.until).getTime();
      const series = answer.series || [];
      const periods = series.reduce((n, s) => n + s.firing.length, 0);
      $('preview-summary').textContent = periods
        ? `Would have fired ${periods} time${periods === 1 ? '' : 's'} in ${series.filter((s) => s.firing.length).length} series from ${when(answer.from)} to ${when(answer.until)}.`
        : `Would not have fired from ${when(answer.from)} to ${when(answer.until)}.`;
      if (answer.series_left_out) $('preview-summary').append(` ${answer.series_left_out} series left out (max_series).`);
      const box = $('preview-series');
      for (const s of series) {
        const line = el('div', 'preview-line');
        line.append(el('span', 'preview-label mono', labelsText(s.labels) || 'all'));
        line.append(previewBar(s.firing, from, until));
        line.append(el('span', 'preview-count muted', `${s.firing.length}×`));
        box.append(line);
      }
    } catch (error) {
      if (generation !== previewGeneration) return;
      $('preview-summary').textContent = `No preview: ${error.message}`;
    }
  }

  async function saveRule(event) {
    event.preventDefault();
    const rule = readRule();
    $('rule-save').disabled = true;
    try {
      if (editing) await api(`/api/v1/alerts/rules/${editing.id}`, null, rule, 'PUT');
      else await api('/api/v1/alerts/rules', null, rule);
      $('rule-editor').hidden = true;
      editing = null;
      if (new URLSearchParams(location.search).has('new')) history.replaceState(null, '', '/alerts');
      await loadAll();
    } catch (error) {
      $('rule-problems').hidden = false;
      $('rule-problems').textContent = error.message;
    } finally {
      $('rule-save').disabled = false;
    }
  }

  // ---------------------------------------------------------------- history

  function deliveryText(delivery) {
    if (delivery.status === 'delivered') return `${delivery.channel}: delivered`;
    const attempts = `${delivery.attempts} attempt${delivery.attempts === 1 ? '' : 's'}`;
    const error = delivery.last_error ? `: ${delivery.last_error}` : '';
    return `${delivery.channel}: ${delivery.status} (${attempts})${error}`;
  }

  async function loadHistory(more) {
    const params = new URLSearchParams({ limit: String(HISTORY_PAGE) });
    if ($('history-rule').value) params.set('rule_id', $('history-rule').value);
    if (more && historyBefore) params.set('before', String(historyBefore));
    try {
      const body = await api('/api/v1/alerts/history', params);
      const tbody = $('history-rows');
      if (!more) tbody.replaceChildren();
      const transitions = body.transitions || [];
      if (!more && !transitions.length) emptyRow(tbody, 6, 'No transitions yet.');
      for (const t of transitions) {
        const row = el('tr', 'history-row');
        row.append(cell(when(t.at), 'time'));
        row.append(cell(t.rule_name));
        row.append(cell(t.series_key || 'one series', 'mono'));
        const state = el('td');
        state.append(badge(t.transition, t.transition));
        if (t.silenced) state.append(badge('silenced', 'silenced'));
        row.append(state);
        row.append(cell(valueText(t.value), 'count'));
        const deliveries = el('td', 'deliveries');
        for (const d of t.deliveries || []) deliveries.append(el('div', `delivery delivery-${d.status}`, deliveryText(d)));
        if (!(t.deliveries || []).length) deliveries.append(el('span', 'muted', t.notified ? 'notified' : '—'));
        row.append(deliveries);
        tbody.append(row);
      }
      historyBefore = transitions.length ? transitions[transitions.length - 1].id : null;
      $('more-history').hidden = transitions.length < HISTORY_PAGE;
    } catch (error) {
      showError(error.message);
    }
  }

  // ---------------------------------------------------------------- silences

  function renderSilences(silences) {
    const tbody = $('silence-rows');
    tbody.replaceChildren();
    if (!silences.length) emptyRow(tbody, 5, 'No silence in force.');
    for (const silence of silences) {
      const row = el('tr', 'silence-row');
      row.append(cell(ruleName(silence.rule_id)));
      row.append(cell(silence.series_key || 'whole rule', 'mono'));
      row.append(cell(when(silence.until), 'time'));
      row.append(cell(silence.reason));
      const actions = el('td', 'actions');
      actions.append(button('End', async () => {
        try {
          await api(`/api/v1/alerts/silences/${silence.id}`, null, undefined, 'DELETE');
          await loadAll();
        } catch (error) {
          showError(error.message);
        }
      }));
      row.append(actions);
      tbody.append(row);
    }
  }

  function prefillSilence(ruleId, seriesKey) {
    $('silence-rule').value = String(ruleId);
    $('silence-series').value = seriesKey || '';
    $('silence-reason').focus();
  }

  async function saveSilence(event) {
    event.preventDefault();
    const body = {
      rule_id: Number($('silence-rule').value),
      until: $('silence-until').value.trim(),
      reason: $('silence-reason').value.trim(),
    };
    if ($('silence-series').value.trim()) body.series_key = $('silence-series').value.trim();
    try {
      await api('/api/v1/alerts/silences', null, body);
      $('silence-reason').value = '';
      $('silence-series').value = '';
      await loadAll();
    } catch (error) {
      showError(error.message);
    }
  }

  // ---------------------------------------------------------------- wiring

  /** The search of "Alert on this search": the filters in this page's URL. */
  function searchFromUrl(params) {
    const search = {};
    for (const [key, value] of params.entries()) {
      if (SEARCH_KEYS.includes(key) || key.startsWith('meta.')) {
        search[key] = search[key] === undefined ? value : [...list(search[key]), value];
      }
    }
    return search;
  }

  function init() {
    $('new-rule').addEventListener('click', () => openEditor(null));
    $('rule-cancel').addEventListener('click', () => {
      $('rule-editor').hidden = true;
      editing = null;
    });
    $('rule-kind').addEventListener('change', () => {
      showKindFields();
      schedulePreview();
    });
    $('rule-form').addEventListener('input', () => schedulePreview());
    $('rule-preview').addEventListener('click', () => schedulePreview(0));
    $('rule-form').addEventListener('submit', saveRule);
    $('history-rule').addEventListener('change', () => loadHistory(false));
    $('more-history').addEventListener('click', () => loadHistory(true));
    $('silence-form').addEventListener('submit', saveSilence);
    const params = new URLSearchParams(location.search);
    if (params.has('new')) {
      const search = searchFromUrl(params);
      openEditor(null, search);
      const what = Object.entries(search).map(([k, v]) => `${k}=${list(v).join(',')}`).join(' ');
      $('rule-name').value = (params.get('service') ? `${params.get('service')} entries` : 'matching entries')
        .replace(/[^A-Za-z0-9 _.:/-]/g, ' ').slice(0, 100);
      $('editor-title').textContent = what ? `New rule on: ${what}` : 'New rule';
    }
    loadAll();
  }

  document.addEventListener('DOMContentLoaded', init);
})();
