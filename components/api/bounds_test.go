package api

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/serve"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// Under the production HTTP server, a request may take as long as its own
// deadline even when that is longer than the server's ReadTimeout (as
// verify/complete's is): ReadTimeout bounds reading the request, not
// serving it (net/http clears the read deadline once the body is read; a
// read deadline still pending would cancel the request's context). Here a
// read waits on a frozen Postgres past the read timeout and is answered 200
// once Postgres thaws, within its deadline.
func TestRequestOutlivesReadTimeout(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	f := newFaultRoom(t, func(c *Config) { c.RequestTimeout = 10 * time.Second })
	ln := testenv.Listen(t)
	hs := serve.NewServer(f.srv.Handler(), serve.Options{ReadTimeout: readTimeout})
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })

	f.pg.Pause()
	type answer struct {
		status int
		body   string
		err    error
	}
	done := make(chan answer, 1)
	start := time.Now()
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/api/messages")
		if err != nil {
			done <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		done <- answer{status: res.StatusCode, body: string(b)}
	}()
	testenv.Eventually(t, 10*time.Second, "the read to wait on Postgres past the read timeout", func() bool {
		return f.pg.Held() > 0 && time.Since(start) > 3*readTimeout
	})
	f.pg.Resume()
	a := <-done
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("a request that outlived the read timeout: %d %s %v, want 200", a.status, a.body, a.err)
	}
}
