// The page: the login form, or the conversation list beside the open conversation. On a
// phone-sized screen only one of the two columns shows at a time.

import { html } from 'htm/preact';
import { useEffect } from 'preact/hooks';
import { useStore } from '../store.js';
import { LoginView } from './login.js';
import { Sidebar } from './sidebar.js';
import { ConversationView } from './conversation.js';

export function App() {
  const state = useStore();
  // Unread messages show in the tab's title, for when the page is in the background.
  const unread = [...state.conversations.values()].reduce((n, c) => n + (c.unread_count || 0), 0);
  useEffect(() => {
    document.title = unread ? `(${unread}) Chat` : 'Chat';
  }, [unread]);
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
