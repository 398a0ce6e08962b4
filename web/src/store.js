// The page's state and everything that changes it: REST loads, gateway events, and the
// user's actions. Components read `state` and call the actions; every change calls
// `changed()`, which re-renders the page.
//
// Messages are kept by id in each conversation's thread, so whatever way a message
// arrives (REST page, live event, resume after a reconnect, the ack of our own send) it
// is shown once. `positions` holds, per conversation, the last message seq received in
// order from the gateway: a reconnect resumes from there.

import { useEffect, useReducer } from 'preact/hooks';
import { api, keepSessionFresh, refreshSession, stopRefreshing, uploadFile, ApiError } from './api.js';
import { GatewayConnection } from './socket.js';

const TYPING_SHOWN_MS = 6000;
const TYPING_RESEND_MS = 3000;
const TYPING_IDLE_MS = 4000;

export const state = {
  me: null, // the signed-in user
  booting: true,
  config: { gateways: [] },
  conversations: new Map(), // id → conversation (REST shape, kept up to date)
  listLoaded: false,
  threads: new Map(), // conversation id → { messages: Map, loaded, hasMore, loadingOlder }
  outbox: new Map(), // conversation id → [{ key, text, replyTo, state, progress, fileName, error }]
  attachments: new Map(), // attachment id → attachment record (REST shape)
  typing: new Map(), // conversation id → Map(user id → expiry time)
  presence: new Map(), // user id → online
  positions: new Map(), // conversation id → last seq received in order
  connection: { state: 'offline', gatewayId: null },
  route: { view: 'home', conversationId: null },
  openError: null, // why the open conversation could not be shown
  reconnected: false, // a socket was up before: the next hello is a reconnect
  notice: null,
};

const listeners = new Set();
let scheduled = false;

/** Re-renders subscribers (batched to one render per frame of work). */
export function changed() {
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    for (const listener of listeners) listener();
  });
}

/** Re-renders the calling component whenever the state changes. */
export function useStore() {
  const [, bump] = useReducer((n) => n + 1, 0);
  useEffect(() => {
    listeners.add(bump);
    return () => listeners.delete(bump);
  }, []);
  return state;
}

let gateway = null;

// ---------------------------------------------------------------------------
// Messages as the API and the events carry them
// ---------------------------------------------------------------------------

/** One message shape for REST messages (`sender`) and event messages (`sender_id`). */
function normalize(message, previous) {
  const m = { ...message };
  m.sender = message.sender ?? message.sender_id ?? null;
  m.reactions = message.reactions ?? previous?.reactions ?? [];
  // Edit events may carry no attachments: a message's files never change, keep them.
  m.attachments = message.attachments?.length ? message.attachments : previous?.attachments ?? [];
  for (const a of m.attachments) rememberAttachment(a);
  return m;
}

function rememberAttachment(a) {
  const known = state.attachments.get(a.id);
  // REST records carry the URLs; event records do not, so keep what is known.
  if (!known || a.download_url !== undefined) state.attachments.set(a.id, { ...known, ...a });
  const record = state.attachments.get(a.id);
  if (record.download_url === undefined && !record.fetching && record.state === 'ready') {
    record.fetching = true;
    api.attachment(a.id).then(
      (full) => {
        state.attachments.set(a.id, full);
        changed();
      },
      () => {},
    );
  }
}

function thread(conversationId) {
  let t = state.threads.get(conversationId);
  if (!t) {
    t = { messages: new Map(), loaded: false, hasMore: true, loadingOlder: false };
    state.threads.set(conversationId, t);
  }
  return t;
}

function putMessage(conversationId, message) {
  const t = thread(conversationId);
  const previous = t.messages.get(message.id);
  const m = normalize(message, previous);
  t.messages.set(m.id, previous ? { ...previous, ...m } : m);
  return t.messages.get(m.id);
}

/** The messages of a thread in seq order. */
export function orderedMessages(conversationId) {
  const t = state.threads.get(conversationId);
  if (!t) return [];
  return [...t.messages.values()].sort((a, b) => a.seq - b.seq);
}

/** The name to show for a conversation: the group's, or the other person's. */
export function conversationTitle(c) {
  if (!c) return '';
  if (c.is_group) return c.name || 'Group';
  const other = c.participants?.find((p) => p.user_id !== state.me?.id);
  return other ? other.display_name || other.username : c.name || 'Direct conversation';
}

export function otherParticipant(c) {
  if (!c || c.is_group) return null;
  return c.participants?.find((p) => p.user_id !== state.me?.id) || null;
}

export function participantName(c, userId) {
  const p = c?.participants?.find((x) => x.user_id === userId);
  return p ? p.display_name || p.username : 'Someone';
}

/** Whether `c.participants` is the whole list, not the listing's preview. */
export function hasAllParticipants(c) {
  return (c?.participants?.length ?? 0) >= (c?.participant_count ?? 0);
}

/**
 * Our message's state from the others' watermarks: `read` once every other participant
 * has read it, `delivered` once it reached a device of each, else `sent`.
 */
export function deliveryState(c, message) {
  // A large group's listing carries a preview of its participants: then the server's
  // counts (as of the page), not the preview's watermarks.
  if (!hasAllParticipants(c)) return message.delivery?.state || 'sent';
  const others = (c?.participants || []).filter((p) => p.user_id !== state.me?.id);
  if (others.length === 0) return 'sent';
  if (others.every((p) => (p.last_read_seq ?? 0) >= message.seq)) return 'read';
  if (others.every((p) => Math.max(p.last_delivered_seq ?? 0, p.last_read_seq ?? 0) >= message.seq)) return 'delivered';
  return 'sent';
}

/** Conversations, most recently active first. */
export function sortedConversations() {
  const at = (c) => c.last_message?.created_at || c.updated_at || c.created_at;
  return [...state.conversations.values()].sort((a, b) => (at(b) > at(a) ? 1 : at(b) < at(a) ? -1 : 0));
}

export function typingUsers(conversationId) {
  const now = Date.now();
  const m = state.typing.get(conversationId);
  if (!m) return [];
  return [...m].filter(([, until]) => until > now).map(([user]) => user);
}

// ---------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------

export async function boot() {
  try {
    state.config = await fetch('/chat/config.json', { credentials: 'same-origin' }).then((r) => r.json());
  } catch {
    state.config = { gateways: [] };
  }
  state.me = await currentUser();
  state.booting = false;
  route();
  changed();
  if (state.me) await startSession();
}

/** The signed-in user, restoring the session from the refresh cookie when needed. */
async function currentUser() {
  let session;
  try {
    session = await api.session();
  } catch {
    return null;
  }
  if (!session.user && !session.refreshable) return null;
  try {
    // Renewing at once tells us how long the access cookie lasts (and schedules the next).
    return (await refreshSession()).user;
  } catch {
    return session.user ?? null;
  }
}

export async function login(username, password) {
  const session = await api.login(username, password);
  keepSessionFresh(session.expires_in);
  state.me = session.user;
  changed();
  await startSession();
}

export async function signup(username, password, displayName) {
  await api.register(username, password, displayName);
  await login(username, password);
}

export async function logout() {
  try {
    await api.logout();
  } finally {
    endSession();
  }
}

/** Forgets everything of the user (after logout or when the session is lost). */
export function endSession() {
  stopRefreshing();
  gateway?.stop();
  gateway = null;
  state.me = null;
  state.conversations.clear();
  state.threads.clear();
  state.outbox.clear();
  state.positions.clear();
  state.typing.clear();
  state.presence.clear();
  state.listLoaded = false;
  state.reconnected = false;
  state.openError = null;
  readSent.clear();
  receipts.clear();
  state.connection = { state: 'offline', gatewayId: null };
  navigate('/chat/');
  changed();
}

async function startSession() {
  try {
    await loadConversations();
  } catch (err) {
    if (err.status === 401) return;
    // The API is unreachable for now: try again shortly.
    notice(`Cannot load your conversations (${err.message}); retrying…`);
    setTimeout(() => state.me && !gateway && startSession(), 3000);
    return;
  }
  gateway = new GatewayConnection({
    gateways: state.config.gateways?.length ? state.config.gateways : [':8081'],
    positions: () => state.positions,
    onEvent: applyEvent,
    onStatus: onConnection,
    onSessionLost: endSession,
    beforeRetry: loadConversations,
  });
  gateway.start();
  if (state.route.conversationId) openConversation(state.route.conversationId);
}

function onConnection(status) {
  const wasOnline = state.connection.state === 'online';
  state.connection = { state: status.state, gatewayId: status.gatewayId ?? state.connection.gatewayId };
  if (status.state === 'online' && status.hello) {
    for (const p of status.hello.conversations) {
      if (!state.positions.has(p.conversation_id)) state.positions.set(p.conversation_id, p.seq);
    }
    // Edits, reactions and receipts made while we were away are not replayed: reload
    // what is on screen (messages are merged by id, so nothing shows twice).
    if (state.reconnected) refreshOpenConversation();
    state.reconnected = true;
  }
  if (wasOnline && status.state !== 'online') state.typing.clear();
  changed();
}

/**
 * Loads the conversation list, the truth after a (re)connection: conversations the user
 * is no longer in (removed while disconnected) are forgotten, as a gateway would refuse
 * to resume them.
 */
async function loadConversations() {
  const list = await api.conversations();
  const current = new Set(list.map((c) => c.id));
  for (const id of [...state.positions.keys()]) {
    if (!current.has(id)) forgetConversation(id);
  }
  for (const c of list) {
    // Keep the whole participant list an opened large group loaded.
    const known = state.conversations.get(c.id);
    if (!hasAllParticipants(c) && known && hasAllParticipants(known)) c.participants = known.participants;
    state.conversations.set(c.id, c);
    if (!state.positions.has(c.id)) state.positions.set(c.id, c.last_seq ?? 0);
    if (c.last_message) c.last_message = normalize(c.last_message);
  }
  state.listLoaded = true;
  changed();
  for (const c of list) fetchPresence(c);
}

/** Whether the other person of a direct conversation is online (then kept by events). */
function fetchPresence(c) {
  const other = otherParticipant(c);
  if (!other) return;
  api.presence(other.user_id).then(
    (p) => {
      state.presence.set(p.user_id, p.online);
      changed();
    },
    () => {},
  );
}

async function fetchConversation(id) {
  try {
    const c = await api.conversation(id);
    if (c.last_message) c.last_message = normalize(c.last_message);
    const known = state.conversations.has(id);
    const merged = { ...state.conversations.get(id), ...c };
    if (!hasAllParticipants(merged) && state.route.conversationId === id) {
      // The open large group keeps its whole participant list (names, receipts).
      merged.participants = await api.participants(id).catch(() => merged.participants);
    }
    state.conversations.set(id, merged);
    if (!known) fetchPresence(c);
    if (!state.positions.has(id)) state.positions.set(id, c.last_seq ?? 0);
    changed();
    return c;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      state.conversations.delete(id);
      changed();
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Navigation
// ---------------------------------------------------------------------------

function route() {
  const match = location.pathname.match(/^\/chat\/c\/([0-9a-fA-F-]{36})\/?$/);
  state.route = match ? { view: 'conversation', conversationId: match[1].toLowerCase() } : { view: 'home', conversationId: null };
}

export function navigate(path) {
  if (location.pathname !== path) history.pushState(null, '', path);
  route();
  if (state.route.conversationId && state.me) openConversation(state.route.conversationId);
  changed();
}

window.addEventListener('popstate', () => {
  route();
  if (state.route.conversationId && state.me) openConversation(state.route.conversationId);
  changed();
});

async function openConversation(id) {
  state.openError = null;
  changed();
  if (!state.conversations.has(id)) {
    try {
      await fetchConversation(id);
    } catch (err) {
      state.openError = err.status === 404 ? 'not_found' : err.message;
      changed();
      return;
    }
  }
  const c = state.conversations.get(id);
  if (c && !hasAllParticipants(c)) {
    // Names and receipts of everyone, not only the listing's preview.
    try {
      c.participants = await api.participants(id);
    } catch {
      // The preview and the server's counts still work.
    }
  }
  const t = thread(id);
  if (!t.loaded) {
    try {
      const page = await api.history(id);
      for (const m of page.body) putMessage(id, m);
      t.loaded = true;
      t.hasMore = page.hasMore;
    } catch (err) {
      state.openError = err.status === 404 ? 'not_found' : err.message;
      changed();
      return;
    }
  }
  markRead(id);
  changed();
}

async function refreshOpenConversation() {
  const id = state.route.conversationId;
  // Other threads are reloaded when next opened (their newest page merges by id).
  for (const [other, t] of state.threads) if (other !== id) t.loaded = false;
  await loadConversations().catch(() => {});
  if (!id || !state.threads.get(id)?.loaded) return;
  try {
    const page = await api.history(id);
    for (const m of page.body) putMessage(id, m);
    markRead(id);
    changed();
  } catch {
    // Shown again on the next reconnect or navigation.
  }
}

/** Loads the page of history before the oldest message shown. */
export async function loadOlder(id) {
  const t = thread(id);
  if (!t.loaded || !t.hasMore || t.loadingOlder) return;
  const oldest = orderedMessages(id)[0];
  if (!oldest) return;
  t.loadingOlder = true;
  changed();
  try {
    const page = await api.history(id, oldest.seq);
    for (const m of page.body) putMessage(id, m);
    t.hasMore = page.hasMore;
  } finally {
    t.loadingOlder = false;
    changed();
  }
}

// ---------------------------------------------------------------------------
// Receipts
// ---------------------------------------------------------------------------

const readSent = new Map(); // conversation id → highest seq we marked read
const receipts = new Map(); // `${kind} ${conversation id}` → highest seq waiting to be sent
let receiptTimer = null;

/**
 * Receipts go out at once, and those that follow within 150 ms are coalesced into one
 * frame per conversation at the end of that window: a burst of messages costs two frames,
 * and a single message is acknowledged without delay (so leaving the page right after
 * does not lose it).
 */
function queueReceipt(kind, conversationId, seq) {
  const key = `${kind} ${conversationId}`;
  receipts.set(key, Math.max(receipts.get(key) ?? 0, seq));
  if (receiptTimer) return;
  flushReceipts();
  receiptTimer = setTimeout(() => {
    receiptTimer = null;
    flushReceipts();
  }, 150);
}

function flushReceipts() {
  for (const [k, seq] of receipts) {
    const [type, conversation_id] = k.split(' ');
    gateway?.notify({ type, conversation_id, seq });
  }
  receipts.clear();
}

// Whatever is still waiting goes out before the page goes away.
window.addEventListener('pagehide', flushReceipts);

/** Marks the open conversation read up to its newest message, when the page is seen. */
export function markRead(id) {
  const c = state.conversations.get(id);
  if (!c || document.visibilityState !== 'visible' || state.route.conversationId !== id) return;
  const newest = orderedMessages(id).at(-1)?.seq ?? c.last_seq ?? 0;
  if (newest <= (readSent.get(id) ?? 0)) {
    c.unread_count = 0;
    return;
  }
  readSent.set(id, newest);
  c.unread_count = 0;
  c.unread_mentions = 0;
  queueReceipt('read', id, newest);
}

document.addEventListener('visibilitychange', () => {
  if (state.route.conversationId) {
    markRead(state.route.conversationId);
    changed();
  }
});

function setWatermark(c, userId, field, seq) {
  const p = c?.participants?.find((x) => x.user_id === userId);
  if (p && (p[field] ?? 0) < seq) p[field] = seq;
  if (field === 'last_read_seq') setWatermark(c, userId, 'last_delivered_seq', seq);
}

// ---------------------------------------------------------------------------
// Live events
// ---------------------------------------------------------------------------

function applyEvent(ev) {
  const id = ev.conversation_id;
  const c = state.conversations.get(id);
  const data = ev.data || {};
  switch (ev.type) {
    case 'message.created': {
      const m = putMessage(id, data.message);
      if ((state.positions.get(id) ?? 0) < m.seq) state.positions.set(id, m.seq);
      const mine = m.sender === state.me?.id;
      if (mine && m.client_msg_id) removeOutbox(id, (o) => o.key === m.client_msg_id);
      if (!c) {
        fetchConversation(id).catch(() => {});
        break;
      }
      // The conversation's unread count already includes messages up to its last_seq.
      const fresh = m.seq > (c.last_seq ?? 0);
      c.last_seq = Math.max(c.last_seq ?? 0, m.seq);
      if (!c.last_message || c.last_message.seq <= m.seq) c.last_message = m;
      if (!mine) {
        state.typing.get(id)?.delete(m.sender);
        if (state.route.conversationId === id && document.visibilityState === 'visible') {
          markRead(id);
        } else {
          queueReceipt('delivered', id, m.seq);
          if (fresh) c.unread_count = (c.unread_count ?? 0) + 1;
        }
      }
      break;
    }
    case 'message.edited': {
      const m = putMessage(id, data.message);
      if (c?.last_message?.id === m.id) c.last_message = m;
      break;
    }
    case 'message.deleted':
    case 'message.hidden': {
      const m = state.threads.get(id)?.messages.get(data.message_id);
      if (m) {
        if (ev.type === 'message.deleted') m.deleted_at = ev.at;
        else m.moderation = 'hidden';
        m.text = '';
        m.attachments = [];
      }
      if (c?.last_message?.id === data.message_id) c.last_message = { ...c.last_message, text: '', deleted_at: ev.at };
      break;
    }
    case 'reaction.added':
    case 'reaction.removed': {
      const m = state.threads.get(id)?.messages.get(data.message_id);
      if (!m) break;
      const added = ev.type === 'reaction.added';
      const mine = data.user_id === state.me?.id;
      const reactions = m.reactions.map((r) => ({ ...r }));
      let r = reactions.find((x) => x.emoji === data.emoji);
      if (!r && added) reactions.push((r = { emoji: data.emoji, count: 0, reacted_by_me: false }));
      if (r) {
        if (mine && r.reacted_by_me === added) break; // already counted
        r.count += added ? 1 : -1;
        if (mine) r.reacted_by_me = added;
      }
      m.reactions = reactions.filter((x) => x.count > 0);
      break;
    }
    case 'receipt.read':
      setWatermark(c, data.user_id, 'last_read_seq', data.seq);
      if (data.user_id === state.me?.id && c && data.seq >= (c.last_seq ?? 0)) c.unread_count = 0;
      break;
    case 'receipt.delivered':
      setWatermark(c, data.user_id, 'last_delivered_seq', data.seq);
      break;
    case 'typing': {
      if (data.user_id === state.me?.id) break;
      if (!state.typing.has(id)) state.typing.set(id, new Map());
      if (data.typing) {
        state.typing.get(id).set(data.user_id, Date.now() + TYPING_SHOWN_MS);
        setTimeout(changed, TYPING_SHOWN_MS + 50);
      } else {
        state.typing.get(id).delete(data.user_id);
      }
      break;
    }
    case 'presence':
      state.presence.set(data.user_id, data.online);
      break;
    case 'conversation.created':
      if (!state.positions.has(id)) state.positions.set(id, 0);
      fetchConversation(id).catch(() => {});
      break;
    case 'conversation.updated':
      if (c) Object.assign(c, data.conversation, { participants: c.participants, last_message: c.last_message });
      break;
    case 'conversation.deleted':
      forgetConversation(id);
      break;
    case 'participant.left':
      if (data.user_id === state.me?.id) forgetConversation(id);
      else fetchConversation(id).catch(() => {});
      break;
    case 'participant.joined':
    case 'participant.role_changed':
      fetchConversation(id).catch(() => {});
      break;
    case 'attachment.ready':
      rememberAttachment(data.attachment);
      break;
    default:
      return;
  }
  changed();
}

function forgetConversation(id) {
  state.conversations.delete(id);
  state.threads.delete(id);
  state.positions.delete(id);
  if (state.route.conversationId === id) {
    state.openError = 'not_found';
  }
}

// ---------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------

function outbox(id) {
  if (!state.outbox.has(id)) state.outbox.set(id, []);
  return state.outbox.get(id);
}

function removeOutbox(id, predicate) {
  const list = state.outbox.get(id);
  if (!list) return;
  state.outbox.set(id, list.filter((o) => !predicate(o)));
}

function newKey() {
  return crypto.randomUUID();
}

/** Sends a text message: shown at once as `sending`, then as the committed message. */
export function sendText(id, text, replyTo) {
  const item = { key: newKey(), text, replyTo: replyTo?.id ?? null, state: 'sending', createdAt: new Date().toISOString() };
  outbox(id).push(item);
  stopTyping(id);
  changed();
  deliverText(id, item);
}

function deliverText(id, item) {
  item.state = 'sending';
  changed();
  gateway
    .request(
      { type: 'send', conversation_id: id, text: item.text, client_msg_id: item.key, reply_to: item.replyTo || undefined },
      { resend: true },
    )
    .then(
      (ack) => {
        // The committed message replaces the pending one (the event may come before or
        // after this ack; both land on the same message id).
        putMessage(id, {
          id: ack.message_id,
          conversation_id: id,
          seq: ack.seq,
          sender: state.me.id,
          kind: 'text',
          text: item.text,
          client_msg_id: item.key,
          reply_to: item.replyTo,
          created_at: item.createdAt,
          ...state.threads.get(id)?.messages.get(ack.message_id),
        });
        removeOutbox(id, (o) => o.key === item.key);
        changed();
      },
      (err) => {
        item.state = 'failed';
        item.error = err.message;
        changed();
      },
    );
}

/** Sends a failed message again (same idempotency key: never delivered twice). */
export function retry(id, key) {
  const item = state.outbox.get(id)?.find((o) => o.key === key);
  if (!item) return;
  if (item.file) deliverFile(id, item);
  else deliverText(id, item);
}

export function discard(id, key) {
  removeOutbox(id, (o) => o.key === key);
  changed();
}

/** Uploads a file (progress shown), waits until the worker accepted it, then sends it. */
export function sendFile(id, file, caption, replyTo) {
  const item = {
    key: newKey(),
    text: caption || '',
    replyTo: replyTo?.id ?? null,
    file,
    fileName: file.name,
    previewUrl: file.type.startsWith('image/') ? URL.createObjectURL(file) : null,
    state: 'uploading',
    progress: 0,
    createdAt: new Date().toISOString(),
  };
  outbox(id).push(item);
  changed();
  deliverFile(id, item);
}

async function deliverFile(id, item) {
  try {
    if (!item.attachment) {
      item.state = 'uploading';
      item.progress = 0;
      changed();
      item.attachment = await uploadFile(id, item.file, (p) => {
        item.progress = p;
        changed();
      });
    }
    item.state = 'processing';
    changed();
    const ready = await waitUntilProcessed(item.attachment.id);
    state.attachments.set(ready.id, ready);
    item.state = 'sending';
    changed();
    const message = await api.sendMessage(id, {
      text: item.text,
      client_msg_id: item.key,
      reply_to: item.replyTo || undefined,
      attachments: [ready.id],
    });
    putMessage(id, message);
    removeOutbox(id, (o) => o.key === item.key);
    if (item.previewUrl) URL.revokeObjectURL(item.previewUrl);
    changed();
  } catch (err) {
    item.state = 'failed';
    item.error = err.message;
    changed();
  }
}

async function waitUntilProcessed(attachmentId) {
  for (let wait = 150; ; wait = Math.min(wait * 1.5, 2000)) {
    const known = state.attachments.get(attachmentId);
    const a = known?.download_url !== undefined && known.state !== 'pending' ? known : await api.attachment(attachmentId);
    if (a.state === 'ready') return a;
    if (a.state === 'rejected') throw new Error(a.error || 'the file was refused');
    await new Promise((r) => setTimeout(r, wait));
  }
}

export function editMessage(id, messageId, text) {
  return gateway.request({ type: 'edit', conversation_id: id, message_id: messageId, text });
}

export function deleteMessage(id, messageId) {
  return gateway.request({ type: 'delete', conversation_id: id, message_id: messageId });
}

export function toggleReaction(id, message, emoji) {
  const mine = message.reactions.find((r) => r.emoji === emoji)?.reacted_by_me;
  return gateway.request({ type: 'react', conversation_id: id, message_id: message.id, emoji, add: !mine });
}

// ---------------------------------------------------------------------------
// Typing
// ---------------------------------------------------------------------------

const typingState = new Map(); // conversation id → { sentAt, idleTimer }

/** Called on every keystroke in the composer. */
export function typed(id) {
  const t = typingState.get(id) || { sentAt: 0, idleTimer: null };
  typingState.set(id, t);
  const now = Date.now();
  if (now - t.sentAt > TYPING_RESEND_MS) {
    t.sentAt = now;
    gateway?.notify({ type: 'typing', conversation_id: id, typing: true });
  }
  clearTimeout(t.idleTimer);
  t.idleTimer = setTimeout(() => stopTyping(id), TYPING_IDLE_MS);
}

export function stopTyping(id) {
  const t = typingState.get(id);
  if (!t || !t.sentAt) return;
  clearTimeout(t.idleTimer);
  t.sentAt = 0;
  gateway?.notify({ type: 'typing', conversation_id: id, typing: false });
}

// ---------------------------------------------------------------------------
// Starting conversations
// ---------------------------------------------------------------------------

export async function startDirect(user) {
  const c = await api.createConversation({ is_group: false, participants: [user.id] });
  await fetchConversation(c.id);
  navigate(`/chat/c/${c.id}`);
}

export async function createGroup(name, users) {
  const c = await api.createConversation({ is_group: true, name, participants: users.map((u) => u.id) });
  await fetchConversation(c.id);
  navigate(`/chat/c/${c.id}`);
}

export function notice(text) {
  state.notice = text;
  changed();
  setTimeout(() => {
    if (state.notice === text) {
      state.notice = null;
      changed();
    }
  }, 4000);
}

window.addEventListener('online', () => gateway?.reconnectNow());
