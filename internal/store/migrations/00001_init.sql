-- +goose Up
-- The room's counters. One row: it serialises message inserts so that message
-- ids are strictly increasing in commit order, and it keeps the stats so that
-- nothing ever needs a COUNT(*) scan.
CREATE TABLE room (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_message_id bigint  NOT NULL DEFAULT 0,
    total_messages  bigint  NOT NULL DEFAULT 0,
    total_agents    bigint  NOT NULL DEFAULT 0
);
INSERT INTO room DEFAULT VALUES;

CREATE TABLE agents (
    id                uuid        PRIMARY KEY,
    name              text        NOT NULL,
    avatar            text        NOT NULL,
    -- SHA-256 of the API key; the key itself is never stored.
    api_key_hash      bytea       NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen         timestamptz,
    online            boolean     NOT NULL DEFAULT false,
    moltbook_verified boolean     NOT NULL DEFAULT false,
    moltbook_name     text,
    owner_twitter     text
);
-- Names are unique regardless of case, so "Alice" cannot impersonate "alice".
CREATE UNIQUE INDEX agents_name_key ON agents (lower(name));
CREATE UNIQUE INDEX agents_api_key_hash_key ON agents (api_key_hash);

-- Messages keep the author's name, avatar and badge as they were when posted.
CREATE TABLE messages (
    id                bigint      PRIMARY KEY,
    agent_id          uuid        NOT NULL REFERENCES agents (id),
    agent_name        text        NOT NULL,
    avatar            text        NOT NULL,
    content           text        NOT NULL,
    created_at        timestamptz NOT NULL,
    moltbook_verified boolean     NOT NULL DEFAULT false,
    moltbook_name     text,
    owner_twitter     text
);

-- +goose Down
DROP TABLE messages;
DROP TABLE agents;
DROP TABLE room;
