package streamer_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/internal/presence"
	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

const chromium = "/usr/bin/chromium"

// browser starts a headless Chromium for the test and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		testenv.Missing(t, "%s is missing, so the spectator page was not tested in a browser; run hack/chromium.sh (apt-get install chromium)", chromium)
	}
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
	t.Cleanup(cancelA)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	return ctx
}

// ingress routes like the room's Ingress: the stream and the page (and
// everything else outside /api/) to the streamer current holds, the rest of
// /api/ to the API server at apiURL.
func ingress(t *testing.T, current *atomic.Pointer[url.URL], apiURL string) string {
	t.Helper()
	toStreamer := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(current.Load()) },
		FlushInterval: -1,
	}
	apiU, _ := url.Parse(apiURL)
	mux := http.NewServeMux()
	mux.Handle("/api/", httputil.NewSingleHostReverseProxy(apiU))
	mux.Handle("/api/stream", toStreamer)
	mux.Handle("/api/ws", toStreamer)
	mux.Handle("/", toStreamer)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		// The browser may still hold a stream through it (cleanups run
		// before the browser's): Close alone would wait for it forever.
		hs.CloseClientConnections()
		hs.Close()
	})
	return hs.URL
}

func urlOf(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// screenshots is the folder the page's screenshots go to:
// $CHATR_PAGE_SCREENSHOTS (kept after the run), or a temporary one.
func screenshots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CHATR_PAGE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
		t.Logf("screenshots in %s (removed after the test; set CHATR_PAGE_SCREENSHOTS=<dir> to keep them)", dir)
	} else {
		dir = filepath.Join(dir, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshots in %s", dir)
	}
	return dir
}

func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(testenv.Slow(15*time.Second)))
}

func countIs(n int) chromedp.Action[chromedp.Void] {
	return poll(fmt.Sprintf(`document.querySelectorAll("#messages li").length === %d`, n))
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// The spectator page in a real headless browser: it shows the history, a
// posted message with avatar, name, 🦞 badge and owner handle, the online
// agents and the stats, which follow the room within a few seconds and
// agree with each other; and when its pod drains it resumes on another one
// without losing or repeating a message.
func TestSpectatorPageInChromium(t *testing.T) {
	ctx := browser(t)
	r := newRoom(t, "")
	r.post(t, 2)
	a := startPod(t, r, "a", func(c *streamer.Config) { c.DrainTime = 300 * time.Millisecond })
	b := startPod(t, r, "b", nil)

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
	current.Store(urlOf(t, a.url))
	base := ingress(t, &current, apiURL)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		countIs(3),
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
	if err := chromedp.Do(ctx, countIs(4)); err != nil {
		t.Fatalf("posted message did not appear: %v", err)
	}
	text := eval[string](t, ctx, `document.querySelector("#messages li:last-child").innerText`)
	for _, want := range []string{"lobster_bot", "🦞", "@clawd_owner", "hello spectators <script>x</script>"} {
		if !strings.Contains(text, want) {
			t.Errorf("message shows %q, lacking %q", text, want)
		}
	}

	// The figures and the list follow the room within a few seconds, and
	// agree: an agent comes online, a message is posted.
	pres := presence.New(r.rdb, r.schema, 30*time.Minute)
	newcomer, err := r.st.CreateAgent(context.Background(), "late_arrival", "🦉", []byte("hash-of-late-arrival"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pres.Touch(context.Background(), newcomer.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	postAPI("one more for the count")
	all := r.all(t)
	agreeing := func(online, messages int) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => {
			const names = document.querySelectorAll("#agents li").length;
			return names === %d && document.getElementById("stat-online").innerText === "%d" &&
				document.getElementById("h-online").innerText === "%d" &&
				document.getElementById("stat-messages").innerText === "%d";
		})()`, online, online, online, messages), chromedp.WithPollingTimeout(testenv.Slow(5*time.Second)))
	}
	arrived := time.Now()
	if err := chromedp.Do(ctx, agreeing(2, len(all))); err != nil {
		got := eval[string](t, ctx, `document.querySelector("aside").innerText`)
		t.Fatalf("the page did not follow an arrival and a post within 5 s: %v\n%s", err, got)
	}
	t.Logf("the page showed an arrival and a post %s after they happened", time.Since(arrived).Round(time.Millisecond))
	if err := pres.Leave(context.Background(), newcomer.ID); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, agreeing(1, len(all))); err != nil {
		t.Fatalf("the page did not follow a departure within 5 s: %v", err)
	}

	// Its pod drains: the page reconnects through the ingress to the other
	// pod, resumes, and shows what was posted meanwhile exactly once.
	current.Store(urlOf(t, b.url))
	dctx, cancelD := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelD()
	if err := a.srv.Drain(dctx); err != nil {
		t.Fatal(err)
	}
	postAPI("said while the page moved to another pod")
	postAPI("and once more")
	if err := chromedp.Do(ctx, countIs(len(all)+2)); err != nil {
		t.Fatalf("the page did not resume after its pod drained: %v", err)
	}
	shown := eval[string](t, ctx, `Array.from(document.querySelectorAll("#messages li")).map(li => li.dataset.id).join(",")`)
	if want := ids(r.all(t)); shown != want {
		t.Fatalf("page shows ids %s, want %s", shown, want)
	}
}

// The page at the widths people use, from a 320 px phone to a 1920 px
// screen, with the content that broke it: an unbroken 250-character word, a
// 64-character avatar, 32-character names, markup in every field a
// speaker controls, a message from days ago. Nothing scrolls sideways;
// avatars keep their box; on a phone the figures are in the header and the
// agents a tap away; a name opens the speaker's profile; every payload
// stays text. Screenshots of each state go to the folder the test logs.
func TestSpectatorPageLayout(t *testing.T) {
	ctx := browser(t)
	shots := screenshots(t)
	r := newRoom(t, "")
	bg := context.Background()
	pres := presence.New(r.rdb, r.schema, 30*time.Minute)

	longName := strings.Repeat("n", 30) + "_x" // 32 characters, the longest name
	longAvatar := "🦀" + strings.Repeat("W", 63)
	payload := `<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>`
	long, err := r.st.CreateAgent(bg, longName, longAvatar, []byte("hash-of-long"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pres.Touch(bg, long.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := pres.Touch(bg, r.agent.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	old := r.post(t, 1)[0]
	if _, err := r.st.Pool().Exec(bg, `UPDATE messages SET created_at = created_at - interval '3 days' WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}
	mname, owner := payload, "x<b>y</b>"
	evil := r.agent
	evil.Name, evil.Avatar, evil.MoltbookVerified, evil.MoltbookName, evil.OwnerTwitter = "payload_bot", payload, true, &mname, &owner
	if _, err := r.st.InsertMessages(bg, []store.NewMessage{
		{Agent: long, Content: strings.Repeat("A", 250)},
		{Agent: evil, Content: payload},
		{Agent: long, Content: "https://example.org/" + strings.Repeat("path/", 40)},
		{Agent: r.agent, Content: "and a plain one"},
	}); err != nil {
		t.Fatal(err)
	}
	all := r.all(t)
	p := startPod(t, r, "a", nil)
	apiURL := startAPI(t, r)
	var current atomic.Pointer[url.URL]
	current.Store(urlOf(t, p.url))
	base := ingress(t, &current, apiURL)

	// noOverflow fails unless nothing is wider than the viewport.
	noOverflow := func(width int) {
		t.Helper()
		res := eval[string](t, ctx, `(() => {
			const w = document.documentElement.clientWidth, bad = [];
			if (document.documentElement.scrollWidth > w) bad.push("document " + document.documentElement.scrollWidth);
			if (document.body.scrollWidth > w) bad.push("body " + document.body.scrollWidth);
			for (const e of document.querySelectorAll("#room, aside, header, main, .msg, .content, .meta")) {
				if (e.scrollWidth > e.clientWidth + 1) bad.push(e.className || e.id || e.tagName);
				const r = e.getBoundingClientRect();
				if (r.width > 0 && r.right > w + 1) bad.push((e.className || e.id || e.tagName) + " ends at " + r.right);
			}
			return bad.join("; ");
		})()`)
		if res != "" {
			t.Errorf("at %d px something overflows sideways: %s", width, res)
		}
	}
	// avatars checks every avatar box: one line, one symbol, the full text in its tooltip.
	avatars := func(width int) {
		t.Helper()
		res := eval[string](t, ctx, `(() => {
			const bad = [];
			for (const a of document.querySelectorAll("#messages .avatar, #agents .avatar")) {
				if (a.offsetHeight > 34 || a.offsetWidth > 34) bad.push("box " + a.offsetWidth + "x" + a.offsetHeight);
				if ([...new Intl.Segmenter().segment(a.textContent)].length !== 1) bad.push("text " + a.textContent);
				if (!a.title) bad.push("no tooltip");
			}
			const big = [...document.querySelectorAll("#messages .avatar")].find(a => a.title.length > 60);
			if (!big || big.textContent !== "🦀") bad.push("the long avatar shows " + (big && big.textContent));
			return bad.join("; ");
		})()`)
		if res != "" {
			t.Errorf("at %d px: avatars %s", width, res)
		}
	}
	inert := func(where string) {
		t.Helper()
		res := eval[string](t, ctx, `(() => {
			const bad = [];
			if (window.__pwned) bad.push("a payload ran");
			if (document.querySelector("#messages img, #messages script, #messages b, #agents img, #profile img, #profile b")) bad.push("a payload became markup");
			if (!document.getElementById("messages").innerText.includes('<img src=x onerror="window.__pwned=1">')) bad.push("the payload is not shown as text");
			return bad.join("; ");
		})()`)
		if res != "" {
			t.Errorf("%s: %s", where, res)
		}
	}

	for _, vp := range []struct {
		name          string
		width, height int64
		phone         bool
	}{
		{"desktop-1366", 1366, 900, false},
		{"wide-1920", 1920, 1080, false},
		{"phone-390", 390, 844, true},
		{"phone-320", 320, 640, true},
	} {
		w := int(vp.width)
		opts := []chromedp.EmulateViewportOption{}
		if vp.phone {
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
		}
		if err := chromedp.Do(ctx,
			chromedp.EmulateViewport(vp.width, vp.height, opts...),
			chromedp.Navigate(base+"/"),
			countIs(len(all)),
			poll(`document.getElementById("status").innerText === "live"`),
			poll(`document.querySelectorAll("#agents li").length === 2 && document.getElementById("h-messages").innerText === "`+fmt.Sprint(len(all))+`"`),
		); err != nil {
			t.Fatalf("%s: the page did not load the room: %v", vp.name, err)
		}
		shoot(t, ctx, shots, vp.name)
		if vp.name == "desktop-1366" {
			pageWeight(t, ctx)
		}
		noOverflow(w)
		avatars(w)
		inert(vp.name)

		// The figures: in the header on a phone, in the sidebar otherwise;
		// visible either way.
		counts := eval[string](t, ctx, `(() => {
			const vis = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && r.right <= innerWidth + 1 && r.bottom <= innerHeight && getComputedStyle(e).visibility !== "hidden"; };
			const where = vis(document.getElementById("counts")) ? "header" : vis(document.getElementById("stat-online")) ? "sidebar" : "";
			return where + ":" + (where === "header" ? document.getElementById("counts").innerText : document.querySelector("aside .stats").innerText).replace(/\s+/g, " ");
		})()`)
		wantWhere := "sidebar:"
		if vp.phone {
			wantWhere = "header:"
		}
		if !strings.HasPrefix(counts, wantWhere) || !strings.Contains(counts, fmt.Sprint(len(all))) || !strings.Contains(counts, "2") {
			t.Errorf("%s: the figures show as %q, want them visible in the %s with 2 online and %d messages", vp.name, counts, strings.TrimSuffix(wantWhere, ":"), len(all))
		}

		if vp.phone {
			// The agents are a tap away.
			vis := `(() => { const r = document.getElementById("agents").getBoundingClientRect(); return r.width > 0 && r.right <= innerWidth + 1; })()`
			if eval[bool](t, ctx, vis) {
				t.Errorf("%s: the agent list is open before the tap", vp.name)
			}
			if err := chromedp.Do(ctx, chromedp.Click("#toggle"), poll(vis)); err != nil {
				t.Fatalf("%s: a tap on the toggle did not show the agents: %v", vp.name, err)
			}
			if got := eval[string](t, ctx, `document.getElementById("agents").innerText`); !strings.Contains(got, longName) {
				t.Errorf("%s: the agent list shows %q, lacking %s", vp.name, got, longName)
			}
			noOverflow(w)
			shoot(t, ctx, shots, vp.name+"-agents")
			if err := chromedp.Do(ctx, chromedp.Click("#toggle")); err != nil {
				t.Fatal(err)
			}
		} else {
			// The longest name is whole in the sidebar.
			cut := eval[bool](t, ctx, `[...document.querySelectorAll("#agents .name")].some(n => n.scrollWidth > n.clientWidth + 1 || !n.innerText.includes(n.dataset.profile))`)
			if cut || !strings.Contains(eval[string](t, ctx, `document.getElementById("agents").innerText`), longName) {
				t.Errorf("%s: a name is cut off in the sidebar", vp.name)
			}
		}

		// A name opens the speaker's profile: verified, Moltbook name,
		// owner, last seen, all as text.
		if err := chromedp.Do(ctx,
			chromedp.Click(`#messages li:nth-child(3) .name`),
			poll(`document.getElementById("profile").open`),
		); err != nil {
			t.Fatalf("%s: a click on a name opened no profile: %v", vp.name, err)
		}
		prof := eval[string](t, ctx, `document.getElementById("profile").innerText`)
		for _, want := range []string{"payload_bot", "yes", payload, "@x<b>y</b>", "Last message"} {
			if !strings.Contains(prof, want) {
				t.Errorf("%s: the profile shows %q, lacking %q", vp.name, prof, want)
			}
		}
		noOverflow(w)
		inert(vp.name + " profile")
		shoot(t, ctx, shots, vp.name+"-profile")
		if err := chromedp.Do(ctx, chromedp.Click("#p-close"), poll(`!document.getElementById("profile").open`)); err != nil {
			t.Fatal(err)
		}
	}

	// The online agent's profile says when it was last seen.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1366, 900),
		chromedp.Click(`#agents .name[data-profile="`+longName+`"]`),
		poll(`document.getElementById("profile").open`),
	); err != nil {
		t.Fatal(err)
	}
	if prof := eval[string](t, ctx, `document.getElementById("profile").innerText`); !strings.Contains(prof, "Last seen") || !strings.Contains(prof, "online") || !strings.Contains(prof, longAvatar) {
		t.Errorf("the online agent's profile shows %q", prof)
	}

	// A message from days ago carries its date, today's only the time.
	times := eval[[]string](t, ctx, `[...document.querySelectorAll("#messages .time")].map(e => e.innerText)`)
	if len(times) != len(all) {
		t.Fatalf("times %v", times)
	}
	if isClock(times[0]) || !isClock(times[len(times)-1]) {
		t.Errorf("the message of three days ago shows %q and today's %q: want a date on the first only", times[0], times[len(times)-1])
	}

	// Each speaker has a colour of its own, the same on each message.
	colours := eval[[]string](t, ctx, `[...document.querySelectorAll("#messages .name")].map(e => e.dataset.profile + "=" + e.className)`)
	seen := map[string]string{}
	for _, c := range colours {
		name, cls, _ := strings.Cut(c, "=")
		if prev, ok := seen[name]; ok && prev != cls {
			t.Errorf("%s is shown as %q and as %q", name, prev, cls)
		}
		seen[name] = cls
	}
	if seen[longName] == seen["poster"] || seen["poster"] == seen["payload_bot"] || seen[longName] == seen["payload_bot"] {
		t.Errorf("two speakers look the same: %v", seen)
	}

	// A favicon, and the guide's links.
	resp, err := http.Get(base + "/" + eval[string](t, ctx, `document.querySelector("link[rel=icon]").getAttribute("href")`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" {
		t.Errorf("favicon: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	links := eval[string](t, ctx, `[...document.querySelectorAll("aside a")].map(a => a.getAttribute("href")).join(" ")`)
	if !strings.Contains(links, "skills.md") || !strings.Contains(links, "llms.txt") {
		t.Errorf("the page links %q, lacking the guide", links)
	}
}

// pageBudget bounds the bytes a first load of the page takes on the wire
// (the page's own files with their headers; the stream and the API calls
// not counted).
const pageBudget = 32 << 10

// pageWeight logs what the page's first load took on the wire, by file, and
// fails when it is over pageBudget.
func pageWeight(t *testing.T, ctx context.Context) {
	t.Helper()
	files := eval[[]string](t, ctx, `[performance.getEntriesByType("navigation")[0], ...performance.getEntriesByType("resource")]
		.filter(e => !e.name.includes("/api/"))
		.map(e => new URL(e.name).pathname + "=" + e.transferSize + "/" + e.encodedBodySize)`)
	total := 0
	for _, f := range files {
		var path string
		var wire, body int
		if _, err := fmt.Sscanf(strings.Replace(f, "=", " ", 1), "%s %d/%d", &path, &wire, &body); err != nil {
			t.Fatalf("resource timing %q: %v", f, err)
		}
		total += wire
	}
	t.Logf("first load of the page: %d bytes on the wire (%s)", total, strings.Join(files, ", "))
	if len(files) < 4 {
		t.Errorf("resource timing lists %v, want the page, its style, its script and its icon", files)
	}
	if total > pageBudget {
		t.Errorf("the page's first load takes %d bytes, over its budget of %d", total, pageBudget)
	}
}

// isClock reports whether s is only a time of day ("14:05").
func isClock(s string) bool {
	return len(s) == 5 && s[2] == ':' && strings.Trim(s[:2]+s[3:], "0123456789") == ""
}

// Refused at the per-IP cap, the page is not an empty room: it shows the
// history from GET /api/messages and the figures, says why it is not live
// and when it retries, and goes live (resuming, nothing twice) once a slot
// is free.
func TestSpectatorPageRefusedShowsHistory(t *testing.T) {
	ctx := browser(t)
	shots := screenshots(t)
	r := newRoom(t, "")
	r.post(t, 5)
	p := startPod(t, r, "a", func(c *streamer.Config) { c.Limits.StreamsPerIP = 2 })
	apiURL := startAPI(t, r)
	var current atomic.Pointer[url.URL]
	current.Store(urlOf(t, p.url))
	base := ingress(t, &current, apiURL)
	// Two other tabs hold the address's two streams.
	_, stop1 := openSSE(t, p.url, "")
	openSSE(t, p.url, "")

	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/"),
		poll(`document.getElementById("notice").innerText.includes("Not live")`),
		countIs(5),
		poll(`document.getElementById("h-messages").innerText === "5"`),
	); err != nil {
		t.Fatalf("the refused page does not show the history and the reason: %v", err)
	}
	shoot(t, ctx, shots, "refused-phone")
	state := eval[string](t, ctx, `document.getElementById("notice").innerText + " | " + document.getElementById("status").innerText + " | empty shown: " + !document.getElementById("empty").hidden`)
	for _, want := range []string{"Too many connections", "429", "Trying again in", "not live", "empty shown: false"} {
		if !strings.Contains(state, want) {
			t.Errorf("the refused page says %q, lacking %q", state, want)
		}
	}

	// A message posted while refused shows at the next try; a freed slot
	// makes the page live, and nothing is shown twice.
	r.post(t, 1)
	stop1()
	if err := chromedp.Do(ctx,
		poll(`document.getElementById("status").innerText === "live"`),
		poll(`document.getElementById("notice").hidden`),
	); err != nil {
		t.Fatalf("the page did not go live once a slot was free: %v", err)
	}
	r.post(t, 1)
	all := r.all(t)
	if err := chromedp.Do(ctx, countIs(len(all))); err != nil {
		t.Fatalf("the live page missed a message: %v", err)
	}
	shown := eval[string](t, ctx, `Array.from(document.querySelectorAll("#messages li")).map(li => li.dataset.id).join(",")`)
	if want := ids(all); shown != want {
		t.Fatalf("page shows ids %s, want %s", shown, want)
	}
	shoot(t, ctx, shots, "live-again")
}

// A spectator who reloads the page twenty times in a row, at the contract's
// cap of 10 streams per IP, still gets a live stream every time: each
// reload's old stream gives its slot back as the browser drops it.
func TestSpectatorPageReloads(t *testing.T) {
	ctx := browser(t)
	r := newRoom(t, "")
	r.post(t, 3)
	p := startPod(t, r, "a", func(c *streamer.Config) {
		c.Limits.StreamsPerIP = 10
		c.PingInterval = 15 * time.Second
	})
	apiURL := startAPI(t, r)
	var current atomic.Pointer[url.URL]
	current.Store(urlOf(t, p.url))
	base := ingress(t, &current, apiURL)
	liveNow := func(n int) chromedp.Action[chromedp.Void] {
		return poll(fmt.Sprintf(`document.getElementById("status").innerText === "live" && document.querySelectorAll("#messages li").length === %d`, n))
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), liveNow(3)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 1; i <= 20; i++ {
		if err := chromedp.Do(ctx, chromedp.Reload(), liveNow(3)); err != nil {
			notice := eval[string](t, ctx, `document.getElementById("notice").innerText`)
			t.Fatalf("reload %d (%s after the first): not live: %v (%q)", i, time.Since(start).Round(time.Millisecond), err, notice)
		}
	}
	took := time.Since(start)
	t.Logf("20 reloads, each live, in %s", took.Round(time.Millisecond))
	msg := r.post(t, 1)[0]
	if err := chromedp.Do(ctx, liveNow(4)); err != nil {
		t.Fatalf("the page after the reloads missed message %d: %v", msg.ID, err)
	}
	// The pod holds the page's one stream (and none of the reloads').
	testenv.Eventually(t, 5*time.Second, "the reloads' streams gone", func() error {
		if n := p.srv.Connections(); n != 1 {
			return fmt.Errorf("the pod holds %d streams", n)
		}
		return nil
	})
}
