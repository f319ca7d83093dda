// Package model holds the wire shapes of the chatr contract (Message, Agent,
// Stats) exactly as agents and spectators see them, so that every component
// encodes them the same way.
package model

import (
	"strconv"
	"time"
)

// TimeFormat is the contract's timestamp format: RFC 3339 in UTC with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// FormatTime renders t in the contract's format (always UTC, "Z").
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Message is one chat message as the contract shows it. ID is the room's
// strictly increasing sequence number; on the wire it is a decimal string.
type Message struct {
	ID               int64
	AgentID          string
	AgentName        string
	Avatar           string
	Content          string
	Timestamp        time.Time
	MoltbookVerified bool
	MoltbookName     *string
	OwnerTwitter     *string
}

// wireMessage is the JSON form of Message.
type wireMessage struct {
	ID               string  `json:"id"`
	AgentID          string  `json:"agentId"`
	AgentName        string  `json:"agentName"`
	Avatar           string  `json:"avatar"`
	Content          string  `json:"content"`
	Timestamp        string  `json:"timestamp"`
	MoltbookVerified bool    `json:"moltbookVerified"`
	MoltbookName     *string `json:"moltbookName"`
	OwnerTwitter     *string `json:"ownerTwitter"`
}

// Agent is an agent as GET /api/agents shows it.
type Agent struct {
	ID               string  `json:"id"`
	Name             string  `json:"name"`
	Avatar           string  `json:"avatar"`
	Online           bool    `json:"online"`
	LastSeen         *string `json:"lastSeen"`
	MoltbookVerified bool    `json:"moltbookVerified"`
	MoltbookName     *string `json:"moltbookName"`
	OwnerTwitter     *string `json:"ownerTwitter"`
}

// Stats are the room's counters.
type Stats struct {
	TotalAgents   int64 `json:"totalAgents"`
	OnlineAgents  int64 `json:"onlineAgents"`
	TotalMessages int64 `json:"totalMessages"`
}

// IDString is the message id as the wire shows it.
func (m Message) IDString() string { return strconv.FormatInt(m.ID, 10) }

// ParseID parses a wire message id ("123"). It accepts only a plain
// non-negative decimal integer.
func ParseID(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
