package streamer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatr-ai/chatr/internal/clientip"
	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/model"
)

// sseHeaders is the response head of every HTTP/1.1 stream: the contract's
// headers, chunked encoding (the hub writes each event as one chunk), and the
// first retry hint. Written once per stream, straight to the socket, since the
// connection is hijacked so that no goroutine has to stay behind for it.
var sseHeaders = []byte("HTTP/1.1 200 OK\r\n" +
	"Content-Type: text/event-stream\r\n" +
	"Cache-Control: no-cache\r\n" +
	"Connection: keep-alive\r\n" +
	"X-Accel-Buffering: no\r\n" +
	"Access-Control-Allow-Origin: *\r\n" +
	"Transfer-Encoding: chunked\r\n\r\n")

// sseHeaders10 serves HTTP/1.0 clients, which know no chunks: the body ends
// when the connection closes.
var sseHeaders10 = []byte("HTTP/1.0 200 OK\r\n" +
	"Content-Type: text/event-stream\r\n" +
	"Cache-Control: no-cache\r\n" +
	"Connection: close\r\n" +
	"X-Accel-Buffering: no\r\n" +
	"Access-Control-Allow-Origin: *\r\n\r\n")

// lastEventID reads where a client resumes from: the Last-Event-ID header
// (EventSource's reconnections) or the lastEventId query parameter (a first
// connection, which cannot set headers). A malformed id is ignored: the
// client starts from the history.
func lastEventID(r *http.Request) (int64, bool) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("lastEventId")
	}
	if v == "" {
		return 0, false
	}
	return model.ParseID(v)
}

// admit applies the pod's state and limits to a new stream and counts it.
// On refusal it has answered the request and returns nil.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, t transport) *conn {
	if s.draining.Load() {
		s.met.rejected.WithLabelValues("draining").Inc()
		w.Header().Set("Retry-After", "1")
		httpjson.Fail(w, http.StatusServiceUnavailable, "Server is restarting, reconnect")
		return nil
	}
	if s.conns.Add(1) > int64(s.cfg.MaxConnections) {
		s.conns.Add(-1)
		s.met.rejected.WithLabelValues("pod_full").Inc()
		w.Header().Set("Retry-After", "1")
		httpjson.Fail(w, http.StatusServiceUnavailable, "Server is at capacity, try again")
		return nil
	}
	// An IPv6 client counts per /64, as at the API.
	ip := clientip.Bucket(s.ips.ClientIP(r))
	if ip.IsValid() && !s.lim.acquire(r.Context(), ip) {
		s.conns.Add(-1)
		s.met.rejected.WithLabelValues("per_ip").Inc()
		httpjson.TooMany(w, "Too many connections", 5*time.Second)
		return nil
	}
	s.met.connections.WithLabelValues(t.String()).Inc()
	c := &conn{ip: ip, t: t, fd: -1, spectator: spectatorParam(r)}
	if c.spectator {
		s.spectators.Add(1)
	}
	return c
}

// serveSSE answers GET /api/stream.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		// The stream's headers, no body and no connection counted.
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		return
	}
	since, resume := lastEventID(r)
	t := sseChunked
	if !r.ProtoAtLeast(1, 1) {
		t = sseRaw
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		httpjson.Fail(w, http.StatusHTTPVersionNotSupported, "The stream needs HTTP/1.1")
		return
	}
	c := s.admit(w, r, t)
	if c == nil {
		return
	}
	nc, _, err := hj.Hijack()
	if err != nil {
		s.closed(c, reasonGone)
		s.log.Warn("could not take over a stream connection", "err", err)
		return
	}
	// The server's ReadTimeout set a deadline for reading the request; the
	// stream outlives it by design (the hub sets its own write deadlines).
	_ = nc.SetDeadline(time.Time{})
	c.nc, c.fd = nc, rawFD(nc)
	setSendBuffer(nc, s.cfg.SendBuffer)
	head := sseHeaders
	if t == sseRaw {
		head = sseHeaders10
	}
	head = append(append([]byte(nil), head...), retryFrame(s.cfg.RetryHint).bytes(t)...)
	_ = nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	_, err = nc.Write(head)
	_ = nc.SetWriteDeadline(time.Time{})
	if err != nil {
		_ = nc.Close()
		s.closed(c, reasonGone)
		return
	}
	s.attach(r.Context(), c, resume, since)
}

// attach hands c to the hub with its backlog, reading from Postgres the part
// of a resume that is older than the ring.
func (s *Server) attach(ctx context.Context, c *conn, resume bool, since int64) {
	if resume && !s.resumable(ctx, since) {
		resume = false
	}
	var older []*frame
	var olderTo int64
	for try := 0; ; try++ {
		need, floor, ok := s.hub.attach(c, resume, since, older, olderTo)
		if !ok {
			_ = c.nc.Close()
			s.closed(c, reasonShutdown)
			return
		}
		if need == 0 {
			return
		}
		if floor-since > int64(s.cfg.MaxReplay) || try == 3 {
			// Too far behind to replay: start over from the history.
			resume, older = false, nil
			continue
		}
		more, err := s.readOlder(ctx, need, floor)
		if err != nil {
			s.log.Warn("could not read a resume backlog from Postgres", "after", need, "err", err)
			_ = c.nc.Close()
			s.closed(c, reasonGone)
			return
		}
		older = append(older, more...)
		if len(more) > 0 {
			olderTo = more[len(more)-1].id
		} else {
			olderTo = floor
		}
	}
}

// readOlder reads the messages in (after, upTo] from Postgres, a few resumes
// at a time so that a herd of old resumes cannot exhaust the pool.
func (s *Server) readOlder(ctx context.Context, after, upTo int64) ([]*frame, error) {
	select {
	case s.pgResumes <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.pgResumes }()
	s.met.pgResumes.Inc()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msgs, err := s.st.MessagesAfter(ctx, after, int(upTo-after))
	if err != nil {
		return nil, err
	}
	out := make([]*frame, 0, len(msgs))
	now := time.Now()
	for _, m := range msgs {
		if m.ID > upTo {
			break
		}
		js, err := encodeMessage(m)
		if err != nil {
			return nil, err
		}
		f := messageFrame(m.ID, js, now)
		f.live = false // a replay: not a fan-out
		out = append(out, f)
	}
	return out, nil
}

// serveWS answers GET /api/ws: the same events, one JSON text frame each.
// A WebSocket stream keeps one reader goroutine (to answer pings and see
// the client's close); the hub does all the writing.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	since, resume := lastEventID(r)
	if !websocket.IsWebSocketUpgrade(r) {
		httpjson.Fail(w, http.StatusBadRequest, "WebSocket upgrade required")
		return
	}
	c := s.admit(w, r, wsText)
	if c == nil {
		return
	}
	wc, err := s.ws.Upgrade(w, r, nil)
	if err != nil {
		s.closed(c, reasonGone) // Upgrade has answered the client
		return
	}
	c.nc = wc.NetConn()
	// As for SSE: the request's read deadline must not end the stream
	// (readWS sets the reads' own deadline).
	_ = c.nc.SetDeadline(time.Time{})
	c.fd = rawFD(c.nc)
	setSendBuffer(c.nc, s.cfg.SendBuffer)
	s.attach(r.Context(), c, resume, since)
	sh := s.hub.shardOf(c)
	if sh == nil {
		return
	}
	go s.readWS(wc, c, sh)
}

// readWS reads a WebSocket client's frames: pongs extend its deadline, pings
// are answered through the hub, a close is echoed, anything else is ignored.
func (s *Server) readWS(wc *websocket.Conn, c *conn, sh *shard) {
	wait := 2*s.cfg.PingInterval + s.cfg.WriteTimeout
	extend := func() { _ = wc.SetReadDeadline(time.Now().Add(wait)) }
	extend()
	wc.SetReadLimit(4096)
	wc.SetPongHandler(func(string) error { extend(); return nil })
	wc.SetPingHandler(func(data string) error {
		extend()
		sh.post(event{kind: evSend, c: c, f: &frame{ws: wsFrame(wsOpPong, []byte(data))}})
		return nil
	})
	wc.SetCloseHandler(func(int, string) error {
		sh.post(event{kind: evClose, c: c, f: wsCloseFrame(1000, "")})
		return nil
	})
	for {
		_, rd, err := wc.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				sh.post(event{kind: evDrop, c: c, reason: reasonGone})
			}
			return
		}
		extend()
		_, _ = io.Copy(io.Discard, rd)
	}
}
