// The WebSocket connection to the gateway fleet.
//
// - Connects to one of the configured gateways (starting at a random one, to spread
//   load) and, when the socket drops or its gateway dies, to the next one, with backoff.
// - Every connection resumes: `since=<conversation>:<seq>,…` carries the last message seq
//   the page has of each conversation, and the gateway sends everything after it, in order,
//   before live events.
// - Requests carry an `id`; `request` resolves on the matching `ack`/`ok` and rejects on
//   `error`. Sends wait in an outbox while disconnected and are sent again after a
//   reconnect with the same `client_msg_id`, which the server deduplicates, so a message
//   is never lost nor sent twice.
//
// The session cookie authenticates the upgrade. A socket closed with 4001 (or several
// failed attempts in a row) refreshes the session before trying again.

import { refreshSession } from './api.js';

const UNAUTHENTICATED = 4001;
const MAX_BACKOFF_MS = 5000;

/** `:8081` → `ws://<page host>:8081`; full URLs are kept. */
export function gatewayUrl(entry) {
  if (entry.startsWith(':')) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${location.hostname}${entry}`;
  }
  return entry.replace(/\/+$/, '');
}

export class GatewayConnection {
  /**
   * @param {object} opts
   * @param {string[]} opts.gateways gateway entries from /chat/config.json
   * @param {() => Map<string, number>} opts.positions last seq per conversation
   * @param {(event: object) => void} opts.onEvent bus events
   * @param {(status: {state: string, gatewayId?: string}) => void} opts.onStatus
   * @param {() => void} opts.onSessionLost
   * @param {() => Promise<void>} opts.beforeRetry called after every third failure in a
   *   row (e.g. to drop positions of conversations left while offline, which a gateway
   *   refuses to resume)
   */
  constructor({ gateways, positions, onEvent, onStatus, onSessionLost, beforeRetry = async () => {} }) {
    this.beforeRetry = beforeRetry;
    this.gateways = gateways.map(gatewayUrl);
    this.positions = positions;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onSessionLost = onSessionLost;
    this.index = Math.floor(Math.random() * this.gateways.length);
    this.failures = 0;
    this.nextId = 1;
    this.waiting = new Map(); // request id → { resolve, reject, frame, resend }
    this.socket = null;
    this.ready = false;
    this.stopped = false;
    this.timer = null;
    this.watchdog = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    if (this.socket) this.socket.close(1000, 'bye');
    this.socket = null;
    for (const pending of this.waiting.values()) pending.reject(new Error('disconnected'));
    this.waiting.clear();
  }

  /** Drops the current socket and reconnects at once (e.g. after the page comes back online). */
  reconnectNow() {
    if (this.stopped) return;
    this.failures = 0;
    if (this.socket) this.socket.close(1000, 'reconnecting');
    else this.connect();
  }

  url() {
    const since = [...this.positions()].map(([c, seq]) => `${c}:${seq}`).join(',');
    return `${this.gateways[this.index]}/ws${since ? `?since=${since}` : ''}`;
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.onStatus({ state: this.failures ? 'reconnecting' : 'connecting' });
    let socket;
    try {
      socket = new WebSocket(this.url(), ['chat.v1']);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    this.ready = false;
    let lastHeard = Date.now();
    socket.onmessage = (message) => {
      lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this.dispatch(frame, socket);
    };
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      clearInterval(this.watchdog);
      this.socket = null;
      this.ready = false;
      this.failWaiting();
      if (this.stopped) return;
      if (close.code === UNAUTHENTICATED) {
        refreshSession().then(
          () => this.scheduleReconnect(),
          () => this.onSessionLost(),
        );
        return;
      }
      this.scheduleReconnect();
    };
    // Some proxies and sleeping laptops leave a dead socket open: ping, and give up on
    // a socket that has been silent for two heartbeats.
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      if (this.socket !== socket || !this.ready) return;
      if (Date.now() - lastHeard > 2 * this.heartbeatMs) {
        socket.close(4000, 'silent');
        return;
      }
      this.raw({ type: 'ping' });
    }, 5000);
  }

  dispatch(frame, socket) {
    switch (frame.type) {
      case 'hello':
        this.ready = true;
        this.failures = 0;
        this.heartbeatMs = frame.heartbeat_ms || 20000;
        this.onStatus({ state: 'online', gatewayId: frame.gateway_id, hello: frame });
        // Sends queued while disconnected go out again, with their client_msg_id.
        for (const [id, pending] of this.waiting) {
          if (pending.resend) this.raw({ ...pending.frame, id });
        }
        return;
      case 'ack':
      case 'ok':
      case 'pong':
      case 'error': {
        const pending = frame.id && this.waiting.get(frame.id);
        if (!pending) return;
        this.waiting.delete(frame.id);
        if (frame.type === 'error') pending.reject(Object.assign(new Error(frame.message), { code: frame.code }));
        else pending.resolve(frame);
        return;
      }
      case 'reconnect':
        // The gateway is draining: move to another one now (reconnecting rotates).
        socket.close(1000, 'moving');
        return;
      case 'resumed':
        return;
      default:
        this.onEvent(frame);
    }
  }

  scheduleReconnect() {
    if (this.stopped) return;
    this.failures += 1;
    // Another gateway may be up when this one is not.
    this.index = (this.index + 1) % this.gateways.length;
    const backoff = Math.min(MAX_BACKOFF_MS, 200 * 2 ** Math.max(0, this.failures - 1));
    const delay = backoff / 2 + Math.random() * (backoff / 2);
    this.onStatus({ state: 'reconnecting' });
    this.timer = setTimeout(async () => {
      // After a few failures in a row the access cookie may have expired, or a
      // position may name a conversation we were removed from meanwhile.
      if (this.failures % 3 === 0) {
        try {
          await refreshSession();
          await this.beforeRetry();
        } catch (err) {
          if (err.status === 401) {
            this.onSessionLost();
            return;
          }
        }
      }
      this.connect();
    }, delay);
  }

  failWaiting() {
    for (const [id, pending] of this.waiting) {
      if (!pending.resend) {
        this.waiting.delete(id);
        pending.reject(new Error('disconnected'));
      }
    }
  }

  raw(frame) {
    if (this.socket && this.ready && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /**
   * Sends a request and resolves with its answer. With `resend`, the request waits for a
   * connection and is sent again after every reconnect until answered (for idempotent
   * requests only).
   */
  request(frame, { resend = false } = {}) {
    const id = `r${this.nextId++}`;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, frame, resend });
      if (!this.raw({ ...frame, id }) && !resend) {
        this.waiting.delete(id);
        reject(new Error('not connected'));
      }
    });
  }

  /** Fire and forget (typing, receipts): dropped while disconnected. */
  notify(frame) {
    this.raw(frame);
  }
}
