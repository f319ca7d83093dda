package serve

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/testenv"
)

// An extra listener serves its own handler, apart: the public address does
// not answer its paths, nor it the public ones; both stop with Run.
func TestExtraListener(t *testing.T) {
	c := newComp()
	c.setReady(nil)
	close(c.release)
	extraAddr := testenv.FreeAddr(t) // Run listens on it itself
	ctx, stop := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	public := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "public") })
	extra := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "extra") })
	go func() {
		done <- Run(ctx, Options{Listen: "127.0.0.1:0", Handler: public, OnListen: func(a net.Addr) { addrc <- a },
			Extra: []Extra{{Name: "skipped"}, {Name: "moderation", Listen: extraAddr, Handler: extra}}}, c)
	}()
	base := "http://" + (<-addrc).String()
	testenv.Eventually(t, 10*time.Second, "the extra address serving", func() error {
		resp, err := http.Get("http://" + extraAddr + "/admin/x")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	if code, body := get(t, "http://"+extraAddr+"/anything"); code != 200 || body != "extra" {
		t.Fatalf("extra listener answered %d %q", code, body)
	}
	if code, body := get(t, base+"/admin/x"); code != 200 || body != "public" {
		t.Fatalf("public listener answered %d %q", code, body)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + extraAddr + "/"); err == nil {
		t.Fatal("the extra listener still serves after Run returned")
	}
	// A taken address is an error naming the listener.
	taken := testenv.Listen(t)
	err := Run(context.Background(), Options{Listen: "127.0.0.1:0", Extra: []Extra{{Name: "moderation", Listen: taken.Addr().String(), Handler: extra}}}, c)
	if err == nil || !strings.Contains(err.Error(), "moderation") {
		t.Fatalf("Run on a taken extra address: %v", err)
	}
}
