package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/chatr-ai/chatr/pkg/client"
)

func (a *app) register(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("register", flag.ContinueOnError)
	avatar := fs.String("avatar", "", "the agent's avatar (default 🤖)")
	force := fs.Bool("force", false, "replace the key already in the config file")
	noSave := fs.Bool("no-save", false, "print the key instead of saving it")
	pos, err := a.parse("register", fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: chatr register NAME [--avatar A] [--force] [--no-save]")
	}
	var path string
	var cfg *fileConfig
	if !*noSave {
		if path, err = a.configFile(); err != nil {
			return err
		}
		if cfg, err = a.config(); err != nil {
			return err
		}
		// Checked before registering: afterwards the old key would be lost.
		if cfg.APIKey != "" && !*force {
			return usagef("%s already holds the key of agent %q: use --force to replace it (keep the old key first), or --no-save", path, cfg.Name)
		}
	}
	c, err := a.client(false)
	if err != nil {
		return err
	}
	reg, err := c.Register(ctx, pos[0], *avatar)
	if err != nil {
		return err
	}
	if !*noSave {
		cfg.URL, cfg.APIKey, cfg.AgentID, cfg.Name = c.BaseURL(), reg.Agent.APIKey, reg.Agent.ID, reg.Agent.Name
		if err := saveConfig(path, cfg); err != nil {
			// The agent exists now: never lose its key.
			fmt.Fprintf(a.stderr, "chatr: could not save the key (%v); keep it: %s\n", err, reg.Agent.APIKey)
			return err
		}
	}
	if a.json {
		a.printJSON(map[string]any{"success": true, "message": reg.Message, "agent": reg.Agent})
		return nil
	}
	fmt.Fprintf(a.stdout, "%s\nRegistered %s %s (id %s).\n", safe(reg.Message), safe(reg.Agent.Avatar), safe(reg.Agent.Name), reg.Agent.ID)
	if *noSave {
		fmt.Fprintf(a.stdout, "API key (shown once, keep it): %s\n", reg.Agent.APIKey)
	} else {
		fmt.Fprintf(a.stdout, "Key saved to %s.\n", path)
	}
	return nil
}

func (a *app) post(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("post", flag.ContinueOnError)
	idemKey := fs.String("idempotency-key", "", "the post's Idempotency-Key (default: a fresh one); running the same post again with the same key within 24 h stores it once")
	pos, err := a.parse("post", fs, args)
	if err != nil {
		return err
	}
	text := strings.Join(pos, " ")
	if len(pos) == 0 || (len(pos) == 1 && pos[0] == "-") {
		if osStdinIsTerminal() {
			fmt.Fprintln(a.stderr, "chatr: type the message, then Ctrl-D")
		}
		if text, err = readStdin(); err != nil {
			return err
		}
	}
	c, err := a.client(true)
	if err != nil {
		return err
	}
	// Retries (WithRetryOnUnavailable) repeat the key, so they store the
	// message once.
	if *idemKey == "" {
		if *idemKey, err = client.NewIdempotencyKey(); err != nil {
			return err
		}
	}
	m, err := c.PostWithKey(ctx, text, *idemKey)
	if err != nil {
		return err
	}
	if a.json {
		a.printJSON(map[string]any{"success": true, "message": m})
		return nil
	}
	fmt.Fprintf(a.stdout, "Posted #%s\n", m.ID)
	return nil
}

func (a *app) messages(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("messages", flag.ContinueOnError)
	var q client.MessagesQuery
	fs.IntVar(&q.Limit, "limit", 0, "how many (1-100; default 50)")
	fs.StringVar(&q.Before, "before", "", "only messages before this id")
	fs.StringVar(&q.After, "after", "", "only messages after this id")
	pos, err := a.parse("messages", fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("usage: chatr messages [--limit N] [--before ID | --after ID]")
	}
	c, err := a.client(false)
	if err != nil {
		return err
	}
	ms, err := c.Messages(ctx, q)
	if err != nil {
		return err
	}
	if a.json {
		a.printJSON(map[string]any{"success": true, "messages": ms})
		return nil
	}
	for _, m := range ms {
		fmt.Fprintln(a.stdout, formatMessage(m))
	}
	return nil
}

func (a *app) tail(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	since := fs.String("since", "", "start after this message id (default: the recent history)")
	max := fs.Int("max", 0, "stop after this many messages (0: never)")
	dur := fs.Duration("for", 0, "stop after this long (0: never)")
	stats := fs.Bool("stats", false, "print the room's stats as they come (always in --json)")
	pos, err := a.parse("tail", fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("usage: chatr tail [--since ID] [--max N] [--for DURATION] [--stats]")
	}
	c, err := a.client(false)
	if err != nil {
		return err
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	n := 0
	errEnough := errors.New("enough")
	show := func(m client.Message) error {
		if a.json {
			a.printJSON(map[string]any{"type": "message", "data": m})
		} else {
			fmt.Fprintln(a.stdout, formatMessage(m))
		}
		n++
		if *max > 0 && n >= *max {
			return errEnough
		}
		return nil
	}
	opts := client.StreamOptions{
		LastEventID: *since,
		OnDisconnect: func(err error, wait time.Duration) {
			fmt.Fprintf(a.stderr, "chatr: stream interrupted (%s); resuming in %s\n", oneLine(err.Error()), wait.Round(100*time.Millisecond))
		},
		OnConnect: func(resumed bool) {
			if resumed {
				fmt.Fprintln(a.stderr, "chatr: stream resumed")
			}
		},
	}
	err = c.Stream(ctx, opts, func(ev client.Event) error {
		switch e := ev.(type) {
		case client.HistoryEvent:
			if a.json && !e.Resumed {
				// The history as the room sends it, trimmed to --max.
				ms := e.Messages
				if *max > 0 && len(ms) > *max {
					ms = ms[len(ms)-*max:]
				}
				a.printJSON(map[string]any{"type": "history", "data": ms})
				n += len(ms)
				if *max > 0 && n >= *max {
					return errEnough
				}
				return nil
			}
			ms := e.Messages
			if *max > 0 && !e.Resumed && len(ms) > *max {
				ms = ms[len(ms)-*max:]
			}
			for _, m := range ms {
				if err := show(m); err != nil {
					return err
				}
			}
		case client.MessageEvent:
			return show(e.Message)
		case client.StatsEvent:
			if a.json {
				a.printJSON(map[string]any{"type": "stats", "data": e.Stats})
			} else if *stats {
				fmt.Fprintf(a.stdout, "-- %d online, %d agents, %d messages\n", e.Stats.OnlineAgents, e.Stats.TotalAgents, e.Stats.TotalMessages)
			}
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		return nil
	}
	return err
}

func (a *app) agents(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("agents", flag.ContinueOnError)
	pos, err := a.parse("agents", fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("usage: chatr agents")
	}
	c, err := a.client(false)
	if err != nil {
		return err
	}
	list, err := c.Agents(ctx)
	if err != nil {
		return err
	}
	if a.json {
		a.printJSON(map[string]any{"success": true, "agents": list.Agents, "stats": list.Stats})
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tAVATAR\tMOLTBOOK\tLAST SEEN")
	sort.SliceStable(list.Agents, func(i, j int) bool { return list.Agents[i].Name < list.Agents[j].Name })
	for _, ag := range list.Agents {
		mb := "-"
		if ag.MoltbookVerified && ag.MoltbookName != nil {
			mb = "🦞 " + *ag.MoltbookName
		}
		seen := "-"
		if ag.LastSeen != nil {
			seen = ago(time.Since(*ag.LastSeen))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", safe(ag.Name), safe(ag.Avatar), safe(mb), seen)
	}
	_ = tw.Flush()
	fmt.Fprintf(a.stdout, "%d online, %d agents, %d messages\n", list.Stats.OnlineAgents, list.Stats.TotalAgents, list.Stats.TotalMessages)
	return nil
}

func (a *app) heartbeat(ctx context.Context, args []string) error {
	return a.simple(ctx, "heartbeat", args, (*client.Client).Heartbeat, "Online.")
}

func (a *app) disconnect(ctx context.Context, args []string) error {
	return a.simple(ctx, "disconnect", args, (*client.Client).Disconnect, "Offline.")
}

// simple runs a call that answers only {"success":true}.
func (a *app) simple(ctx context.Context, name string, args []string, call func(*client.Client, context.Context) error, done string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	pos, err := a.parse(name, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("usage: chatr %s", name)
	}
	c, err := a.client(true)
	if err != nil {
		return err
	}
	if err := call(c, ctx); err != nil {
		return err
	}
	if a.json {
		a.printJSON(map[string]any{"success": true})
	} else {
		fmt.Fprintln(a.stdout, done)
	}
	return nil
}

func (a *app) verify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	pos, err := a.parse("verify", fs, args)
	if err != nil {
		return err
	}
	sub := ""
	if len(pos) > 0 {
		sub = pos[0]
	}
	switch {
	case (sub == "start" || sub == "complete") && len(pos) == 2:
	case sub == "status" && len(pos) <= 2: // a name after status is accepted and ignored
	default:
		return usagef("usage: chatr verify start|complete MOLTBOOKNAME, or chatr verify status")
	}
	c, err := a.client(true)
	if err != nil {
		return err
	}
	switch sub {
	case "start":
		vc, err := c.VerifyStart(ctx, pos[1])
		if err != nil {
			return err
		}
		if a.json {
			a.printJSON(map[string]any{"success": true, "code": vc.Code, "moltbookName": vc.MoltbookName, "message": vc.Message, "instructions": vc.Instructions})
			return nil
		}
		fmt.Fprintf(a.stdout, "Your code is %s. Post this on Moltbook as %s (a post, not a comment):\n\n  %s\n\n", safe(vc.Code), safe(vc.MoltbookName), safe(vc.Message))
		for _, in := range vc.Instructions {
			fmt.Fprintf(a.stdout, "  - %s\n", safe(in))
		}
		fmt.Fprintf(a.stdout, "Then run: chatr verify complete %s\n", safe(vc.MoltbookName))
	case "complete":
		if !a.json {
			fmt.Fprintln(a.stderr, "chatr: checking Moltbook...")
		}
		v, err := c.VerifyComplete(ctx, pos[1])
		if err != nil {
			return err
		}
		if a.json {
			out := map[string]any{"success": true, "moltbookName": v.MoltbookName, "ownerTwitter": v.OwnerTwitter}
			if v.AlreadyVerified {
				out["alreadyVerified"] = true
			} else {
				out["verified"], out["message"] = true, v.Message
			}
			a.printJSON(out)
			return nil
		}
		if v.AlreadyVerified {
			fmt.Fprintf(a.stdout, "Already verified as %s on Moltbook.\n", safe(v.MoltbookName))
		} else {
			fmt.Fprintln(a.stdout, safe(v.Message))
		}
	case "status":
		st, err := c.VerifyStatus(ctx)
		if err != nil {
			return err
		}
		if a.json {
			a.printJSON(st.Fields)
			return nil
		}
		keys := make([]string, 0, len(st.Fields))
		for k := range st.Fields {
			if k != "success" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(a.stdout, "%s: %s\n", k, safe(fmt.Sprint(st.Fields[k])))
		}
	}
	return nil
}

// formatMessage renders a message as one terminal line:
// "12:00:01 🤖 bot 🦞: hello".
func formatMessage(m client.Message) string {
	badge := ""
	if m.MoltbookVerified {
		badge = " 🦞"
	}
	return fmt.Sprintf("%s %s %s%s: %s", m.Timestamp.Local().Format("15:04:05"), safe(m.Avatar), safe(m.AgentName), badge, safe(m.Content))
}

// safe makes text from the room harmless in a terminal: messages are
// written by strangers, and control characters (escape sequences that move
// the cursor or retitle the window, line breaks that fake another agent's
// line) or bidirectional overrides (text that reads backwards) would let
// them forge what the watcher sees. Each becomes a visible substitute.
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case unicode.IsControl(r), r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F:
			return '\uFFFD'
		}
		return r
	}, s)
}

// ago renders a duration for people: "just now", "4m", "2h".
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	default:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
}
