// The REST client: every call of the page to chat-api goes through here.
//
// The session lives in HttpOnly cookies set by POST /api/auth/session; the page never
// sees a token. Writes carry X-Requested-With (the API refuses cookie-authenticated writes
// without it, so another site cannot forge them). A 401 triggers one refresh of the
// session and one retry; if that fails too, `onSessionLost` is called.

const CSRF = { 'X-Requested-With': 'chat-web' };

/** An error answer of the API (problem+json). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code || 'http_error';
    this.errors = problem?.errors || [];
  }
}

let onSessionLost = () => {};
let refreshing = null;

/** Called when the session can no longer be refreshed (logged out elsewhere, expired). */
export function setSessionLostHandler(handler) {
  onSessionLost = handler;
}

async function parse(response) {
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  const body = type.includes('json') ? await response.json().catch(() => null) : null;
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

let refreshTimer = null;

/**
 * Trades the refresh cookie for new cookies; one refresh at a time. Another tab of the
 * same browser may have just used the (single-use) refresh cookie: then the session it
 * renewed is the answer. Schedules the next refresh before the access cookie expires.
 */
export function refreshSession() {
  refreshing ??= fetch('/api/auth/session/refresh', { method: 'POST', headers: CSRF, credentials: 'same-origin' })
    .then(parse)
    .catch(async (err) => {
      const current = await fetch('/api/auth/session', { credentials: 'same-origin' }).then(parse);
      if (current?.user) return current;
      throw err;
    })
    .then((session) => {
      if (session.expires_in) keepSessionFresh(session.expires_in);
      return session;
    })
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

/** Refreshes the session when 80% of the access cookie's life has passed. */
export function keepSessionFresh(expiresInSecs) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refreshSession().catch(() => onSessionLost()), expiresInSecs * 800);
}

export function stopRefreshing() {
  clearTimeout(refreshTimer);
}

async function call(method, path, { body, retry = true, raw = false } = {}) {
  const headers = { ...CSRF };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && retry) {
    try {
      await refreshSession();
    } catch (err) {
      onSessionLost();
      throw err;
    }
    return call(method, path, { body, retry: false, raw });
  }
  if (raw) {
    const hasMore = response.headers.get('x-has-more') === 'true';
    return { body: await parse(response), hasMore };
  }
  return parse(response);
}

const enc = encodeURIComponent;

export const api = {
  register: (username, password, display_name) =>
    call('POST', '/api/auth/register', { body: { username, password, display_name: display_name || undefined }, retry: false }),
  login: (username, password) => call('POST', '/api/auth/session', { body: { username, password }, retry: false }),
  logout: () => call('DELETE', '/api/auth/session', { retry: false }),
  me: () => call('GET', '/api/users/me'),
  session: () => call('GET', '/api/auth/session', { retry: false }),
  searchUsers: (q) => call('GET', `/api/users?q=${enc(q)}&limit=10`),
  presence: (userId) => call('GET', `/api/users/${userId}/presence`),

  /** All of the caller's conversations, most recent first (pages of 200, up to 2000). */
  conversations: async () => {
    const all = [];
    for (let offset = 0; offset < 2000; offset += 200) {
      const page = await call('GET', `/api/chat/conversations?limit=200&offset=${offset}`);
      all.push(...page);
      if (page.length < 200) break;
    }
    return all;
  },
  conversation: (id) => call('GET', `/api/chat/conversations/${id}`),
  createConversation: (body) => call('POST', '/api/chat/conversations', { body }),
  /** Every participant of a conversation (pages of 200 in user id order). */
  participants: async (id) => {
    const all = [];
    let after = '';
    for (;;) {
      const page = await call('GET', `/api/chat/conversations/${id}/participants?limit=200${after ? `&after=${after}` : ''}`);
      all.push(...page);
      if (page.length < 200) return all;
      after = page[page.length - 1].user_id;
    }
  },

  /** A page of history: the newest, or the one before `before`. `{ body, hasMore }`. */
  history: (id, before, limit = 40) =>
    call('GET', `/api/chat/conversations/${id}/messages?limit=${limit}${before ? `&before=${before}` : ''}`, { raw: true }),
  sendMessage: (id, body) => call('POST', `/api/chat/conversations/${id}/messages`, { body }),
  attachment: (id) => call('GET', `/api/chat/attachments/${id}`),
};

/**
 * Uploads a file to a conversation with progress (fetch cannot report upload progress).
 * Resolves with the attachment record (state `pending` until the worker has checked it).
 */
export function uploadFile(conversationId, file, onProgress, retry = true) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/chat/conversations/${conversationId}/attachments`);
    xhr.setRequestHeader('X-Requested-With', CSRF['X-Requested-With']);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status === 401 && retry) {
        refreshSession()
          .then(() => uploadFile(conversationId, file, onProgress, false))
          .then(resolve, reject);
      } else if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body);
      } else {
        reject(new ApiError(xhr.status, body));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, { detail: 'network error' }));
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
}
