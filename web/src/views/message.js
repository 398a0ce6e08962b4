// One committed message: reply quote, text or attachments, time, our message's delivery
// state, reactions, and its actions (reply, react, edit, delete).

import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { deliveryState, participantName, state, toggleReaction, notice } from '../store.js';
import { compose, confirmDelete } from './conversation.js';
import { clock, fileSize } from './format.js';

const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'];

const STATUS = {
  sent: { icon: '✓', label: 'Sent' },
  delivered: { icon: '✓✓', label: 'Delivered' },
  read: { icon: '✓✓', label: 'Read' },
};

export function MessageItem({ c, m, replied }) {
  const [picking, setPicking] = useState(false);
  const [open, setOpen] = useState(false); // actions shown (tap on touch screens)
  const mine = m.sender === state.me.id;
  const gone = Boolean(m.deleted_at) || m.moderation === 'hidden';
  const status = mine ? deliveryState(c, m) : null;
  const sender = participantName(c, m.sender);
  const react = (emoji) => {
    setPicking(false);
    toggleReaction(c.id, m, emoji).catch((err) => notice(`Reaction failed: ${err.message}`));
  };
  return html`
    <li class=${`message ${mine ? 'mine' : 'theirs'} ${gone ? 'gone' : ''} ${open ? 'open' : ''}`} data-seq=${m.seq} data-id=${m.id}
      data-status=${status || undefined} tabindex="0">
      <div class="bubble" onClick=${(e) => { if (!e.target.closest('a, button')) setOpen(!open); }}>
        ${c.is_group && !mine && html`<span class="sender">${sender}</span>`}
        ${m.reply_to && html`
          <blockquote class="reply-quote">
            ${replied ? html`<span class="sender">${participantName(c, replied.sender)}</span> ${replied.text || 'Attachment'}` : 'An earlier message'}
          </blockquote>`}
        ${gone
          ? html`<p class="text deleted">${m.deleted_at ? 'This message was deleted' : 'Hidden by a moderator'}</p>`
          : html`
            ${m.attachments.map((a) => html`<${AttachmentView} key=${a.id} a=${state.attachments.get(a.id) || a} />`)}
            ${m.text && html`<p class="text">${m.text}</p>`}`}
        <span class="meta">
          ${m.edited_at && !gone && html`<span class="edited">edited</span>`}
          <time datetime=${m.created_at}>${clock(m.created_at)}</time>
          ${status && html`<span class=${`status ${status}`} aria-label=${STATUS[status].label} title=${STATUS[status].label}>${STATUS[status].icon}</span>`}
        </span>
      </div>
      ${m.reactions.length > 0 && !gone && html`
        <div class="reactions">
          ${m.reactions.map((r) => html`
            <button type="button" class=${`reaction ${r.reacted_by_me ? 'mine' : ''}`} aria-pressed=${r.reacted_by_me}
              aria-label=${`${r.emoji} ${r.count}`} onClick=${() => react(r.emoji)}>${r.emoji} ${r.count}</button>`)}
        </div>`}
      ${!gone && html`
        <div class="actions">
          <button type="button" class="small ghost" aria-label="Reply" onClick=${() => compose('reply', c.id, m)}>↩</button>
          <button type="button" class="small ghost" aria-label="React" aria-expanded=${picking} onClick=${() => setPicking(!picking)}>☺</button>
          ${mine && html`
            <button type="button" class="small ghost" aria-label="Edit" onClick=${() => compose('edit', c.id, m)}>✎</button>
            <button type="button" class="small ghost" aria-label="Delete" onClick=${() => confirmDelete(c.id, m)}>🗑</button>`}
          ${picking && html`
            <span class="picker" role="group" aria-label="Pick a reaction">
              ${QUICK_REACTIONS.map((e) => html`<button type="button" class="small ghost" aria-label=${`React ${e}`} onClick=${() => react(e)}>${e}</button>`)}
            </span>`}
        </div>`}
    </li>
  `;
}

function AttachmentView({ a }) {
  if (a.state === 'rejected') return html`<span class="file rejected">⚠ ${a.file_name}: ${a.error || 'refused'}</span>`;
  if (!a.download_url) return html`<span class="file">📎 ${a.file_name}</span>`;
  if (a.thumbnail_url) {
    return html`
      <a class="image" href=${a.download_url} target="_blank" rel="noopener" aria-label=${`Open ${a.file_name}`}>
        <img class="thumb" src=${a.thumbnail_url} alt=${a.file_name} loading="lazy"
          width=${thumbSize(a).width} height=${thumbSize(a).height} />
      </a>`;
  }
  return html`
    <a class="file" href=${a.download_url} download=${a.file_name}>
      📎 ${a.file_name} <span class="muted">${fileSize(a.size)}</span>
    </a>`;
}

/** The thumbnail's box (at most 256×256, aspect kept), so the list does not jump. */
function thumbSize(a) {
  if (!a.width || !a.height) return { width: 256, height: 256 };
  const scale = Math.min(1, 256 / Math.max(a.width, a.height));
  return { width: Math.round(a.width * scale), height: Math.round(a.height * scale) };
}
