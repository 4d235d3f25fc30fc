// The sign-in page: posts the email and password as JSON to /api/v1/session (the server
// sets the HttpOnly session cookie) and goes back to the page that asked (`next`, a path
// on this server only) or to the logs. Plain JavaScript, no build step.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  /** Where to go once signed in: `next` when it is a path on this server, else `/`. */
  function destination() {
    const next = new URLSearchParams(location.search).get('next') || '/';
    return next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/';
  }

  function showError(message) {
    $('sign-in-error').hidden = !message;
    $('sign-in-error').textContent = message || '';
  }

  async function submit(event) {
    event.preventDefault();
    showError('');
    $('sign-in-submit').disabled = true;
    try {
      const response = await fetch('/api/v1/session', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email: $('email').value, password: $('password').value }),
      });
      if (response.ok) {
        location.assign(destination());
        return;
      }
      $('password').value = '';
      if (response.status === 401) {
        showError('Wrong email or password. After 5 wrong passwords in a row an account waits a while before it signs in again.');
      } else if (response.status === 429) {
        const wait = response.headers.get('Retry-After');
        showError(`Too many attempts: try again in ${wait || 'a few'} seconds.`);
      } else {
        const body = await response.json().catch(() => null);
        showError((body && body.error) || `The server answered ${response.status}.`);
      }
    } catch (error) {
      showError(`Cannot reach the server: ${error.message}`);
    } finally {
      $('sign-in-submit').disabled = false;
    }
  }

  $('use-key').href = destination();
  $('sign-in-form').addEventListener('submit', submit);
})();
