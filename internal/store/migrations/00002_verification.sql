-- +goose Up
-- Moltbook verification: per-agent codes, the verifier's job queue, and the
-- fleet-wide Moltbook rate limiter. See docs/verifier.md.

-- Which Moltbook post proved the agent, and when.
ALTER TABLE agents
    ADD COLUMN verified_at          timestamptz,
    ADD COLUMN verification_post_id text;

-- An agent keeps its code once issued: POST /api/verify/start repeats it.
CREATE TABLE verification_codes (
    agent_id      uuid        PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    code          text        NOT NULL CHECK (code ~ '^[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{8}$'),
    -- The Moltbook name last given to verify/start.
    moltbook_name text        NOT NULL,
    issued_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The job queue. A job is live (queued, running, retrying) until it is done
-- with an outcome. Workers claim due jobs with FOR UPDATE SKIP LOCKED and
-- hold a lease; a job whose lease expired is taken again. attempts counts
-- claims and fences results: a worker may only finish the attempt it claimed.
CREATE TABLE verification_jobs (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id         uuid        NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    moltbook_name    text        NOT NULL,
    code             text        NOT NULL,
    state            text        NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'retrying', 'done')),
    outcome          text        CHECK (outcome IN ('verified', 'not_found', 'not_claimed', 'post_not_found', 'upstream_failed')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_run_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    -- What a verified outcome found on Moltbook.
    owner_twitter    text,
    post_id          text,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    CHECK ((state = 'done') = (outcome IS NOT NULL)),
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
-- One live job per agent: repeating verify/complete never duplicates work.
CREATE UNIQUE INDEX verification_jobs_live_key ON verification_jobs (agent_id) WHERE state <> 'done';
-- What workers scan: due jobs, and leases that may have expired.
CREATE INDEX verification_jobs_due ON verification_jobs (next_run_at, id) WHERE state IN ('queued', 'retrying');
CREATE INDEX verification_jobs_leases ON verification_jobs (lease_expires_at) WHERE state = 'running';
-- An agent's latest job (GET /api/verify/status).
CREATE INDEX verification_jobs_agent ON verification_jobs (agent_id, id DESC);

-- Wake-ups. NOTIFY channels are database-wide and many rooms may share a
-- database, so the payload is "<schema>:<job id>" and listeners filter on
-- the schema. chatr_verify_jobs wakes workers when a job becomes claimable;
-- chatr_verify_results wakes API requests waiting on a job's progress.
-- NOTIFY is delivered at commit, so a woken reader always sees the change.
-- +goose StatementBegin
CREATE FUNCTION verification_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('queued', 'retrying') AND (TG_OP = 'INSERT'
        OR OLD.state IS DISTINCT FROM NEW.state OR OLD.next_run_at IS DISTINCT FROM NEW.next_run_at) THEN
        PERFORM pg_notify('chatr_verify_jobs', TG_TABLE_SCHEMA || ':' || NEW.id);
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.attempts IS DISTINCT FROM NEW.attempts) THEN
        PERFORM pg_notify('chatr_verify_results', TG_TABLE_SCHEMA || ':' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER verification_jobs_notify AFTER INSERT OR UPDATE ON verification_jobs
    FOR EACH ROW EXECUTE FUNCTION verification_jobs_notify();

-- The fleet-wide Moltbook rate limiter, one row: a GCRA "theoretical
-- arrival time" shared by every verifier replica of the room, and a pause
-- set when Moltbook says it is rate limiting us.
CREATE TABLE moltbook_rate (
    singleton    boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    tat          timestamptz NOT NULL DEFAULT 'epoch',
    paused_until timestamptz NOT NULL DEFAULT 'epoch'
);
INSERT INTO moltbook_rate DEFAULT VALUES;

-- +goose Down
DROP TABLE moltbook_rate;
DROP TABLE verification_jobs;
DROP FUNCTION verification_jobs_notify();
DROP TABLE verification_codes;
ALTER TABLE agents DROP COLUMN verification_post_id, DROP COLUMN verified_at;
