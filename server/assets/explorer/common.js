// What both explorer pages share, loaded before each page's own script: DOM helpers, the
// admin key (asked for in the page's key dialog, kept in sessionStorage for this tab and
// nowhere else) and the read API called with it. Plain JavaScript, no build step; every
// string from the server is set as text, never parsed as HTML.
'use strict';

window.Explorer = (() => {
  const KEY_STORAGE = 'logIngestion.adminKey';

  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const SVG = 'http://www.w3.org/2000/svg';
  const svgEl = (tag, attributes) => {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    return node;
  };

  const pad = (n, width = 2) => String(n).padStart(width, '0');

  /** An ISO time as a datetime-local input's value (local time), '' when there is none. */
  function toLocalInput(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  /** A datetime-local input's value as an ISO time, null when there is none. */
  function fromLocalInput(value) {
    if (!value) return null;
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? null : d.toISOString();
  }

  function showCustomRange(shown) {
    for (const label of document.querySelectorAll('.custom-range')) label.hidden = !shown;
  }

  class ApiError extends Error {}

  // The server's `{"error", "details"}` as one line (details are capped server-side).
  function errorText(response, body) {
    const details = body && Array.isArray(body.details) ? `: ${body.details.join('; ')}` : '';
    return `${(body && body.error) || `HTTP ${response.status}`}${details}`;
  }

  const storedKey = () => sessionStorage.getItem(KEY_STORAGE);

  function askForKey(message) {
    const dialog = $('key-dialog');
    $('key-error').hidden = !message;
    $('key-error').textContent = message || '';
    $('key-input').value = '';
    if (!dialog.open) dialog.showModal();
    $('key-input').focus();
  }

  /**
   * Wires the key dialog and the "Forget key" button; `onForget` runs when the key is
   * dropped, `onKey` once a new key is accepted. Answers the page's key and API calls.
   */
  function session({ onForget = () => {}, onKey }) {
    function forgetKey(message) {
      sessionStorage.removeItem(KEY_STORAGE);
      $('forget-key').hidden = true;
      onForget();
      askForKey(message);
    }

    async function submitKey(event) {
      event.preventDefault();
      const key = $('key-input').value.trim();
      if (!key) return;
      $('key-submit').disabled = true;
      try {
        const response = await fetch('/api/v1/services?since=1h', { headers: { 'X-API-Key': key } });
        if (response.status === 401) {
          askForKey('That key is not an admin key.');
          return;
        }
        sessionStorage.setItem(KEY_STORAGE, key);
        $('forget-key').hidden = false;
        $('key-dialog').close();
        onKey();
      } catch (error) {
        askForKey(`Cannot reach the server: ${error.message}`);
      } finally {
        $('key-submit').disabled = false;
      }
    }

    /**
     * `path?params` with the key (a JSON POST of `body` when given, or `method`), as
     * JSON (null for an empty answer).
     */
    async function api(path, params, body, method) {
      const key = storedKey();
      if (!key) {
        askForKey();
        throw new ApiError('An admin key is needed.');
      }
      const query = params && params.toString();
      const init = { headers: { 'X-API-Key': key } };
      if (method) init.method = method;
      if (body !== undefined) {
        init.method = method || 'POST';
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      const response = await fetch(query ? `${path}?${query}` : path, init);
      if (response.status === 401) {
        forgetKey('The stored key was refused; enter an admin key.');
        throw new ApiError('The admin key was refused.');
      }
      const answer = await response.json().catch(() => null);
      if (!response.ok) throw new ApiError(errorText(response, answer));
      return answer;
    }

    $('key-form').addEventListener('submit', submitKey);
    $('key-dialog').addEventListener('cancel', (event) => {
      if (!storedKey()) event.preventDefault();
    });
    $('forget-key').addEventListener('click', () => forgetKey());
    // The page's other scripts (saved searches) call the API the same way.
    window.Explorer.api = api;
    return { storedKey, askForKey, forgetKey, api };
  }

  return { $, el, svgEl, pad, toLocalInput, fromLocalInput, showCustomRange, ApiError, errorText, session };
})();
