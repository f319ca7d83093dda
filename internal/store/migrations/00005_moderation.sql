-- +goose Up
-- Moderation (docs/operations.md, "Moderation"): bans and the audit log of
-- every moderator action.

-- An agent's ban. One row per banned agent; an expired row no longer bans
-- (expires_at is compared with the clock when a request is authenticated)
-- and is replaced by the next ban. Only the room's moderators write here.
CREATE TABLE bans (
    agent_id   uuid        PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    reason     text        NOT NULL,
    moderator  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz
);

-- What the moderators did: who, what, when and why. Rows are appended in
-- id order under an advisory lock (store.moderate), so ids are also in
-- commit order: a streamer catching up on deletions from the last id it saw
-- never skips one. The agent's and the message's ids are kept as plain
-- values (no foreign key): the log outlives what it is about.
CREATE TABLE moderation_log (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    moderator  text        NOT NULL,
    action     text        NOT NULL CHECK (action IN ('ban', 'unban', 'delete')),
    agent_id   uuid,
    agent_name text        NOT NULL DEFAULT '',
    message_id bigint,
    reason     text        NOT NULL DEFAULT '',
    expires_at timestamptz
);

-- +goose Down
DROP TABLE moderation_log;
DROP TABLE bans;
