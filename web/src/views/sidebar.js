// The left column: who is signed in, the connection, the conversation list, and
// starting a direct conversation or a group.

import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import {
  conversationTitle, createGroup, logout, navigate, otherParticipant, participantName, sortedConversations, startDirect,
  state, typingUsers,
} from '../store.js';
import { shortTime } from './format.js';

const CONNECTION_LABEL = {
  online: 'Connected',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

export function Sidebar() {
  const [composing, setComposing] = useState(false);
  const { me, connection } = state;
  return html`
    <aside class="sidebar" aria-label="Conversations and account">
      <header class="sidebar-head">
        <div class="me">
          <span class="avatar" aria-hidden="true">${initials(me.display_name || me.username)}</span>
          <div>
            <strong data-testid="me">${me.display_name || me.username}</strong>
            <span class=${`connection ${connection.state}`} role="status" data-gateway=${connection.gatewayId || ''}>
              ${CONNECTION_LABEL[connection.state] || connection.state}
            </span>
          </div>
        </div>
        <button type="button" class="ghost" onClick=${() => logout()}>Log out</button>
      </header>
      <div class="sidebar-actions">
        <button type="button" class="primary" aria-expanded=${composing} onClick=${() => setComposing(!composing)}>
          ${composing ? 'Close' : 'New conversation'}
        </button>
      </div>
      ${composing && html`<${NewConversation} onDone=${() => setComposing(false)} />`}
      <${ConversationList} />
    </aside>
  `;
}

function ConversationList() {
  const conversations = sortedConversations();
  if (!state.listLoaded) return html`<p class="muted pad">Loading conversations…</p>`;
  if (conversations.length === 0) {
    return html`<p class="muted pad">No conversations yet. Start one with “New conversation”.</p>`;
  }
  return html`
    <nav class="conversations" aria-label="Conversations">
      <ul>
        ${conversations.map((c) => html`<${ConversationItem} key=${c.id} c=${c} />`)}
      </ul>
    </nav>
  `;
}

function ConversationItem({ c }) {
  const title = conversationTitle(c);
  const other = otherParticipant(c);
  const online = other && state.presence.get(other.user_id);
  const active = state.route.conversationId === c.id;
  const typing = typingUsers(c.id).length > 0;
  const last = c.last_message;
  let preview = 'No messages yet';
  if (typing) preview = 'typing…';
  else if (last) {
    const who = last.sender === state.me.id ? 'You: ' : c.is_group ? `${participantName(c, last.sender)}: ` : '';
    const body = last.deleted_at ? 'Message deleted' : last.text || (last.attachments?.length || last.kind !== 'text' ? '📎 Attachment' : '');
    preview = who + body;
  }
  const unread = c.unread_count || 0;
  const href = `/chat/c/${c.id}`;
  return html`
    <li>
      <a href=${href} class=${`conversation ${active ? 'active' : ''}`} aria-current=${active ? 'page' : undefined}
        data-conversation=${c.id}
        onClick=${(e) => { e.preventDefault(); navigate(href); }}>
        <span class="avatar" aria-hidden="true">
          ${c.is_group ? '#' : initials(title)}
          ${other && html`<span class=${`dot ${online ? 'on' : ''}`}></span>`}
        </span>
        <span class="conversation-text">
          <span class="conversation-top">
            <span class="title">${title}</span>
            ${last && html`<time datetime=${last.created_at}>${shortTime(last.created_at)}</time>`}
          </span>
          <span class="conversation-bottom">
            <span class=${`preview ${typing ? 'typing' : ''}`}>${preview}</span>
            ${unread > 0 && html`<span class="badge" data-testid="unread" aria-label=${`${unread} unread`}>${unread >= 100 ? '99+' : unread}</span>`}
          </span>
          ${other && html`<span class="visually-hidden">${online ? 'online' : 'offline'}</span>`}
        </span>
      </a>
    </li>
  `;
}

/** Find people; message one of them, or pick several and name a group. */
function NewConversation({ onDone }) {
  const [query, setQuery] = useState('');
  const [results, setResults] = useState([]);
  const [picked, setPicked] = useState([]);
  const [groupName, setGroupName] = useState('');
  const [error, setError] = useState(null);
  const input = useRef(null);

  useEffect(() => input.current?.focus(), []);
  useEffect(() => {
    const q = query.trim();
    if (!q) {
      setResults([]);
      return undefined;
    }
    const timer = setTimeout(() => {
      api.searchUsers(q).then(
        (users) => setResults(users.filter((u) => u.id !== state.me.id)),
        (err) => setError(err.message),
      );
    }, 150);
    return () => clearTimeout(timer);
  }, [query]);

  const isPicked = (u) => picked.some((p) => p.id === u.id);
  const toggle = (u) => setPicked(isPicked(u) ? picked.filter((p) => p.id !== u.id) : [...picked, u]);

  async function act(fn) {
    setError(null);
    try {
      await fn();
      onDone();
    } catch (err) {
      setError(err.message);
    }
  }

  return html`
    <section class="new-conversation" aria-label="New conversation">
      <label>
        Find people
        <input ref=${input} type="search" placeholder="Name or username" value=${query}
          onInput=${(e) => setQuery(e.currentTarget.value)} />
      </label>
      <ul class="people" aria-label="People found">
        ${results.map((u) => html`
          <li key=${u.id}>
            <label class="person">
              <input type="checkbox" checked=${isPicked(u)} onChange=${() => toggle(u)}
                aria-label=${`Add ${u.display_name} to a group`} />
              <span><strong>${u.display_name}</strong> <span class="muted">@${u.username}</span></span>
            </label>
            <button type="button" class="small" onClick=${() => act(() => startDirect(u))}
              aria-label=${`Message ${u.display_name}`}>Message</button>
          </li>`)}
      </ul>
      ${query.trim() && results.length === 0 && html`<p class="muted">Nobody found.</p>`}
      ${picked.length > 0 && html`
        <form class="group-form" onSubmit=${(e) => { e.preventDefault(); act(() => createGroup(groupName.trim(), picked)); }}>
          <label>
            Group name
            <input required maxlength="100" value=${groupName} onInput=${(e) => setGroupName(e.currentTarget.value)} />
          </label>
          <p class="muted">With ${picked.map((u) => u.display_name).join(', ')}</p>
          <button type="submit" class="primary">Create group</button>
        </form>`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </section>
  `;
}

export function initials(name) {
  return (name || '?')
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => w[0].toUpperCase())
    .join('');
}
