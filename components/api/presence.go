package api

import (
	"context"
	"fmt"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/store"
)

// seenWriteEvery throttles the Postgres copy of presence: an agent's
// last_seen/online columns are written at most about once per interval
// (Redis holds the precise last-seen). They exist so presence can be rebuilt
// after Redis loses it, which needs only minute precision.
const seenWriteEvery = time.Minute

// seen records an authenticated request: the agent is online from now. The
// Redis touch happens on every request; the Postgres write only when the row
// read for authentication says it is due (offline, or last written a while
// ago). Deciding from the row, not from process memory, makes the throttle
// fleet-wide and lets a disconnect (online=false) be undone at once by the
// agent's next request on any pod.
func (s *Server) seen(ctx context.Context, a store.Agent, now time.Time) error {
	if err := s.pres.Touch(ctx, a.ID, now); err != nil {
		return err
	}
	return s.seenInPostgres(ctx, a, now)
}

// seenInPostgres is the throttled Postgres half of seen.
func (s *Server) seenInPostgres(ctx context.Context, a store.Agent, now time.Time) error {
	if a.Online && a.LastSeen != nil && now.Sub(*a.LastSeen) < seenWriteEvery {
		return nil
	}
	return s.st.MarkSeen(ctx, a.ID, now)
}

// rebuiltKey marks that the room's presence set has been loaded since Redis
// last lost its data. Redis losing everything loses the marker too, and the
// next maintenance pass rebuilds; the set merely being empty (everyone left)
// does not trigger a reload.
func (s *Server) rebuiltKey() string { return bus.Key(s.cfg.Common.Schema, "presence", "rebuilt") }

// rebuildPresence reloads the online set from Postgres if Redis lost it.
// Postgres's last_seen lags by up to seenWriteEvery, so rebuilt agents time
// out a little early, never late; ZADD GT never moves a fresher Redis entry
// backwards. It reports whether it rebuilt.
func (s *Server) rebuildPresence(ctx context.Context) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.rebuiltKey(), time.Now().UTC().Format(time.RFC3339), 0).Result()
	if err != nil {
		return false, fmt.Errorf("while checking the presence marker: %w", err)
	}
	if !ok {
		return false, nil // someone (maybe another pod) already did
	}
	now := time.Now()
	online, err := s.st.OnlineSince(ctx, now.Add(-s.cfg.Limits.PresenceTimeout))
	if err == nil {
		err = s.pres.TouchMany(ctx, online)
	}
	if err != nil {
		// Let the next pass (here or on another pod) try again.
		s.rdb.Del(context.WithoutCancel(ctx), s.rebuiltKey())
		return false, fmt.Errorf("while rebuilding presence: %w", err)
	}
	s.log.Info("presence rebuilt from Postgres", "online", len(online))
	return true, nil
}
