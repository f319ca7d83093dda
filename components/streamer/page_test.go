package streamer_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatr-ai/chatr/components/streamer"

	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

const chromium = "/usr/bin/chromium"

// The spectator page in a real headless browser: it shows the history, a
// posted message with avatar, name, 🦞 badge and owner handle, the online
// agents and the stats; and when its pod drains it resumes on another one
// without losing or repeating a message.
func TestSpectatorPageInChromium(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		testenv.Missing(t, "%s is missing, so the spectator page was not tested in a browser; run hack/chromium.sh (apt-get install chromium)", chromium)
	}
	r := newRoom(t, "")
	r.post(t, 2)
	a := startPod(t, r, "a", func(c *streamer.Config) { c.DrainTime = 300 * time.Millisecond })
	b := startPod(t, r, "b", nil)

	// The ingress: the stream and the page go to the current streamer pod,
	// the rest of /api/ to a real API server.
	apiURL := startAPI(t, r)
	key := registerAgent(t, apiURL, "watched_agent")
	postAPI := func(content string) {
		t.Helper()
		if code := apiCall(t, http.MethodPost, apiURL+"/api/messages", key, map[string]string{"content": content}, nil); code != http.StatusOK {
			t.Fatalf("post through the API: status %d", code)
		}
	}
	postAPI("first words through the API")
	var current atomic.Pointer[url.URL]
	au, _ := url.Parse(a.url)
	bu, _ := url.Parse(b.url)
	apiU, _ := url.Parse(apiURL)
	current.Store(au)
	toStreamer := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(current.Load()) },
		FlushInterval: -1,
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", httputil.NewSingleHostReverseProxy(apiU))
	mux.Handle("/api/stream", toStreamer)
	mux.Handle("/api/ws", toStreamer)
	mux.Handle("/", toStreamer)
	ingress := httptest.NewServer(mux)
	defer ingress.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:0:0],
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()

	poll := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second))
	}
	count := func(n int) chromedp.Action[chromedp.Void] {
		return poll(fmt.Sprintf(`document.querySelectorAll("#messages li").length === %d`, n))
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(ingress.URL+"/"),
		count(3),
		poll(`document.getElementById("agents").innerText.includes("watched_agent")`),
	); err != nil {
		t.Fatalf("page did not show the history and the agents: %v", err)
	}

	// A verified agent posts: avatar, name, badge and owner handle appear.
	mname, owner := "clawdius", "clawd_owner"
	verified := r.agent
	verified.Name, verified.Avatar, verified.MoltbookVerified, verified.MoltbookName, verified.OwnerTwitter = "lobster_bot", "🦞", true, &mname, &owner
	ms, err := r.st.InsertMessages(context.Background(), []store.NewMessage{{Agent: verified, Content: "hello spectators <script>x</script>"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.bus.Publish(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, count(4), poll(`document.getElementById("stat-messages").innerText !== "–"`)); err != nil {
		t.Fatalf("posted message did not appear: %v", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#messages li:last-child").innerText`))
	if err != nil {
		t.Fatal(err)
	}
	stats, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("aside .stats").innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lobster_bot", "🦞", "@clawd_owner", "hello spectators <script>x</script>"} {
		if !contains(text, want) {
			t.Errorf("message shows %q, lacking %q", text, want)
		}
	}
	if !contains(stats, "Messages") {
		t.Errorf("stats panel shows %q", stats)
	}

	// Its pod drains: the page reconnects through the ingress to the other
	// pod, resumes, and shows what was posted meanwhile exactly once.
	current.Store(bu)
	dctx, cancelD := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelD()
	if err := a.srv.Drain(dctx); err != nil {
		t.Fatal(err)
	}
	postAPI("said while the page moved to another pod")
	postAPI("and once more")
	if err := chromedp.Do(ctx, count(6)); err != nil {
		t.Fatalf("the page did not resume after its pod drained: %v", err)
	}
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("#messages li")).map(li => li.dataset.id).join(",")`))
	if err != nil {
		t.Fatal(err)
	}
	if want := ids(r.all(t)); shown != want {
		t.Fatalf("page shows ids %s, want %s", shown, want)
	}
}
