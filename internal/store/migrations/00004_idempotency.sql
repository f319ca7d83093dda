-- +goose Up
-- Idempotency keys of POST /api/messages: a client that retries a post (its
-- answer was lost, or timed out after the commit) sends the same
-- Idempotency-Key and gets the first answer back instead of a second
-- message. A key is written in the same statement as its message, so the
-- two commit together or not at all; keys are honoured for 24 hours and
-- purged after that (the API's maintenance loop).
CREATE TABLE idempotency_keys (
    agent_id   uuid        NOT NULL,
    key        text        NOT NULL,
    message_id bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (agent_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
