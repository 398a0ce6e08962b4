// The page: the login form, or the conversation list beside the open conversation. On a
// phone-sized screen only one of the two columns shows at a time.

import { html } from 'htm/preact';
import { useStore } from '../store.js';
import { LoginView } from './login.js';
import { Sidebar } from './sidebar.js';
import { ConversationView } from './conversation.js';

export function App() {
  const state = useStore();
  if (state.booting) return html`<p class="muted pad" role="status">Loading…</p>`;
  if (!state.me) return html`<${LoginView} />`;
  const open = state.route.conversationId;
  return html`
    <div class=${`layout ${open ? 'has-open' : ''}`}>
      <${Sidebar} />
      <main class="main">
        ${open
          ? html`<${ConversationView} id=${open} />`
          : html`<section class="conversation-view empty"><p class="muted">Pick a conversation, or start a new one.</p></section>`}
      </main>
      ${state.notice && html`<p class="toast" role="alert">${state.notice}</p>`}
    </div>
  `;
}
