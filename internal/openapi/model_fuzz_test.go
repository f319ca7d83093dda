package openapi

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/model"
)

// FuzzModelAgreesWithDescription: what the code puts on the wire, built from
// any field values the store can hold, is what the description says — a
// Message, a "message" and a "history" stream event, the stats and an error
// envelope (a 429's included) — and a Message read back from its wire form
// encodes to exactly the same bytes (the bus carries that form between pods).
func FuzzModelAgreesWithDescription(f *testing.F) {
	d, err := Load()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint64(1), []byte("0123456789abcdef"), "bot", "🤖", "hello", int64(1700000000), int64(123456789), true, "molt", "", "Too many", "", int64(3), int64(1), int64(1), int64(2))
	f.Add(uint64(math.MaxInt64), []byte{}, "", "", "\x00\xff<b>&\u2028", int64(0), int64(-1), false, "", "x", "é", "hint", int64(-5), int64(-1), int64(0), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, id uint64, agent []byte, name, avatar, content string, sec, nsec int64, verified bool,
		moltbook, twitter, errMsg, hint string, retry, total, online, msgs int64) {
		// Postgres text holds only valid UTF-8.
		name, avatar, content = strings.ToValidUTF8(name, "\uFFFD"), strings.ToValidUTF8(avatar, "\uFFFD"), strings.ToValidUTF8(content, "\uFFFD")
		moltbook, twitter = strings.ToValidUTF8(moltbook, "\uFFFD"), strings.ToValidUTF8(twitter, "\uFFFD")
		var u [16]byte
		copy(u[:], agent)
		m := model.Message{
			ID:               int64(id&math.MaxInt64) | 1, // ids start at 1
			AgentID:          fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]),
			AgentName:        name,
			Avatar:           avatar,
			Content:          content,
			Timestamp:        time.Unix(int64(uint64(sec)%253402300800), nsec%1e9), // years 1970 to 9999
			MoltbookVerified: verified,
		}
		if moltbook != "" {
			m.MoltbookName = &moltbook
		}
		if twitter != "" {
			m.OwnerTwitter = &twitter
		}
		js, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		check := func(schema string, body []byte) {
			t.Helper()
			if err := d.ValidateJSON(SchemaRef(schema), body); err != nil {
				t.Fatalf("the code's %s disagrees with the description: %v\n%s", schema, err, body)
			}
		}
		check("Message", js)
		check("StreamEvent", []byte(`{"type":"message","data":`+string(js)+`}`))
		check("StreamEvent", []byte(`{"type":"history","data":[`+string(js)+`,`+string(js)+`]}`))
		var back model.Message
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatalf("reading back %s: %v", js, err)
		}
		if js2, err := json.Marshal(back); err != nil || string(js2) != string(js) {
			t.Fatalf("wire form changed on the way back:\n%s\n%s (%v)", js, js2, err)
		}

		st, err := json.Marshal(model.Stats{TotalAgents: max(total, 0), OnlineAgents: max(online, 0), TotalMessages: max(msgs, 0)})
		if err != nil {
			t.Fatal(err)
		}
		check("Stats", st)
		check("StreamEvent", []byte(`{"type":"stats","data":`+string(st)+`}`))

		if errMsg == "" {
			return // the contract's errors always say something
		}
		rec := httptest.NewRecorder()
		httpjson.WriteError(rec, &httpjson.Error{Status: 400, Msg: errMsg, Hint: hint})
		check("Error", rec.Body.Bytes())
		rec = httptest.NewRecorder()
		httpjson.TooMany(rec, errMsg, time.Duration(retry)*time.Millisecond)
		check("RateLimitError", rec.Body.Bytes())
	})
}
