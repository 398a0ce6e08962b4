// The open conversation: its header, the history (scrolling back loads older pages), the
// messages being sent, who is typing, and the composer.

import { html } from 'htm/preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import {
  conversationTitle, deleteMessage, discard, editMessage, loadOlder, navigate, orderedMessages, otherParticipant,
  participantName, retry, sendFile, sendText, state, typed, typingUsers, notice,
} from '../store.js';
import { MessageItem } from './message.js';

export function ConversationView({ id }) {
  const c = state.conversations.get(id);
  if (state.openError === 'not_found') {
    return html`
      <section class="conversation-view empty">
        <${BackButton} />
        <p role="alert" class="error">This conversation does not exist, or you are not one of its participants.</p>
      </section>`;
  }
  if (state.openError) {
    return html`<section class="conversation-view empty"><${BackButton} /><p role="alert" class="error">${state.openError}</p></section>`;
  }
  if (!c) return html`<section class="conversation-view empty"><p class="muted">Loading…</p></section>`;
  return html`
    <section class="conversation-view" aria-label=${conversationTitle(c)}
      onDragOver=${(e) => e.preventDefault()}
      onDrop=${(e) => {
        e.preventDefault();
        for (const f of e.dataTransfer?.files || []) sendFile(c.id, f, '', null);
      }}>
      <${Header} c=${c} />
      <${Messages} c=${c} />
      <${Composer} c=${c} />
    </section>
  `;
}

function BackButton() {
  return html`<button type="button" class="back" aria-label="Back to conversations" onClick=${() => navigate('/chat/')}>←</button>`;
}

function Header({ c }) {
  const other = otherParticipant(c);
  let subtitle;
  if (other) subtitle = state.presence.get(other.user_id) ? 'online' : 'offline';
  else subtitle = `${c.participant_count ?? c.participants?.length ?? 0} participants`;
  return html`
    <header class="conversation-head">
      <${BackButton} />
      <div>
        <h2>${conversationTitle(c)}</h2>
        <span class=${`presence ${subtitle}`} data-testid="presence">${subtitle}</span>
      </div>
    </header>
  `;
}

function Messages({ c }) {
  const list = useRef(null);
  const top = useRef(null);
  const stick = useRef(true); // follow new messages while the user is at the bottom
  const before = useRef(null); // scroll anchor while older pages load
  const messages = orderedMessages(c.id);
  const pending = state.outbox.get(c.id) || [];
  const t = state.threads.get(c.id);
  const typing = typingUsers(c.id);
  const byId = new Map(messages.map((m) => [m.id, m]));

  // Scroll back: load the previous page when the top comes into view.
  useEffect(() => {
    if (!top.current || !list.current) return undefined;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting) && list.current) {
          before.current = { height: list.current.scrollHeight, top: list.current.scrollTop };
          loadOlder(c.id);
        }
      },
      { root: list.current, rootMargin: '200px 0px 0px 0px' },
    );
    observer.observe(top.current);
    return () => observer.disconnect();
  }, [c.id, t?.loaded, t?.hasMore]);

  useLayoutEffect(() => {
    const el = list.current;
    if (!el) return;
    if (before.current && !t?.loadingOlder) {
      // Older messages were added above: keep what the user was looking at in place.
      el.scrollTop = before.current.top + (el.scrollHeight - before.current.height);
      before.current = null;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
  });

  useEffect(() => {
    stick.current = true;
  }, [c.id]);

  const onScroll = (e) => {
    const el = e.currentTarget;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  };

  return html`
    <div class="messages" ref=${list} onScroll=${onScroll}>
      <div ref=${top} class="history-top">
        ${t?.loadingOlder ? html`<p class="muted">Loading older messages…</p>`
          : t?.loaded && !t.hasMore ? html`<p class="muted">This is the beginning of the conversation.</p>` : null}
      </div>
      <div role="log" aria-live="polite" aria-label="Messages">
        <ol class="message-list">
          ${messages.map((m) => html`<${MessageItem} key=${m.id} c=${c} m=${m} replied=${m.reply_to && byId.get(m.reply_to)} />`)}
          ${pending.map((p) => html`<${PendingItem} key=${p.key} c=${c} p=${p} replied=${p.replyTo && byId.get(p.replyTo)} />`)}
        </ol>
      </div>
      <p class="typing" aria-live="polite" data-testid="typing">
        ${typing.length ? `${typing.map((u) => participantName(c, u)).join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing…` : ''}
      </p>
    </div>
  `;
}

const PENDING_LABEL = { uploading: 'Uploading', processing: 'Checking file', sending: 'Sending', failed: 'Not sent' };

function PendingItem({ c, p, replied }) {
  return html`
    <li class="message mine pending" data-status=${p.state} data-client-id=${p.key}>
      <div class="bubble">
        ${replied && html`<blockquote class="reply-quote">${replied.text || 'Attachment'}</blockquote>`}
        ${p.previewUrl && html`<img class="thumb" src=${p.previewUrl} alt=${p.fileName} />`}
        ${p.fileName && !p.previewUrl && html`<span class="file">📎 ${p.fileName}</span>`}
        ${p.state === 'uploading' && html`
          <progress max="1" value=${p.progress} aria-label=${`Uploading ${p.fileName}`}>${Math.round(p.progress * 100)}%</progress>`}
        ${p.text && html`<p class="text">${p.text}</p>`}
        <span class="meta">
          <span class="status" aria-label=${PENDING_LABEL[p.state]}>${p.state === 'failed' ? '⚠' : '🕓'} ${PENDING_LABEL[p.state]}</span>
        </span>
        ${p.state === 'failed' && html`
          <span class="failed-actions">
            ${p.error && html`<span class="error">${p.error}</span>`}
            <button type="button" class="small" onClick=${() => retry(c.id, p.key)}>Retry</button>
            <button type="button" class="small ghost" onClick=${() => discard(c.id, p.key)}>Discard</button>
          </span>`}
      </div>
    </li>
  `;
}

function Composer({ c }) {
  const [text, setText] = useState('');
  const area = useRef(null);
  const file = useRef(null);
  const [mode, setMode] = useState(null); // { kind: 'reply' | 'edit', message }

  useEffect(() => {
    setText('');
    setMode(null);
  }, [c.id]);

  // Message actions ask the composer to reply to or edit a message.
  useEffect(() => {
    const onAction = (e) => {
      if (e.detail.conversationId !== c.id) return;
      setMode({ kind: e.detail.kind, message: e.detail.message });
      if (e.detail.kind === 'edit') setText(e.detail.message.text);
      area.current?.focus();
    };
    window.addEventListener('chat:compose', onAction);
    return () => window.removeEventListener('chat:compose', onAction);
  }, [c.id]);

  async function submit(e) {
    e?.preventDefault();
    const body = text.trim();
    if (!body) return;
    if (mode?.kind === 'edit') {
      try {
        await editMessage(c.id, mode.message.id, body);
        setMode(null);
        setText('');
      } catch (err) {
        notice(`Not edited: ${err.message}`);
      }
      return;
    }
    sendText(c.id, body, mode?.kind === 'reply' ? mode.message : null);
    setText('');
    setMode(null);
  }

  function onKeyDown(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) submit(e);
    else if (e.key === 'Escape' && mode) {
      setMode(null);
      if (mode.kind === 'edit') setText('');
    }
  }

  function onFiles(e) {
    for (const f of e.currentTarget.files) sendFile(c.id, f, '', mode?.kind === 'reply' ? mode.message : null);
    e.currentTarget.value = '';
    if (mode?.kind === 'reply') setMode(null);
  }

  return html`
    <form class="composer" onSubmit=${submit}>
      ${mode && html`
        <div class="composer-mode">
          <span>${mode.kind === 'edit' ? 'Editing message' : `Replying to ${participantName(c, mode.message.sender)}`}:
            <em>${mode.message.text || 'Attachment'}</em></span>
          <button type="button" class="small ghost" aria-label="Cancel" onClick=${() => { setMode(null); if (mode.kind === 'edit') setText(''); }}>✕</button>
        </div>`}
      <div class="composer-row">
        <label class="attach" title="Attach a file">
          <span aria-hidden="true">📎</span>
          <input ref=${file} type="file" multiple class="visually-hidden" aria-label="Attach a file" onChange=${onFiles} />
        </label>
        <textarea ref=${area} rows="1" aria-label="Message" placeholder="Write a message" maxlength="4000"
          value=${text}
          onInput=${(e) => { setText(e.currentTarget.value); typed(c.id); }}
          onKeyDown=${onKeyDown}></textarea>
        <button type="submit" class="primary send" disabled=${!text.trim()}>${mode?.kind === 'edit' ? 'Save' : 'Send'}</button>
      </div>
    </form>
  `;
}

/** Asks the composer to reply to or edit a message. */
export function compose(kind, conversationId, message) {
  window.dispatchEvent(new CustomEvent('chat:compose', { detail: { kind, conversationId, message } }));
}

export async function confirmDelete(conversationId, message) {
  if (!window.confirm('Delete this message for everyone?')) return;
  try {
    await deleteMessage(conversationId, message.id);
  } catch (err) {
    notice(`Not deleted: ${err.message}`);
  }
}
