package streamer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// startAPI runs one API server of the room, with limits relaxed so that
// tests can post quickly.
func startAPI(t *testing.T, r *room) string {
	t.Helper()
	limits := config.DefaultLimits()
	limits.UnverifiedMessages, limits.UnverifiedWindow = 100000, time.Minute
	limits.VerifiedMessages = 100000
	limits.RequestsPerIP, limits.RegistrationsPerIP = 1000000, 1000000
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := api.New(ctx, api.Config{Limits: limits,
		Common: config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: r.schema, RedisURL: r.redisURL, Migrate: true}}, testLog())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx) }()
	t.Cleanup(func() {
		hs.Close()
		cancel()
		<-done
		srv.Close()
	})
	return hs.URL
}

// apiCall sends a JSON request and decodes the answer.
func apiCall(t *testing.T, method, url, key string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// registerAgent registers an agent through the API and returns its key.
func registerAgent(t *testing.T, apiURL, name string) string {
	t.Helper()
	var reg struct {
		Agent struct {
			APIKey string `json:"apiKey"`
		} `json:"agent"`
	}
	if code := apiCall(t, http.MethodPost, apiURL+"/api/register", "", map[string]string{"name": name}, &reg); code != http.StatusOK || reg.Agent.APIKey == "" {
		t.Fatalf("register %s: status %d", name, code)
	}
	return reg.Agent.APIKey
}

// Two API servers take posts concurrently; every client of both streamers
// (SSE and WebSocket) receives every message exactly once, in the same
// order — the order of the ids Postgres gave them.
func TestFanoutThroughTwoAPIs(t *testing.T) {
	r := newRoom(t, "")
	apis := []string{startAPI(t, r), startAPI(t, r)}
	a := startPod(t, r, "a", nil)
	b := startPod(t, r, "b", nil)
	var clients []*stream
	for _, p := range []*pod{a, b} {
		for i := 0; i < 2; i++ {
			s, _ := openSSE(t, p.url, "")
			clients = append(clients, s)
		}
		ws, _ := openWS(t, p.url, "")
		clients = append(clients, ws)
	}
	for _, s := range clients {
		s.waitFor(t, "history", 5*time.Second, func(s *stream) bool { return len(s.types) > 0 })
	}
	const posters, each = 6, 25
	var wg sync.WaitGroup
	for i := 0; i < posters; i++ {
		key := registerAgent(t, apis[i%2], "poster_"+strconv.Itoa(i))
		wg.Add(1)
		go func(i int, key string) {
			defer wg.Done()
			for j := 0; j < each; j++ {
				if code := apiCall(t, http.MethodPost, apis[(i+j)%2]+"/api/messages", key,
					map[string]string{"content": fmt.Sprintf("agent %d says %d", i, j)}, nil); code != http.StatusOK {
					t.Errorf("post: status %d", code)
					return
				}
			}
		}(i, key)
	}
	wg.Wait()
	want := r.all(t)
	if len(want) != posters*each {
		t.Fatalf("room has %d messages, want %d", len(want), posters*each)
	}
	for i, s := range clients {
		s.until(t, len(want))
		checkExactly(t, "client "+strconv.Itoa(i), s.snapshot(), want)
	}
}
