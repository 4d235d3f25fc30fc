// Saved searches on the log explorer: "Save search" keeps the current search (its
// filters and time range, a preset range kept relative) under a name, private or shared
// with the team; "Saved searches" lists one's own and the shared ones, newest first,
// to open or delete. Builds its own dialog and panel, so the page's HTML only loads it;
// calls the API through the page's session (common.js). Every string from the server
// is set as text, never parsed as HTML.
'use strict';

(() => {
  const { $, el } = window.Explorer;
  const PRESETS = ['15m', '1h', '6h', '24h', '7d', '30d'];
  const DEFAULT_PRESET = '1h';
  const PAGE_SIZE = 50;
  let nextCursor = null;

  const api = (...args) => window.Explorer.api(...args);

  /**
   * The page's search as `/api/v1/logs` reads it: the explorer's `range=1h` becomes
   * `since=1h` (kept relative), the live toggle is the page's, not the search's.
   */
  function currentSearch() {
    const page = new URLSearchParams(location.search);
    const search = new URLSearchParams();
    if (!page.get('since')) {
      const range = page.get('range');
      search.set('since', PRESETS.includes(range) ? range : DEFAULT_PRESET);
    }
    for (const [key, value] of page) {
      if (key !== 'range' && key !== 'live') search.append(key, value);
    }
    return search.toString();
  }

  function build() {
    const actions = document.querySelector('.topbar-actions');
    const save = el('button', 'link-button', 'Save search');
    save.type = 'button';
    save.id = 'save-search';
    const list = el('button', 'link-button', 'Saved searches');
    list.type = 'button';
    list.id = 'saved-toggle';
    actions.prepend(save, list);

    const dialog = el('dialog');
    dialog.id = 'save-dialog';
    dialog.innerHTML = `
      <form id="save-form" method="dialog" class="save-form">
        <h2>Save search</h2>
        <p class="muted">Filters and time range: <code id="save-query"></code></p>
        <label>Name <input type="text" id="save-name" required maxlength="200" autocomplete="off"></label>
        <label>Description <textarea id="save-description" maxlength="2000" rows="3"></textarea></label>
        <label class="save-shared"><input type="checkbox" id="save-shared"> Shared with the team</label>
        <p id="save-error" class="error" hidden></p>
        <div class="dialog-actions">
          <button type="button" id="save-cancel" class="link-button">Cancel</button>
          <button type="submit" id="save-submit">Save</button>
        </div>
      </form>`;
    document.body.append(dialog);

    const panel = el('section', 'saved-panel');
    panel.id = 'saved-panel';
    panel.hidden = true;
    panel.setAttribute('aria-label', 'Saved searches');
    panel.innerHTML = `
      <div class="saved-head">
        <h2>Saved searches</h2>
        <span id="saved-status" class="muted"></span>
        <button type="button" id="saved-close" class="link-button">Close</button>
      </div>
      <p id="saved-empty" class="muted" hidden>No saved searches yet: search, then "Save search".</p>
      <table class="saved-list">
        <thead><tr><th>Name</th><th>Search</th><th>Owner</th><th>Short link</th><th></th></tr></thead>
        <tbody id="saved-rows"></tbody>
      </table>
      <button type="button" id="saved-more" hidden>More saved searches</button>`;
    $('filters').after(panel);

    save.addEventListener('click', openSaveDialog);
    list.addEventListener('click', () => (panel.hidden ? showList() : (panel.hidden = true)));
    $('save-cancel').addEventListener('click', () => dialog.close());
    $('save-form').addEventListener('submit', submitSave);
    $('saved-close').addEventListener('click', () => {
      panel.hidden = true;
    });
    $('saved-more').addEventListener('click', () => loadList(false));
  }

  function openSaveDialog() {
    $('save-query').textContent = currentSearch() || '(everything)';
    $('save-name').value = '';
    $('save-description').value = '';
    $('save-shared').checked = false;
    $('save-error').hidden = true;
    $('save-dialog').showModal();
    $('save-name').focus();
  }

  async function submitSave(event) {
    event.preventDefault();
    const body = {
      name: $('save-name').value,
      description: $('save-description').value,
      search: currentSearch(),
      shared: $('save-shared').checked,
    };
    $('save-submit').disabled = true;
    try {
      const saved = await api('/api/v1/saved-searches', null, body);
      $('save-dialog').close();
      await showList();
      $('saved-status').textContent = `Saved "${saved.name}".`;
    } catch (error) {
      $('save-error').textContent = error.message;
      $('save-error').hidden = false;
    } finally {
      $('save-submit').disabled = false;
    }
  }

  async function showList() {
    $('saved-panel').hidden = false;
    $('saved-status').textContent = '';
    await loadList(true);
  }

  async function loadList(fromStart) {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (!fromStart && nextCursor) params.set('cursor', nextCursor);
    try {
      const page = await api('/api/v1/saved-searches', params);
      const rows = page.saved_searches.map(savedRow);
      if (fromStart) $('saved-rows').replaceChildren(...rows);
      else $('saved-rows').append(...rows);
      nextCursor = page.next_cursor;
      $('saved-more').hidden = !nextCursor;
      $('saved-empty').hidden = $('saved-rows').children.length > 0;
    } catch (error) {
      $('saved-status').textContent = error.message;
    }
  }

  function savedRow(saved) {
    const row = el('tr', 'saved-row');
    row.dataset.id = String(saved.id);
    const name = el('td', 'saved-name');
    const open = el('a', 'saved-open', saved.name);
    open.href = saved.explorer;
    open.title = 'Open this search';
    name.append(open);
    if (saved.description) name.append(el('div', 'muted saved-description', saved.description));
    const search = el('td', 'saved-search');
    search.append(el('code', null, saved.search || '(everything)'));
    const owner = el('td', 'saved-owner');
    owner.append(el('span', null, saved.owner), ' ',
      el('span', `saved-badge ${saved.shared ? 'shared' : 'private'}`, saved.shared ? 'shared' : 'private'));
    const link = el('td', 'saved-link');
    link.append(el('code', null, saved.link));
    const actions = el('td', 'saved-actions');
    if (saved.editable) {
      const remove = el('button', 'link-button saved-delete', 'Delete');
      remove.type = 'button';
      remove.addEventListener('click', () => deleteSaved(saved, row));
      actions.append(remove);
    }
    row.append(name, search, owner, link, actions);
    return row;
  }

  async function deleteSaved(saved, row) {
    if (!window.confirm(`Delete the saved search "${saved.name}"?`)) return;
    try {
      await api(`/api/v1/saved-searches/${encodeURIComponent(saved.id)}`, null, undefined, 'DELETE');
      row.remove();
      $('saved-status').textContent = `Deleted "${saved.name}".`;
      $('saved-empty').hidden = $('saved-rows').children.length > 0;
    } catch (error) {
      $('saved-status').textContent = error.message;
    }
  }

  document.addEventListener('DOMContentLoaded', build);
})();
