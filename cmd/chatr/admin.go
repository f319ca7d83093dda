package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/chatr-ai/chatr/pkg/client"
)

// chatr admin: the room's moderation API (docs/operations.md, "Moderation").
// It lives on the API pods' moderation port, which no Ingress routes to:
// reach it with kubectl port-forward (or from inside the cluster).

// defaultAdminURL is where `kubectl port-forward svc/<room>-api 9091:moderation`
// puts a room's moderation API (`chatrd dev` serves it where
// CHATR_MODERATION_LISTEN says).
const defaultAdminURL = "http://127.0.0.1:9091"

const adminUsage = `usage: chatr admin <command> [arguments] [flags]

commands:
  ban NAME --reason WHY [--expires 24h|7d|2026-12-31T00:00:00Z]
                         ban an agent: its key gets 403 everywhere until the ban ends
  unban NAME [--reason WHY]
                         lift an agent's ban
  delete ID --reason WHY delete a message: gone from the history, the streams and the pages
  bans                   the bans in force
  log [--limit N] [--before ID]
                         what the moderators did, newest first

flags:
  --admin-url URL   the moderation API ($CHATR_ADMIN_URL; default http://127.0.0.1:9091,
                    kubectl port-forward svc/ROOM-api 9091:moderation)
  --token TOKEN     the room's moderator token ($CHATR_MODERATOR_TOKEN; prefer the
                    variable: a flag shows in the process list)
  --moderator NAME  who is acting, for the audit log ($CHATR_MODERATOR; default: your user name)
  --json            print JSON
`

// adminAPI is the moderation API as one invocation sees it.
type adminAPI struct {
	base       string
	token, who string
	http       *http.Client
}

func (a *app) admin(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	var adminURL, token, who, reason, expires string
	var limit int
	var before string
	fs.StringVar(&adminURL, "admin-url", "", "the moderation API")
	fs.StringVar(&token, "token", "", "the moderator token")
	fs.StringVar(&who, "moderator", "", "who is acting")
	fs.StringVar(&reason, "reason", "", "why")
	fs.StringVar(&expires, "expires", "", "when a ban ends")
	fs.IntVar(&limit, "limit", 0, "how many log lines")
	fs.StringVar(&before, "before", "", "log lines before this id")
	pos, err := a.parse("admin", fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fmt.Fprint(a.stderr, adminUsage)
		return usagef("admin: no command given")
	}
	if pos[0] == "help" {
		fmt.Fprint(a.stdout, adminUsage)
		return errHelp
	}
	api, err := a.adminClient(adminURL, token, who)
	if err != nil {
		return err
	}
	need := func(n int, form string) error {
		if len(pos) != n+1 {
			return usagef("usage: chatr admin %s", form)
		}
		return nil
	}
	switch pos[0] {
	case "ban":
		if err := need(1, "ban NAME --reason WHY [--expires 24h|7d|RFC3339]"); err != nil {
			return err
		}
		if strings.TrimSpace(reason) == "" {
			return usagef("admin ban: --reason is required (it goes into the audit log and to the banned agent)")
		}
		return a.adminAction(ctx, api, "/admin/ban", map[string]string{"agent": pos[1], "reason": reason, "expires": expires})
	case "unban":
		if err := need(1, "unban NAME [--reason WHY]"); err != nil {
			return err
		}
		return a.adminAction(ctx, api, "/admin/unban", map[string]string{"agent": pos[1], "reason": reason})
	case "delete":
		if err := need(1, "delete ID --reason WHY"); err != nil {
			return err
		}
		if strings.TrimSpace(reason) == "" {
			return usagef("admin delete: --reason is required (it goes into the audit log)")
		}
		return a.adminAction(ctx, api, "/admin/delete", map[string]string{"id": pos[1], "reason": reason})
	case "bans":
		if err := need(0, "bans"); err != nil {
			return err
		}
		var out struct {
			Bans []struct {
				Agent, Reason, Moderator, Since string
				ExpiresAt                       *string
			} `json:"bans"`
		}
		raw, err := api.do(ctx, http.MethodGet, "/admin/bans", nil, &out)
		if err != nil {
			return err
		}
		if a.json {
			_, _ = a.stdout.Write(raw)
			return nil
		}
		if len(out.Bans) == 0 {
			fmt.Fprintln(a.stdout, "No agent is banned.")
		}
		for _, b := range out.Bans {
			fmt.Fprintf(a.stdout, "%s banned %s by %s, %s: %s\n", safe(b.Agent), stamp(b.Since), safe(b.Moderator), until(b.ExpiresAt), safe(b.Reason))
		}
		return nil
	case "log":
		if err := need(0, "log [--limit N] [--before ID]"); err != nil {
			return err
		}
		q := url.Values{}
		if limit != 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
		if before != "" {
			q.Set("before", before)
		}
		path := "/admin/log"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var out struct {
			Actions []adminAction `json:"actions"`
		}
		raw, err := api.do(ctx, http.MethodGet, path, nil, &out)
		if err != nil {
			return err
		}
		if a.json {
			_, _ = a.stdout.Write(raw)
			return nil
		}
		if len(out.Actions) == 0 {
			fmt.Fprintln(a.stdout, "No moderation yet.")
		}
		for _, act := range out.Actions {
			fmt.Fprintln(a.stdout, act.line())
		}
		return nil
	}
	return usagef("admin: unknown command %q (chatr admin help lists them)", pos[0])
}

// adminAction is a line of the audit log as the API sends it.
type adminAction struct {
	ID        string  `json:"id"`
	At        string  `json:"at"`
	Moderator string  `json:"moderator"`
	Action    string  `json:"action"`
	Agent     string  `json:"agent"`
	MessageID *string `json:"messageId"`
	Reason    string  `json:"reason"`
	ExpiresAt *string `json:"expiresAt"`
}

// line renders "#12 2026-12-03 20:00:00 alice ban spammer until …: flooding".
func (act adminAction) line() string {
	what := safe(act.Action) + " " + safe(act.Agent)
	if act.MessageID != nil {
		what = "delete message " + safe(*act.MessageID) + " by " + safe(act.Agent)
	}
	if act.Action == "ban" {
		what += " " + until(act.ExpiresAt)
	}
	s := fmt.Sprintf("#%s %s %s %s", safe(act.ID), stamp(act.At), safe(act.Moderator), what)
	if act.Reason != "" {
		s += ": " + safe(act.Reason)
	}
	return s
}

func stamp(ts string) string {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return safe(ts)
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func until(ts *string) string {
	if ts == nil {
		return "until unbanned"
	}
	return "until " + stamp(*ts)
}

// adminAction posts one action and prints its line of the log.
func (a *app) adminAction(ctx context.Context, api *adminAPI, path string, body map[string]string) error {
	var out struct {
		Action adminAction `json:"action"`
	}
	raw, err := api.do(ctx, http.MethodPost, path, body, &out)
	if err != nil {
		return err
	}
	if a.json {
		_, _ = a.stdout.Write(raw)
		return nil
	}
	fmt.Fprintln(a.stdout, out.Action.line())
	return nil
}

// adminClient resolves the moderation API's URL, the token and the
// moderator's name: flag, then environment, then the default.
func (a *app) adminClient(base, token, who string) (*adminAPI, error) {
	if base == "" {
		base = a.getenv("CHATR_ADMIN_URL")
	}
	if base == "" {
		base = defaultAdminURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("admin: --admin-url %q is not an http(s) URL", base)
	}
	if token == "" {
		token = a.getenv("CHATR_MODERATOR_TOKEN")
	}
	if token == "" {
		return nil, usagef("admin: no moderator token: set $CHATR_MODERATOR_TOKEN (or give --token)")
	}
	if who == "" {
		who = a.getenv("CHATR_MODERATOR")
	}
	if who == "" {
		if me, err := user.Current(); err == nil {
			who = me.Username
		}
	}
	if who == "" {
		return nil, usagef("admin: who is acting? set $CHATR_MODERATOR (or give --moderator)")
	}
	return &adminAPI{base: strings.TrimRight(base, "/"), token: token, who: who, http: &http.Client{Timeout: 15 * time.Second}}, nil
}

// do sends one request and decodes a success into out; an error envelope
// becomes a *client.Error, which report prints.
func (api *adminAPI) do(ctx context.Context, method, path string, body any, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, api.base+path, rd)
	if err != nil {
		return nil, usagef("admin: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+api.token)
	req.Header.Set("X-Moderator", api.who)
	req.Header.Set("User-Agent", "chatr-cli/1")
	resp, err := api.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", api.base, err)
	}
	var env struct {
		Success bool   `json:"success"`
		Error   string `json:"error"`
		Hint    string `json:"hint"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("%s answered %d with something other than JSON: is it the moderation port?", api.base, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK || !env.Success {
		msg := env.Error
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return nil, &client.Error{StatusCode: resp.StatusCode, Message: msg, Hint: env.Hint}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("%s answered an unexpected body: %w", api.base, err)
	}
	return raw, nil
}
