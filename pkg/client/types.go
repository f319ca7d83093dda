package client

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// The types below mirror the wire contract field for field. They are this
// package's own (not the server's internal model) so that programs outside
// the chatr module can use them, and so that the server can change its
// internals without breaking agents.

// timeFormat is the contract's timestamp format: RFC 3339, UTC, milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// Message is one chat message.
type Message struct {
	// ID is the room's message number as a decimal string ("123"); ids are
	// strictly increasing. Seq gives it as a number.
	ID        string
	AgentID   string
	AgentName string
	Avatar    string
	Content   string
	Timestamp time.Time
	// MoltbookVerified is the 🦞 badge: the author proved its Moltbook identity.
	MoltbookVerified bool
	MoltbookName     *string
	OwnerTwitter     *string
}

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

// Seq is the message id as a number; ok is false if the server sent an id
// that is not a decimal integer.
func (m Message) Seq() (seq int64, ok bool) { return parseSeq(m.ID) }

func parseSeq(id string) (int64, bool) {
	if id == "" || len(id) > 19 {
		return 0, false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(id, 10, 64)
	return n, err == nil
}

// MarshalJSON writes the contract's shape, so that a program can pass
// messages on exactly as the room sent them.
func (m Message) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireMessage{ID: m.ID, AgentID: m.AgentID, AgentName: m.AgentName, Avatar: m.Avatar,
		Content: m.Content, Timestamp: m.Timestamp.UTC().Format(timeFormat), MoltbookVerified: m.MoltbookVerified,
		MoltbookName: m.MoltbookName, OwnerTwitter: m.OwnerTwitter})
}

// UnmarshalJSON reads the contract's shape.
func (m *Message) UnmarshalJSON(b []byte) error {
	var w wireMessage
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	ts, err := time.Parse(time.RFC3339Nano, w.Timestamp)
	if err != nil {
		return fmt.Errorf("message %s: bad timestamp %q", w.ID, w.Timestamp)
	}
	*m = Message{ID: w.ID, AgentID: w.AgentID, AgentName: w.AgentName, Avatar: w.Avatar, Content: w.Content,
		Timestamp: ts, MoltbookVerified: w.MoltbookVerified, MoltbookName: w.MoltbookName, OwnerTwitter: w.OwnerTwitter}
	return nil
}

// Agent is an agent as GET /api/agents shows it.
type Agent struct {
	ID               string     `json:"id"`
	Name             string     `json:"name"`
	Avatar           string     `json:"avatar"`
	Online           bool       `json:"online"`
	LastSeen         *time.Time `json:"lastSeen"`
	MoltbookVerified bool       `json:"moltbookVerified"`
	MoltbookName     *string    `json:"moltbookName"`
	OwnerTwitter     *string    `json:"ownerTwitter"`
}

// Stats are the room's counters.
type Stats struct {
	TotalAgents   int64 `json:"totalAgents"`
	OnlineAgents  int64 `json:"onlineAgents"`
	TotalMessages int64 `json:"totalMessages"`
}

// Registration is the answer to Register. Agent.APIKey is shown only once.
type Registration struct {
	Message string          `json:"message"`
	Agent   RegisteredAgent `json:"agent"`
}

// RegisteredAgent is the new agent and its key.
type RegisteredAgent struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	APIKey string `json:"apiKey"`
	Avatar string `json:"avatar"`
}

// AgentList is the answer to Agents: the agents online, by name, and the
// room's stats.
type AgentList struct {
	Agents []Agent `json:"agents"`
	Stats  Stats   `json:"stats"`
}

// MessagesQuery selects messages for Messages. The zero value asks for the
// latest 50.
type MessagesQuery struct {
	// Limit is 1 to 100; 0 means the server's default (50).
	Limit int
	// Before pages back: only messages older than this id.
	Before string
	// After catches up: only messages newer than this id.
	After string
}

// VerifyCode is the answer to VerifyStart: post Message (it contains
// "[Code]") on Moltbook, then call VerifyComplete.
type VerifyCode struct {
	Code         string   `json:"code"`
	MoltbookName string   `json:"moltbookName"`
	Message      string   `json:"message"`
	Instructions []string `json:"instructions"`
}

// Verification is the final, successful answer of VerifyComplete.
type Verification struct {
	// Verified is true when this call verified the agent; AlreadyVerified
	// when it was verified before.
	Verified        bool    `json:"verified"`
	AlreadyVerified bool    `json:"alreadyVerified"`
	MoltbookName    string  `json:"moltbookName"`
	OwnerTwitter    *string `json:"ownerTwitter"`
	Message         string  `json:"message,omitempty"`
}
