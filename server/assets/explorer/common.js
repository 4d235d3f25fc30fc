// What both explorer pages share, loaded before each page's own script: DOM helpers, who
// is reading (a person signed in with a session cookie, shown in the header with "Sign
// out"; or the admin key, asked for in the page's key dialog and kept in sessionStorage
// for this tab and nowhere else) and the API called as them (a change made with a
// session carries its X-CSRF-Token). Plain JavaScript, no build step; every
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

  // The person signed in (GET /api/v1/session), asked once per page; null when none.
  let person = null;
  let personAsked = null;

  function showPerson() {
    const who = $('who');
    const signOut = $('sign-out');
    if (who) {
      who.hidden = !person;
      who.textContent = person ? `${person.email} (${person.role})` : '';
    }
    if (signOut) signOut.hidden = !person;
  }

  // The server sets this page-readable marker beside the (HttpOnly) session cookie, so a
  // page nobody signed in to never asks (and never logs a 401).
  const MARKER = 'log_ingestion_signed_in=1';
  const hasMarker = () => document.cookie.split(';').some((pair) => pair.trim() === MARKER);

  function whoAmI() {
    if (!personAsked && !hasMarker()) personAsked = Promise.resolve(null);
    if (!personAsked) {
      personAsked = fetch('/api/v1/session')
        .then((response) => {
          if (response.ok) return response.json();
          document.cookie = 'log_ingestion_signed_in=; Max-Age=0; Path=/; SameSite=Lax';
          return null;
        })
        .catch(() => null)
        .then((answer) => {
          person = answer && answer.email ? answer : null;
          showPerson();
          return person;
        });
    }
    return personAsked;
  }

  function forgetPerson() {
    person = null;
    personAsked = null;
    showPerson();
  }

  /** Whether the page may call the API: an admin key is stored or a person is signed in. */
  async function signedIn() {
    return Boolean(storedKey()) || (await whoAmI()) !== null;
  }

  /** The headers that say who calls: the key, or for a change made with a session its CSRF token. */
  function authHeaders(method = 'GET') {
    const key = storedKey();
    if (key) return { 'X-API-Key': key };
    const changes = !['GET', 'HEAD'].includes(method.toUpperCase());
    return person && changes ? { 'X-CSRF-Token': person.csrf_token } : {};
  }

  async function signOut() {
    await fetch('/api/v1/session', { method: 'DELETE', headers: authHeaders('DELETE') }).catch(() => null);
    forgetPerson();
    location.assign('/sign-in');
  }

  function askForKey(message) {
    const link = $('sign-in-link');
    if (link) link.href = `/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`;
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
     * `path?params` as the key or the person signed in (a JSON POST of `body` when given,
     * or `method`), as JSON (null for an empty answer).
     */
    async function api(path, params, body, method) {
      const key = storedKey();
      if (!key && !(await whoAmI())) {
        askForKey();
        throw new ApiError('Sign in or enter an admin key.');
      }
      const query = params && params.toString();
      const verb = method || (body !== undefined ? 'POST' : 'GET');
      const init = { method: verb, headers: authHeaders(verb) };
      if (body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      const response = await fetch(query ? `${path}?${query}` : path, init);
      if (response.status === 401) {
        if (key) {
          forgetKey('The stored key was refused; enter an admin key.');
          throw new ApiError('The admin key was refused.');
        }
        forgetPerson();
        askForKey('Your session has ended: sign in again or enter an admin key.');
        throw new ApiError('The session has ended.');
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
    const signOutButton = $('sign-out');
    if (signOutButton) signOutButton.addEventListener('click', () => signOut());
    // The page's other scripts (saved searches) call the API the same way.
    window.Explorer.api = api;
    return { storedKey, signedIn, authHeaders, askForKey, forgetKey, api };
  }

  return {
    $, el, svgEl, pad, toLocalInput, fromLocalInput, showCustomRange, ApiError, errorText, session, signedIn, authHeaders,
  };
})();
