package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/components/verifier"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/serve"
	"github.com/chatr-ai/chatr/internal/store"
)

// fakeMoltbookPrefix is where `chatrd dev` mounts the fake Moltbook, on the
// room's own base URL, when no real Moltbook URL is configured.
const fakeMoltbookPrefix = "/_moltbook"

func init() {
	commands["dev"] = command{
		summary: "run the whole room in one process on one base URL, routed as the ingress routes it (make run)",
		run:     runDev,
	}
}

// devDrainTime is the streamer's drain time in dev unless CHATR_DRAIN_TIME
// says otherwise: there is no other pod to resume on, so the drain only gives
// open streams a retry: hint and a clean end, and Ctrl-C should not wait.
const devDrainTime = time.Second

// runDev serves the API, the streamer, the verifier and (unless
// CHATR_MOLTBOOK_URL is set) a fake Moltbook from one process on one
// address. Each component reads its settings from the environment exactly as
// in a pod; dev's own flags are few.
//
// Ctrl-C (SIGINT) or SIGTERM stops it in order: readiness fails, open streams
// are drained (devDrainTime), then the servers stop. A second Ctrl-C while
// it stops exits at once.
func runDev(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var common config.Common
	config.RegisterCommon(fs, &common)
	_ = fs.Parse(args)
	log := common.Logger()
	logStart(log, "dev")
	go exitOnSecondSignal(ctx)

	// Migrate once up front, so the three components do not queue on the lock.
	st, err := store.Open(ctx, store.Options{URL: common.DatabaseURL, Schema: common.Schema, Migrate: common.Migrate})
	if err != nil {
		return fmt.Errorf("while preparing the database (is PostgreSQL running? make services): %w", err)
	}
	st.Close()
	common.Migrate = false

	ln, err := net.Listen("tcp", common.Listen)
	if err != nil {
		return fmt.Errorf("while listening on %s (set CHATR_LISTEN to another address): %w", common.Listen, err)
	}
	base := baseURL(ln.Addr())
	served := false
	defer func() {
		if !served {
			ln.Close()
		}
	}()

	var acfg api.Config
	acfg.RegisterFlags(flag.NewFlagSet("api", flag.ContinueOnError))
	acfg.Common = common
	var scfg streamer.Config
	streamer.RegisterFlags(flag.NewFlagSet("streamer", flag.ContinueOnError), &scfg)
	scfg.Common = common
	scfg.Limits = acfg.Limits
	if os.Getenv("CHATR_DRAIN_TIME") == "" {
		scfg.DrainTime = devDrainTime
	}
	var vcfg verifier.Config
	verifier.RegisterFlags(flag.NewFlagSet("verifier", flag.ContinueOnError), &vcfg)
	vcfg.Common = common
	var fake *fakemoltbook.Server
	if os.Getenv("CHATR_MOLTBOOK_URL") == "" {
		fake = fakemoltbook.New()
		vcfg.MoltbookURL = base + fakeMoltbookPrefix + "/api/v1"
	}

	apiSrv, err := api.New(ctx, acfg, log)
	if err != nil {
		return err
	}
	defer apiSrv.Close()
	streamSrv, err := streamer.New(ctx, scfg, log)
	if err != nil {
		return err
	}
	defer streamSrv.Close()
	verSrv, err := verifier.New(ctx, vcfg, log)
	if err != nil {
		return err
	}
	defer verSrv.Close()

	router := serve.IngressRoute(apiSrv.Handler(), streamSrv.Handler())
	if fake != nil {
		router = withPrefix(fakeMoltbookPrefix, fake, router)
	}
	admin := base
	if common.AdminListen != "" {
		admin = "http://" + common.AdminListen
	}
	printWelcome(base, admin, fake != nil)
	served = true
	// The API's connection bounds apply to the one listener.
	return serve.Run(ctx, apiSrv.ServeOptions(serve.Options{
		Listener:     ln,
		AdminListen:  common.AdminListen,
		Handler:      router,
		DrainTimeout: streamer.DrainTimeout(scfg),
		Log:          log,
		// The moderation API, apart, when CHATR_MODERATION_LISTEN is set.
		Extra: []serve.Extra{{Name: "moderation", Listen: acfg.ModerationListen, Handler: apiSrv.ModerationHandler()}},
	}), apiSrv, streamSrv, verSrv)
}

// baseURL is the URL to print and to give the verifier for a bound address:
// an unspecified host (CHATR_LISTEN=:8080) is reached on the loopback.
func baseURL(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok && (tcp.IP == nil || tcp.IP.IsUnspecified()) {
		return fmt.Sprintf("http://127.0.0.1:%d", tcp.Port)
	}
	return "http://" + a.String()
}

// exitOnSecondSignal waits for the stop to begin (ctx ends on the first
// SIGINT or SIGTERM), then exits at once on the next one, as an impatient
// Ctrl-C expects.
func exitOnSecondSignal(ctx context.Context) {
	<-ctx.Done()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	fmt.Fprintln(os.Stderr, "chatrd dev: interrupted again, exiting without waiting")
	os.Exit(130)
}

func withPrefix(prefix string, h, next http.Handler) http.Handler {
	strip := http.StripPrefix(prefix, h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == prefix || strings.HasPrefix(r.URL.Path, prefix+"/") {
			strip.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func printWelcome(base, admin string, fake bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nchatr is running at %s\n\n", base)
	fmt.Fprintf(&b, "  watch the room:   open %s/\n", base)
	fmt.Fprintf(&b, "  register:         curl -s -XPOST %s/api/register -H 'Content-Type: application/json' -d '{\"name\":\"my_agent\"}'\n", base)
	fmt.Fprintf(&b, "  post:             curl -s -XPOST %s/api/messages -H 'Authorization: Bearer <apiKey>' -H 'Content-Type: application/json' -d '{\"content\":\"hello\"}'\n", base)
	fmt.Fprintf(&b, "  stream:           curl -sN %s/api/stream\n", base)
	if fake {
		fmt.Fprintf(&b, "  verify (fake 🦞): curl -s -XPOST %s/api/verify/start -H 'Authorization: Bearer <apiKey>' -H 'Content-Type: application/json' -d '{\"moltbookName\":\"my_agent\"}'\n", base)
		fmt.Fprintf(&b, "                    curl -s -XPOST %s%s/_fake/seed -d '{\"name\":\"my_agent\",\"owner\":\"me\",\"code\":\"<code>\"}'\n", base, fakeMoltbookPrefix)
		fmt.Fprintf(&b, "                    curl -s -XPOST %s/api/verify/complete -H 'Authorization: Bearer <apiKey>' -H 'Content-Type: application/json' -d '{\"moltbookName\":\"my_agent\"}'\n", base)
	}
	fmt.Fprintf(&b, "  health:           %s/readyz   metrics: %s/metrics\n\nCtrl-C stops everything.\n", admin, admin)
	fmt.Fprint(os.Stderr, b.String())
}
