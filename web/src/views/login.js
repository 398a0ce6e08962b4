// Sign up and log in.

import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { login, signup } from '../store.js';

export function LoginView() {
  const [mode, setMode] = useState('login');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === 'signup') await signup(username.trim(), password, displayName.trim());
      else await login(username.trim(), password);
    } catch (err) {
      const fields = err.errors?.map((f) => `${f.field}: ${f.message}`).join('; ');
      setError(fields || err.message);
    } finally {
      setBusy(false);
    }
  }

  const signingUp = mode === 'signup';
  return html`
    <main class="login">
      <form class="card" onSubmit=${submit} aria-labelledby="login-title">
        <h1 id="login-title">${signingUp ? 'Create your account' : 'Log in to Chat'}</h1>
        <label>
          Username
          <input name="username" autocomplete="username" required minlength="3" maxlength="32"
            value=${username} onInput=${(e) => setUsername(e.currentTarget.value)} />
        </label>
        ${signingUp &&
        html`<label>
          Display name
          <input name="display_name" autocomplete="name" maxlength="64"
            value=${displayName} onInput=${(e) => setDisplayName(e.currentTarget.value)} />
        </label>`}
        <label>
          Password
          <input name="password" type="password" required minlength="8"
            autocomplete=${signingUp ? 'new-password' : 'current-password'}
            value=${password} onInput=${(e) => setPassword(e.currentTarget.value)} />
        </label>
        ${error && html`<p class="error" role="alert">${error}</p>`}
        <button type="submit" class="primary" disabled=${busy}>${signingUp ? 'Sign up' : 'Log in'}</button>
        <p class="switch">
          ${signingUp ? 'Already have an account?' : 'New here?'}
          <button type="button" class="link" onClick=${() => { setMode(signingUp ? 'login' : 'signup'); setError(null); }}>
            ${signingUp ? 'Log in' : 'Create an account'}
          </button>
        </p>
      </form>
    </main>
  `;
}
