package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Centrifugo as the server under test (-target centrifugo), so that chatr
// and a well-known real-time server are measured by one tool in one way:
// the same streams, checks (lost, duplicated, out of order), latencies and
// CPU figures. The streams are Centrifugo's unidirectional SSE transport,
// each subscribed server-side to one channel by the channels claim of its
// connection token (HS256 with -centrifugo-secret); the posts go to its
// HTTP API's publish method (-centrifugo-api-key), open loop.
//
// The channel must keep a history (as chatr keeps its messages, for
// resuming streams): Centrifugo then gives each publication an offset, in
// the order it publishes them, and answers the publish with it. The offset
// is the event's id, as chatr's message id is: concurrent publishes may be
// numbered in another order than they were sent, and a stream must follow
// the server's order. Each run uses a channel of its own, so offsets start
// at 1. Centrifugo answers a publish once it is in the broker, before the
// fan-out; chatr answers a post once it is committed, before its fan-out.

// cfChannel is this run's channel.
var cfChannel string

// streamPath is the request target of a stream.
var streamPath = "/api/stream"

// useCentrifugo points the streams at Centrifugo's unidirectional SSE.
func useCentrifugo(o options) error {
	if o.cfSecret == "" || o.cfKey == "" {
		return errors.New("-target centrifugo needs -centrifugo-secret and -centrifugo-api-key")
	}
	cfChannel = fmt.Sprintf("bench%d", time.Now().UnixNano())
	tok, err := cfToken(o.cfSecret, "bench", []string{cfChannel}, time.Now().Add(24*time.Hour))
	if err != nil {
		return err
	}
	connect, _ := json.Marshal(map[string]string{"token": tok})
	streamPath = "/connection/uni_sse?cf_connect=" + url.QueryEscape(string(connect))
	cfPubPrefix = []byte(`data: {"channel":"` + cfChannel + `","pub":{"data":`)
	setMarker(`"offset":`)
	return nil
}

// cfToken is a connection JWT (HS256) for user sub, subscribed server-side
// to channels.
func cfToken(secret, sub string, channels []string, exp time.Time) (string, error) {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, err := json.Marshal(map[string]any{"sub": sub, "channels": channels, "exp": exp.Unix()})
	if err != nil {
		return "", err
	}
	unsigned := head + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil)), nil
}

// newCentrifugoPoster publishes through Centrifugo's HTTP API at base; a
// publication's id is the offset its answer carries.
func newCentrifugoPoster(base, key string) *openLoop {
	hc := benchHTTPClient()
	endpoint := strings.TrimRight(base, "/") + "/api/publish"
	body := fmt.Sprintf(`{"channel":%q,"data":{"content":"bench message, about the length of a typical agent's chatter in the room"}}`, cfChannel)
	return &openLoop{post: func(ctx context.Context, k int) (int64, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", key)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, statusError(resp.StatusCode)
		}
		var answer struct {
			Error  *json.RawMessage `json:"error"`
			Result struct {
				Offset int64 `json:"offset"`
			} `json:"result"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&answer); err != nil {
			return 0, fmt.Errorf("centrifugo's answer: %w", err)
		}
		if answer.Error != nil {
			return 0, fmt.Errorf("centrifugo: %s", *answer.Error)
		}
		if answer.Result.Offset <= 0 {
			return 0, errors.New("centrifugo answered without an offset: the channel keeps no history")
		}
		return answer.Result.Offset, nil
	}}
}

// The lines of Centrifugo's unidirectional SSE the parser tells apart: the
// connect reply (the stream is subscribed; it stands for chatr's history
// event) and a publication on this run's channel (cfPubPrefix, set by
// useCentrifugo; nil: none).
var (
	cfConnectPrefix = []byte(`data: {"connect":`)
	cfPubPrefix     []byte
)
