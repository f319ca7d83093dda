package v1alpha1

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chatr-ai/chatr/internal/autoscale"
	"github.com/chatr-ai/chatr/internal/config"
)

// pgIdentifier is what CHATR_DB_SCHEMA must be (and what the CRD allows).
var pgIdentifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func TestDefaultSchema(t *testing.T) {
	cases := []struct {
		ns, name string
		want     string // "" = only check it is a valid, hashed identifier
		hashed   bool
	}{
		{"default", "lobby", "default__lobby", false},
		{"team-a", "my-room", "team_a__my_room", false},
		{"1team", "x", "", true},                                     // starts with a digit
		{"pg", "room", "", true},                                     // reserved prefix
		{"a--b", "c", "", true},                                      // "--" would be ambiguous
		{strings.Repeat("n", 45), "room-with-a-long-name", "", true}, // too long
	}
	seen := map[string]string{}
	for _, tc := range cases {
		got := defaultSchema(tc.ns, tc.name)
		if !pgIdentifier.MatchString(got) || strings.HasPrefix(got, "pg_") {
			t.Errorf("%s/%s: %q is not a usable Postgres identifier", tc.ns, tc.name, got)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("%s/%s: %q, want %q", tc.ns, tc.name, got, tc.want)
		}
		if tc.hashed != strings.HasPrefix(got, "chatr_") {
			t.Errorf("%s/%s: %q hashed=%v", tc.ns, tc.name, got, !tc.hashed)
		}
		if got != defaultSchema(tc.ns, tc.name) {
			t.Errorf("%s/%s: not stable", tc.ns, tc.name)
		}
		seen[got] = tc.ns + "/" + tc.name
	}
	// Rooms that would collide under a naive mapping get different schemas.
	pairs := [][4]string{
		{"a-b", "c", "a", "b-c"},
		{"a", "b--c", "a--b", "c"},
		{"team", "x", "team", "x-"}, // not a valid name, still distinct
	}
	for _, p := range pairs {
		if x, y := defaultSchema(p[0], p[1]), defaultSchema(p[2], p[3]); x == y {
			t.Errorf("%s/%s and %s/%s share schema %q", p[0], p[1], p[2], p[3], x)
		}
	}
}

func TestPostgresSchemaPrefersTheSpec(t *testing.T) {
	r := &ChatRoom{}
	r.Namespace, r.Name = "ns", "room"
	if got := r.PostgresSchema(); got != "ns__room" {
		t.Errorf("derived %q", got)
	}
	r.Spec.Postgres.Schema = "explicit"
	if got := r.PostgresSchema(); got != "explicit" {
		t.Errorf("explicit %q", got)
	}
}

// TestDefaultLimitsAreTheContracts: the CRD's limit defaults must be what
// the components use when run without the operator.
func TestDefaultLimitsAreTheContracts(t *testing.T) {
	l, c := DefaultLimits(), config.DefaultLimits()
	checks := []struct {
		name     string
		got, exp any
	}{
		{"messageMaxChars", int(l.MessageMaxChars), c.MessageMaxChars},
		{"verifiedMessages", int(l.VerifiedMessages), c.VerifiedMessages},
		{"verifiedWindow", l.VerifiedWindow.Duration, c.VerifiedWindow},
		{"unverifiedMessages", int(*l.UnverifiedMessages), c.UnverifiedMessages},
		{"unverifiedWindow", l.UnverifiedWindow.Duration, c.UnverifiedWindow},
		{"allowUnverifiedLinks", l.AllowUnverifiedLinks, c.AllowUnverifiedLinks},
		{"registrationsPerIP", int(l.RegistrationsPerIP), c.RegistrationsPerIP},
		{"registrationWindow", l.RegistrationWindow.Duration, c.RegistrationWindow},
		{"requestsPerIP", int(l.RequestsPerIP), c.RequestsPerIP},
		{"requestWindow", l.RequestWindow.Duration, c.RequestWindow},
		{"streamsPerIP", int(l.StreamsPerIP), c.StreamsPerIP},
		{"presenceTimeout", l.PresenceTimeout.Duration, c.PresenceTimeout},
		{"verificationsPerAgent", int(*l.VerificationsPerAgent), c.VerificationsPerAgent},
		{"verificationWindow", l.VerificationWindow.Duration, c.VerificationWindow},
	}
	for _, ch := range checks {
		if ch.got != ch.exp {
			t.Errorf("%s: %v, contract %v", ch.name, ch.got, ch.exp)
		}
	}
}

func TestSetDefaultsKeepsWhatIsSet(t *testing.T) {
	r := &ChatRoom{}
	r.Spec.API.Replicas = ptr(int32(7))
	r.Spec.Limits.UnverifiedMessages = ptr(int32(0))
	r.Spec.Streamer.Autoscaling.ScaleDown.MaxPods = ptr(int32(0))
	r.Spec.Streamer.Autoscaling.SparePods = ptr(int32(0))
	r.SetDefaults()
	if *r.Spec.API.Replicas != 7 || *r.Spec.Limits.UnverifiedMessages != 0 {
		t.Errorf("set values overwritten: %d %d", *r.Spec.API.Replicas, *r.Spec.Limits.UnverifiedMessages)
	}
	if r.Spec.Streamer.Autoscaling.ScaleDown.StabilizationWindow.Duration != 5*time.Minute ||
		r.Spec.Streamer.Autoscaling.ScaleUp.StabilizationWindow.Duration != 0 {
		t.Errorf("windows %+v %+v", r.Spec.Streamer.Autoscaling.ScaleUp, r.Spec.Streamer.Autoscaling.ScaleDown)
	}
	// 0 is a value of its own for these, not "unset".
	if as := r.Spec.Streamer.Autoscaling; *as.ScaleDown.MaxPods != 0 || *as.SparePods != 0 || *as.ScaleDown.MaxPercent != 10 {
		t.Errorf("scaleDown %+v, sparePods %d", as.ScaleDown, *as.SparePods)
	}
	again := r.DeepCopy()
	again.SetDefaults()
	if again.Spec.Streamer.Autoscaling.MinReplicas != r.Spec.Streamer.Autoscaling.MinReplicas || *again.Spec.Verifier.Replicas != 1 {
		t.Error("SetDefaults is not idempotent")
	}
}

// TestDefaultAutoscalingIsTheSimulatedPolicy: the CRD's autoscaling defaults
// must be the policy cmd/scalesim meets its goals with.
func TestDefaultAutoscalingIsTheSimulatedPolicy(t *testing.T) {
	r := &ChatRoom{}
	r.SetDefaults()
	as := r.Spec.Streamer.Autoscaling
	if got, want := as.Policy(), autoscale.DefaultPolicy(); !reflect.DeepEqual(got, want) {
		t.Errorf("defaulted spec's policy\n %+v\nwant DefaultPolicy\n %+v", got, want)
	}
	if as.Interval() != autoscale.DefaultInterval {
		t.Errorf("interval %s, want %s", as.Interval(), autoscale.DefaultInterval)
	}
	if err := as.Policy().Validate(); err != nil {
		t.Error(err)
	}
}

// TestAutoscalingPolicyMapsEveryField: each spec field lands in its own
// policy field, with percentages as fractions.
func TestAutoscalingPolicyMapsEveryField(t *testing.T) {
	d := func(x time.Duration) *metav1.Duration { return &metav1.Duration{Duration: x} }
	as := StreamerAutoscalingSpec{
		MinReplicas: 3, MaxReplicas: 30, TargetConnectionsPerPod: 1000, SparePods: ptr(int32(2)),
		EvaluationInterval: d(5 * time.Second), RateLimitPeriod: d(time.Minute),
		ScaleUp: ScaleUpRules{StabilizationWindow: d(10 * time.Second), TolerancePercent: ptr(int32(5)),
			MaxPods: ptr(int32(6)), MaxPercent: ptr(int32(50))},
		ScaleDown: ScaleDownRules{StabilizationWindow: d(10 * time.Minute), TolerancePercent: ptr(int32(20)),
			MaxPods: ptr(int32(2)), MaxPercent: ptr(int32(25))},
	}
	want := autoscale.Policy{
		MinReplicas: 3, MaxReplicas: 30, TargetPerPod: 1000, SparePods: 2,
		ScaleUpTolerance: 0.05, ScaleDownTolerance: 0.2,
		ScaleUpWindow: 10 * time.Second, ScaleDownWindow: 10 * time.Minute, Period: time.Minute,
		ScaleUpMaxPods: 6, ScaleUpMaxPercent: 50, ScaleDownMaxPods: 2, ScaleDownMaxPercent: 25,
	}
	if got := as.Policy(); !reflect.DeepEqual(got, want) {
		t.Errorf("policy\n %+v\nwant\n %+v", got, want)
	}
	if as.Interval() != 5*time.Second {
		t.Errorf("interval %s", as.Interval())
	}
	// SetDefaults keeps every value that is set.
	r := &ChatRoom{Spec: ChatRoomSpec{Streamer: StreamerSpec{Autoscaling: *as.DeepCopy()}}}
	r.SetDefaults()
	if got := r.Spec.Streamer.Autoscaling.Policy(); !reflect.DeepEqual(got, want) {
		t.Errorf("after SetDefaults\n %+v\nwant\n %+v", got, want)
	}
}
