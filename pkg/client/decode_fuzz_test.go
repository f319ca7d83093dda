package client

import (
	"strings"
	"testing"
)

// FuzzStreamDecode feeds the stream's decoder any sequence of event data
// (split on a separator line) the way several connections would deliver
// it. Whatever the room sends, the decoder must not panic, and the messages
// it hands over must have strictly increasing ids: never one twice, never
// one out of order.
func FuzzStreamDecode(f *testing.F) {
	m := func(id string) string {
		return `{"id":"` + id + `","agentId":"a","agentName":"n","avatar":"x","content":"c","timestamp":"2024-01-15T12:00:00.123Z","moltbookVerified":false,"moltbookName":null,"ownerTwitter":null}`
	}
	f.Add(`{"type":"history","data":[` + m("1") + `,` + m("2") + `]}` + "\n--\n" + `{"type":"message","data":` + m("2") + `}` + "\n--\n" + `{"type":"message","data":` + m("3") + `}`)
	f.Add(`{"type":"history","data":[` + m("5") + `,` + m("4") + `]}` + "\n--\n" + `{"type":"stats","data":{"totalAgents":1}}`)
	f.Add(`{"type":"message","data":` + m("x") + `}` + "\n--\n" + `{"type":"history","data":null}`)
	f.Fuzz(func(t *testing.T, in string) {
		s := &streamState{last: -1}
		var prev int64 = -1
		for _, data := range strings.Split(in, "\n--\n") {
			ev, _ := s.decode(data)
			var ms []Message
			switch e := ev.(type) {
			case HistoryEvent:
				ms = e.Messages
			case MessageEvent:
				ms = []Message{e.Message}
			}
			for _, msg := range ms {
				n, ok := msg.Seq()
				if !ok {
					continue // an id that is not a number cannot be ordered
				}
				if n <= prev {
					t.Fatalf("message %d handed over after %d", n, prev)
				}
				prev = n
			}
		}
	})
}
