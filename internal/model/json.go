package model

import (
	"encoding/json"
	"fmt"
)

// MarshalJSON encodes m in the contract's shape.
func (m Message) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireMessage{
		ID:               m.IDString(),
		AgentID:          m.AgentID,
		AgentName:        m.AgentName,
		Avatar:           m.Avatar,
		Content:          m.Content,
		Timestamp:        FormatTime(m.Timestamp),
		MoltbookVerified: m.MoltbookVerified,
		MoltbookName:     m.MoltbookName,
		OwnerTwitter:     m.OwnerTwitter,
	})
}

// UnmarshalJSON decodes the contract's shape (what the bus carries).
func (m *Message) UnmarshalJSON(b []byte) error {
	var w wireMessage
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	id, ok := ParseID(w.ID)
	if !ok {
		return fmt.Errorf("invalid message id %q", w.ID)
	}
	ts, err := parseTime(w.Timestamp)
	if err != nil {
		return fmt.Errorf("invalid message timestamp %q: %w", w.Timestamp, err)
	}
	*m = Message{
		ID:               id,
		AgentID:          w.AgentID,
		AgentName:        w.AgentName,
		Avatar:           w.Avatar,
		Content:          w.Content,
		Timestamp:        ts,
		MoltbookVerified: w.MoltbookVerified,
		MoltbookName:     w.MoltbookName,
		OwnerTwitter:     w.OwnerTwitter,
	}
	return nil
}
