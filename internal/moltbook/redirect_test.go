package moltbook_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/moltbook"
)

// A redirect off Moltbook's host is refused: the other host never sees the
// request (nor the API key), and the answer is an upstream error.
func TestRedirectOffHostIsRefused(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.Write([]byte(`{"success":true,"agent":{"name":"molty","is_claimed":true}}`))
	}))
	defer other.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	defer redirecting.Close()

	c := newClient(t, redirecting.URL+"/api/v1", moltbook.Options{APIKey: "secret-key"})
	_, _, err := c.Profile(context.Background(), "molty")
	var up *moltbook.UpstreamError
	if err == nil || !errors.As(err, &up) || !strings.Contains(err.Error(), "off its host") {
		t.Fatalf("Profile after an off-host redirect: %v, want an upstream error naming the redirect", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the other host got %d requests", n)
	}
}

// A redirect within Moltbook's host is followed.
func TestRedirectOnHostIsFollowed(t *testing.T) {
	fake := fakemoltbook.New()
	fake.Set(fakemoltbook.Verified("molty", "owner", "ABCD2345"))
	mux := http.NewServeMux()
	mux.HandleFunc("/old/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(r.URL.RequestURI(), "/old/", "/", 1), http.StatusMovedPermanently)
	})
	mux.Handle("/", fake)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := newClient(t, srv.URL+"/old/api/v1", moltbook.Options{})
	p, _, err := c.Profile(context.Background(), "molty")
	if err != nil || p == nil {
		t.Fatalf("Profile through an on-host redirect: %+v %v", p, err)
	}
}
