-- Notifications through webhooks: endpoints registered per user (or one per
-- installation, from configuration), and every delivery attempt's outcome.
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url         text NOT NULL,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_user ON webhooks (user_id);

-- One row per (endpoint, message, recipient): delivered once, retried with backoff,
-- dead-lettered after the last attempt. `webhook_id` is NULL for the installation's
-- endpoint.
CREATE TABLE notification_deliveries (
    id           uuid PRIMARY KEY,
    webhook_id   uuid REFERENCES webhooks (id) ON DELETE CASCADE,
    endpoint     text NOT NULL,
    message_id   uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason       text NOT NULL CHECK (reason IN ('offline', 'mention')),
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    last_status  integer,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    CONSTRAINT notification_deliveries_once UNIQUE (endpoint, message_id, user_id)
);
CREATE INDEX notification_deliveries_dead ON notification_deliveries (state) WHERE state = 'dead';
