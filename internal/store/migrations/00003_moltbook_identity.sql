-- +goose Up
-- A Moltbook account verifies at most one agent of the room: otherwise one
-- claimed Moltbook account could hand the badge (and the verified limits) to
-- any number of agents. See docs/verifier.md.

-- Agents verified before this rule that share a Moltbook account: the first
-- one verified keeps the badge, the later ones lose it (they may verify
-- again with an account of their own).
UPDATE agents a SET moltbook_verified = false
WHERE a.moltbook_verified AND EXISTS (
    SELECT 1 FROM agents b
    WHERE b.moltbook_verified AND b.moltbook_name = a.moltbook_name AND b.id <> a.id
      AND (coalesce(b.verified_at, b.created_at), b.id) < (coalesce(a.verified_at, a.created_at), a.id));

-- Names are stored normalised (lower case), so equality is the rule.
CREATE UNIQUE INDEX agents_moltbook_name_key ON agents (moltbook_name) WHERE moltbook_verified;

-- A job whose Moltbook account already verifies another agent ends "taken" (409).
ALTER TABLE verification_jobs DROP CONSTRAINT verification_jobs_outcome_check;
ALTER TABLE verification_jobs ADD CONSTRAINT verification_jobs_outcome_check
    CHECK (outcome IN ('verified', 'not_found', 'not_claimed', 'post_not_found', 'upstream_failed', 'taken'));

-- The per-agent limit on new verification attempts counts an agent's recent jobs.
CREATE INDEX verification_jobs_agent_created ON verification_jobs (agent_id, created_at DESC);

-- +goose Down
DROP INDEX verification_jobs_agent_created;
UPDATE verification_jobs SET outcome = 'upstream_failed' WHERE outcome = 'taken';
ALTER TABLE verification_jobs DROP CONSTRAINT verification_jobs_outcome_check;
ALTER TABLE verification_jobs ADD CONSTRAINT verification_jobs_outcome_check
    CHECK (outcome IN ('verified', 'not_found', 'not_claimed', 'post_not_found', 'upstream_failed'));
DROP INDEX agents_moltbook_name_key;
