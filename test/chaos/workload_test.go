package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// post is one attempt and its outcome.
type post struct {
	content string
	sent    time.Time
	took    time.Duration
	status  int    // 0: no answer (connection error)
	id      int64  // when accepted
	kind    string // the error kind when not accepted
}

// poster posts at a steady rate, round robin over the APIs, and records
// every attempt. A post that fails is not retried: the verdict counts it
// as refused (and must never find it delivered as accepted).
type poster struct {
	mu    sync.Mutex
	posts []post
}

func register(t *testing.T, r *room, name string) string {
	t.Helper()
	var out struct {
		Agent struct {
			ID     string `json:"id"`
			APIKey string `json:"apiKey"`
		} `json:"agent"`
	}
	res, err := http.Post(r.apis[0].url+"/api/register", "application/json", strings.NewReader(`{"name":"`+name+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || out.Agent.APIKey == "" {
		t.Fatalf("register %s: %d %v", name, res.StatusCode, err)
	}
	// Verified agents, so the message limit does not shape the workload.
	st := r.store(t)
	if _, err := st.Pool().Exec(context.Background(),
		`UPDATE agents SET moltbook_verified = true, moltbook_name = $2, owner_twitter = 'chaos' WHERE id = $1`,
		out.Agent.ID, "m_"+name); err != nil {
		t.Fatal(err)
	}
	return out.Agent.APIKey
}

// run posts every interval until ctx ends.
func (p *poster) run(ctx context.Context, r *room, keys []string, interval time.Duration) {
	hc := &http.Client{Timeout: 30 * time.Second}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var wg sync.WaitGroup
	for n := 0; ctx.Err() == nil; n++ {
		live := []*part{}
		for _, a := range r.apis {
			if !a.stopped {
				live = append(live, a)
			}
		}
		a := live[n%len(live)]
		key := keys[n%len(keys)]
		wg.Go(func() { p.one(hc, a.url, key, fmt.Sprintf("chaos %d", n)) })
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	wg.Wait()
}

func (p *poster) one(hc *http.Client, base, key, content string) {
	rec := post{content: content, sent: time.Now()}
	req, _ := http.NewRequest("POST", base+"/api/messages", strings.NewReader(`{"content":"`+content+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := hc.Do(req)
	rec.took = time.Since(rec.sent)
	if err != nil {
		rec.kind = "no answer"
	} else {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		rec.status = res.StatusCode
		var out struct {
			Success bool   `json:"success"`
			Error   string `json:"error"`
			Message struct {
				ID string `json:"id"`
			} `json:"message"`
		}
		switch {
		case json.Unmarshal(body, &out) != nil:
			rec.kind = fmt.Sprintf("%d not JSON", res.StatusCode)
		case res.StatusCode == 200 && out.Success:
			rec.id, _ = strconv.ParseInt(out.Message.ID, 10, 64)
		case res.StatusCode == 503 && res.Header.Get("Retry-After") == "":
			rec.kind = "503 without Retry-After"
		default:
			rec.kind = strconv.Itoa(res.StatusCode)
		}
	}
	p.mu.Lock()
	p.posts = append(p.posts, rec)
	p.mu.Unlock()
}

func (p *poster) snapshot() []post {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]post(nil), p.posts...)
}

// delivery is one message a reader got.
type delivery struct {
	id      int64
	content string
	at      time.Time
}

// reader follows the stream over SSE or WebSocket, resuming with the last
// id it holds after every drop, from the next streamer in its list.
type reader struct {
	name string
	ws   bool
	urls []string
	// drop, when set, makes the reader discard the message with this
	// content (the negative control).
	drop string

	connected atomic.Bool // it has had its first history

	mu        sync.Mutex
	got       []delivery
	last      int64
	reconnect int
}

func (rd *reader) note(id int64, content string) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.drop != "" && content == rd.drop {
		rd.last = max(rd.last, id)
		return
	}
	rd.got = append(rd.got, delivery{id: id, content: content, at: time.Now()})
	rd.last = max(rd.last, id)
}

func (rd *reader) snapshot() ([]delivery, int) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return append([]delivery(nil), rd.got...), rd.reconnect
}

func (rd *reader) run(ctx context.Context) {
	for n := 0; ctx.Err() == nil; n++ {
		base := rd.urls[n%len(rd.urls)]
		rd.mu.Lock()
		since := rd.last
		if n > 0 {
			rd.reconnect++
		}
		rd.mu.Unlock()
		// A drop of any kind (an error, the end of the stream) is
		// followed by a resume; why it dropped does not matter here.
		if rd.ws {
			_ = rd.followWS(ctx, base, since)
		} else {
			_ = rd.followSSE(ctx, base, since)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// event is the contract's stream event.
type event struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

type message struct {
	ID      string `json:"id"`
	Content string `json:"content"`
}

func (rd *reader) handle(raw []byte) {
	var ev event
	if json.Unmarshal(raw, &ev) != nil {
		return
	}
	switch ev.Type {
	case "message":
		var m message
		if json.Unmarshal(ev.Data, &m) == nil {
			id, _ := strconv.ParseInt(m.ID, 10, 64)
			rd.note(id, m.Content)
		}
	case "history":
		rd.connected.Store(true)
		// A history answers a fresh connect (or a resume too far back);
		// its messages count as delivered when newer than what we hold.
		var ms []message
		if json.Unmarshal(ev.Data, &ms) == nil {
			for _, m := range ms {
				id, _ := strconv.ParseInt(m.ID, 10, 64)
				rd.mu.Lock()
				newer := id > rd.last
				rd.mu.Unlock()
				if newer {
					rd.note(id, m.Content)
				}
			}
		}
	}
}

func (rd *reader) followSSE(ctx context.Context, base string, since int64) error {
	u := base + "/api/stream"
	if since > 0 {
		u += "?lastEventId=" + strconv.FormatInt(since, 10)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("stream: %d", res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data bytes.Buffer
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data.Len() > 0 {
				rd.handle(data.Bytes())
				data.Reset()
			}
		case bytes.HasPrefix(line, []byte("data:")):
			data.Write(bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" ")))
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return io.EOF
}

func (rd *reader) followWS(ctx context.Context, base string, since int64) error {
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/ws"
	if since > 0 {
		u += "?lastEventId=" + strconv.FormatInt(since, 10)
	}
	c, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	for {
		_, raw, err := c.ReadMessage()
		if err != nil {
			return err
		}
		rd.handle(raw)
	}
}
