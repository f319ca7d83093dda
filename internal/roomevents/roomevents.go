// Package roomevents carries short summaries from a room's pods to the
// operator, which emits each as a Kubernetes Event on the ChatRoom: the pods
// have no Kubernetes access (no ServiceAccount token is mounted), but they
// and the operator share the room's Redis. A pod publishes an Event (a type,
// a CamelCase reason and a one-line message) on the room's stream,
// chatr:{<schema>}:events; the operator's streamer autoscaler, which reads
// the room's Redis every evaluation anyway, relays what is new.
//
// Delivery is at least once, through a consumer group: an entry is
// acknowledged after its Event was emitted, and a new operator leader first
// re-reads what the old one read without acknowledging. The stream keeps
// about MaxLen entries, so a room whose operator is away for long loses the
// oldest summaries, never its memory.
//
// Who publishes: the verifier, a line per retention pass that deleted
// something (RetentionRun) or failed (RetentionFailed). Any other part may
// publish (a moderation ban wave, say) with Publish; docs/operations.md
// lists the reasons in use.
package roomevents

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/bus"
)

// Event types, as Kubernetes has them.
const (
	Normal  = "Normal"
	Warning = "Warning"
)

const (
	// MaxLen is about how many entries the stream keeps.
	MaxLen = 256
	// MaxMessage is the longest message kept, in bytes; longer ones are cut.
	MaxMessage = 1024
	// Group is the operator's consumer group, and consumer its only
	// consumer: whichever replica leads reads as it, so a new leader gets
	// the entries the old one read but did not acknowledge.
	Group    = "chatr-operator"
	consumer = "leader"
)

// Event is one summary.
type Event struct {
	// Type is Normal or Warning.
	Type string
	// Reason is CamelCase, as Kubernetes Events have it (RetentionRun).
	Reason string
	// Message is one line for a human.
	Message string
	// Source names the publisher (component and pod).
	Source string
}

// Delivered is an event read from the stream, with its stream id.
type Delivered struct {
	ID string
	Event
}

var reasonRE = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,127}$`)

// Valid reports what is wrong with e, if anything.
func (e Event) Valid() error {
	if e.Type != Normal && e.Type != Warning {
		return fmt.Errorf("event type %q: must be %s or %s", e.Type, Normal, Warning)
	}
	if !reasonRE.MatchString(e.Reason) {
		return fmt.Errorf("event reason %q: must be CamelCase, at most 128 letters and digits", e.Reason)
	}
	if strings.TrimSpace(e.Message) == "" {
		return errors.New("event message is empty")
	}
	return nil
}

// Key is the Redis key of the room's stream.
func Key(schema string) string { return bus.Key(schema, "events") }

// Publish adds e to the room's stream.
func Publish(ctx context.Context, rdb redis.Cmdable, schema string, e Event) error {
	if err := e.Valid(); err != nil {
		return err
	}
	err := rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: Key(schema), MaxLen: MaxLen, Approx: true,
		Values: []any{"type", e.Type, "reason", e.Reason, "message", cut(e.Message, MaxMessage), "source", e.Source},
	}).Err()
	if err != nil {
		return fmt.Errorf("while publishing room event %s: %w", e.Reason, err)
	}
	return nil
}

// Read returns at most n events not yet acknowledged: first those read
// before and never acknowledged, then new ones. It creates the consumer
// group (from the stream's start) the first time. An entry that is not a
// valid event is returned with Reason "" so that the caller acknowledges
// and skips it.
func Read(ctx context.Context, rdb redis.Cmdable, schema string, n int64) ([]Delivered, error) {
	key := Key(schema)
	read := func(from string) ([]redis.XStream, error) {
		res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: Group, Consumer: consumer, Streams: []string{key, from}, Count: n, Block: -1,
		}).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		return res, err
	}
	streams, err := read("0")
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		if cerr := rdb.XGroupCreateMkStream(ctx, key, Group, "0").Err(); cerr != nil && !strings.HasPrefix(cerr.Error(), "BUSYGROUP") {
			return nil, fmt.Errorf("while creating the room events' consumer group: %w", cerr)
		}
		streams, err = read("0")
	}
	if err == nil && countOf(streams) == 0 {
		streams, err = read(">")
	}
	if err != nil {
		return nil, fmt.Errorf("while reading the room events: %w", err)
	}
	var out []Delivered
	for _, s := range streams {
		for _, m := range s.Messages {
			e := Event{Type: str(m.Values["type"]), Reason: str(m.Values["reason"]), Message: str(m.Values["message"]), Source: str(m.Values["source"])}
			if e.Valid() != nil {
				e = Event{}
			}
			out = append(out, Delivered{ID: m.ID, Event: e})
		}
	}
	return out, nil
}

// Ack acknowledges events whose Kubernetes Event was emitted.
func Ack(ctx context.Context, rdb redis.Cmdable, schema string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := rdb.XAck(ctx, Key(schema), Group, ids...).Err(); err != nil {
		return fmt.Errorf("while acknowledging %d room events: %w", len(ids), err)
	}
	return nil
}

func countOf(streams []redis.XStream) int {
	n := 0
	for _, s := range streams {
		n += len(s.Messages)
	}
	return n
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// cut keeps s under n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
