package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The defaults below are the same values as the +kubebuilder:default markers
// of chatroom_types.go. The API server applies the markers; SetDefaults
// applies these, so the pure builders give the same objects for a ChatRoom
// that never went through an API server (a table test, say). A test creates a
// minimal ChatRoom in a real API server and checks that both agree.
const (
	DefaultImagePullPolicy         = corev1.PullIfNotPresent
	DefaultSecretKey               = "url"
	DefaultMoltbookAPIKeySecretKey = "apiKey"
	DefaultMoltbookURL             = "https://www.moltbook.com/api/v1"
	DefaultAPIReplicas             = int32(2)
	DefaultVerifierReplicas        = int32(1)
	DefaultMaxConnectionsPerPod    = int32(20000)
	DefaultDrainTime               = 30 * time.Second
	// The streamer autoscaler's defaults are autoscale.DefaultPolicy() and
	// autoscale.DefaultInterval (a test checks that they agree).
	DefaultMinStreamers              = int32(2)
	DefaultMaxStreamers              = int32(50)
	DefaultTargetConnectionsPerPod   = int32(5000)
	DefaultSparePods                 = int32(1)
	DefaultEvaluationInterval        = 2 * time.Second
	DefaultRateLimitPeriod           = 15 * time.Second
	DefaultScaleUpWindow             = time.Duration(0)
	DefaultScaleUpTolerancePercent   = int32(0)
	DefaultScaleUpMaxPods            = int32(4)
	DefaultScaleUpMaxPercent         = int32(100)
	DefaultScaleDownWindow           = 5 * time.Minute
	DefaultScaleDownTolerancePercent = int32(10)
	DefaultScaleDownMaxPods          = int32(1)
	DefaultScaleDownMaxPercent       = int32(10)
	DefaultMoltbookRPM               = int32(100)
	DefaultVerifyMaxAttempts         = int32(8)
	DefaultVerifyWait                = 10 * time.Second
	// DefaultFinishedJobsMaxAge is how long finished verification jobs are kept.
	DefaultFinishedJobsMaxAge = 7 * 24 * time.Hour
	DefaultLogLevel           = "info"
	DefaultLogFormat          = "json"
)

// DefaultLimits returns the wire contract's default limits (chatr.ai's);
// they equal internal/config.DefaultLimits, which a test checks.
func DefaultLimits() LimitsSpec {
	return LimitsSpec{
		MessageMaxChars:       250,
		VerifiedMessages:      10,
		VerifiedWindow:        dur(time.Minute),
		UnverifiedMessages:    ptr(int32(1)),
		UnverifiedWindow:      dur(5 * time.Minute),
		AllowUnverifiedLinks:  false,
		RegistrationsPerIP:    5,
		RegistrationWindow:    dur(time.Hour),
		RequestsPerIP:         120,
		RequestWindow:         dur(time.Minute),
		StreamsPerIP:          10,
		PresenceTimeout:       dur(30 * time.Minute),
		VerificationsPerAgent: ptr(int32(3)),
		VerificationWindow:    dur(10 * time.Minute),
	}
}

// SetDefaults fills every unset field that has a +kubebuilder:default marker
// with that default. It leaves postgres.schema empty (the effective schema is
// PostgresSchema) and resources empty (the builders apply DefaultResources),
// because neither default belongs in the stored spec.
func (r *ChatRoom) SetDefaults() {
	s := &r.Spec
	setIfEmpty(&s.ImagePullPolicy, DefaultImagePullPolicy)
	setIfEmpty(&s.Postgres.SecretKey, DefaultSecretKey)
	setIfEmpty(&s.Redis.SecretKey, DefaultSecretKey)
	setIfNil(&s.API.Replicas, DefaultAPIReplicas)
	setIfNil(&s.Verifier.Replicas, DefaultVerifierReplicas)
	setDurIfNil(&s.Retention.FinishedJobsMaxAge, DefaultFinishedJobsMaxAge)
	setIfEmpty(&s.Monitoring.Interval, DefaultScrapeInterval)

	st := &s.Streamer
	setIfEmpty(&st.MaxConnectionsPerPod, DefaultMaxConnectionsPerPod)
	setDurIfNil(&st.DrainTime, DefaultDrainTime)
	if st.SeccompProfile == nil {
		st.SeccompProfile = &SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	}
	as := &st.Autoscaling
	setIfEmpty(&as.MinReplicas, DefaultMinStreamers)
	setIfEmpty(&as.MaxReplicas, DefaultMaxStreamers)
	setIfEmpty(&as.TargetConnectionsPerPod, DefaultTargetConnectionsPerPod)
	setIfNil(&as.SparePods, DefaultSparePods)
	setDurIfNil(&as.EvaluationInterval, DefaultEvaluationInterval)
	setDurIfNil(&as.RateLimitPeriod, DefaultRateLimitPeriod)
	up := &as.ScaleUp
	setDurIfNil(&up.StabilizationWindow, DefaultScaleUpWindow)
	setIfNil(&up.TolerancePercent, DefaultScaleUpTolerancePercent)
	setIfNil(&up.MaxPods, DefaultScaleUpMaxPods)
	setIfNil(&up.MaxPercent, DefaultScaleUpMaxPercent)
	down := &as.ScaleDown
	setDurIfNil(&down.StabilizationWindow, DefaultScaleDownWindow)
	setIfNil(&down.TolerancePercent, DefaultScaleDownTolerancePercent)
	setIfNil(&down.MaxPods, DefaultScaleDownMaxPods)
	setIfNil(&down.MaxPercent, DefaultScaleDownMaxPercent)

	m := &s.Moltbook
	setIfEmpty(&m.URL, DefaultMoltbookURL)
	setIfEmpty(&m.APIKeySecretKey, DefaultMoltbookAPIKeySecretKey)
	setIfEmpty(&m.RequestsPerMinute, DefaultMoltbookRPM)
	setIfEmpty(&m.MaxAttempts, DefaultVerifyMaxAttempts)
	setDurIfNil(&m.VerifyWait, DefaultVerifyWait)
	if t := s.Moderation.TokenSecretRef; t != nil {
		setIfEmpty(&t.Key, DefaultModerationTokenKey)
	}

	d, l := DefaultLimits(), &s.Limits
	setIfEmpty(&l.MessageMaxChars, d.MessageMaxChars)
	setIfEmpty(&l.VerifiedMessages, d.VerifiedMessages)
	setDurIfNil(&l.VerifiedWindow, d.VerifiedWindow.Duration)
	setIfNil(&l.UnverifiedMessages, *d.UnverifiedMessages)
	setDurIfNil(&l.UnverifiedWindow, d.UnverifiedWindow.Duration)
	setIfEmpty(&l.RegistrationsPerIP, d.RegistrationsPerIP)
	setDurIfNil(&l.RegistrationWindow, d.RegistrationWindow.Duration)
	setIfEmpty(&l.RequestsPerIP, d.RequestsPerIP)
	setDurIfNil(&l.RequestWindow, d.RequestWindow.Duration)
	setIfEmpty(&l.StreamsPerIP, d.StreamsPerIP)
	setDurIfNil(&l.PresenceTimeout, d.PresenceTimeout.Duration)
	setIfNil(&l.VerificationsPerAgent, *d.VerificationsPerAgent)
	setDurIfNil(&l.VerificationWindow, d.VerificationWindow.Duration)

	setIfEmpty(&s.Logging.Level, DefaultLogLevel)
	setIfEmpty(&s.Logging.Format, DefaultLogFormat)
}

// DefaultResources returns the requests and limits a component gets when its
// spec names none. Memory is limited (a leak must not starve the node); CPU
// is only requested, since CPU throttling shows up as stream latency.
func DefaultResources(c Component) corev1.ResourceRequirements {
	req := func(cpu, mem, memLimit string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse(cpu),
				corev1.ResourceMemory: resource.MustParse(mem),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceMemory: resource.MustParse(memLimit),
			},
		}
	}
	switch c {
	case ComponentStreamer:
		// ~20,000 connections with a bounded queue each.
		return req("250m", "256Mi", "1Gi")
	case ComponentVerifier:
		return req("50m", "64Mi", "256Mi")
	default:
		return req("100m", "128Mi", "512Mi")
	}
}

// defaultSchema derives a Postgres schema from the room's namespace and name.
// It must be unique per room, because rooms in different namespaces may share
// one Postgres server (and one Redis, whose keys the schema prefixes): a
// collision would merge two rooms' data. Readable case: "<ns>__<name>" with
// '-' turned into '_'. Since Kubernetes names hold no '_', that is one-to-one
// unless a name holds "--"; in that case, or when the result is too long for
// a Postgres identifier (63 bytes), starts with a digit or with the reserved
// "pg_", a hash of namespace/name keeps it unique.
func defaultSchema(namespace, name string) string {
	s := strings.ReplaceAll(namespace, "-", "_") + "__" + strings.ReplaceAll(name, "-", "_")
	if len(s) <= 63 && !strings.Contains(namespace+"/"+name, "--") &&
		s[0] >= 'a' && s[0] <= 'z' && !strings.HasPrefix(s, "pg_") {
		return s
	}
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	const keep = 63 - len("chatr_") - len("_") - 8
	if len(s) > keep {
		s = strings.TrimRight(s[:keep], "_")
	}
	return "chatr_" + s + "_" + hex.EncodeToString(sum[:4])
}

// setIfEmpty sets *p to v when *p is the zero value (an unset field).
func setIfEmpty[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// setIfNil points *p at v when the optional field is unset.
func setIfNil[T any](p **T, v T) {
	if *p == nil {
		*p = &v
	}
}

// setDurIfNil sets an unset duration field to d.
func setDurIfNil(p **metav1.Duration, d time.Duration) {
	if *p == nil {
		*p = dur(d)
	}
}

// dur wraps d for the API.
func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }
