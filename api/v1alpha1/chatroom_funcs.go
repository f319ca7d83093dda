package v1alpha1

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chatr-ai/chatr/internal/autoscale"
)

// Component is one of the room's workloads. Each runs the same image as
// `/chatrd <component>` in a Deployment of its own.
type Component string

// The room's components.
const (
	ComponentAPI      Component = "api"
	ComponentStreamer Component = "streamer"
	ComponentVerifier Component = "verifier"
)

// Components lists the room's components in the order the operator reconciles
// and reports them.
var Components = []Component{ComponentAPI, ComponentStreamer, ComponentVerifier}

// Labels shared by every object of a room. The selector labels (name,
// instance, component) include the room's name, so two rooms in one
// namespace never select each other's pods.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"

	// AppName is the value of LabelName and LabelPartOf.
	AppName = "chatr"
	// ManagerName is the value of LabelManagedBy and the operator's field manager.
	ManagerName = "chatr-operator"
)

// ComponentName is the name of the Deployment, Service, PodDisruptionBudget and
// NetworkPolicy of component c: "<room>-<component>". No component name holds a
// '-', so the names of two rooms' children never collide.
func (r *ChatRoom) ComponentName(c Component) string {
	return r.Name + "-" + string(c)
}

// ConfigMapName is the name of the room's settings ConfigMap.
func (r *ChatRoom) ConfigMapName() string { return r.Name + "-config" }

// ServiceAccountName is the name of the room's ServiceAccount.
func (r *ChatRoom) ServiceAccountName() string { return r.Name + "-chatr" }

// IngressName is the name of the room's Ingress.
func (r *ChatRoom) IngressName() string { return r.Name }

// CommonLabels returns the labels on every object of the room.
func (r *ChatRoom) CommonLabels() map[string]string {
	return map[string]string{
		LabelName:      AppName,
		LabelInstance:  r.Name,
		LabelManagedBy: ManagerName,
		LabelPartOf:    AppName,
	}
}

// ComponentLabels returns the labels on the objects of component c.
func (r *ChatRoom) ComponentLabels(c Component) map[string]string {
	l := r.CommonLabels()
	l[LabelComponent] = string(c)
	return l
}

// SelectorLabels returns the labels that select the pods of component c. A
// Deployment's selector is immutable, so these must never change.
func (r *ChatRoom) SelectorLabels(c Component) map[string]string {
	return map[string]string{
		LabelName:      AppName,
		LabelInstance:  r.Name,
		LabelComponent: string(c),
	}
}

// PostgresSchema returns the schema the room uses: spec.postgres.schema, or
// one derived from the namespace and name (unique per room; see defaultSchema).
func (r *ChatRoom) PostgresSchema() string {
	if r.Spec.Postgres.Schema != "" {
		return r.Spec.Postgres.Schema
	}
	return defaultSchema(r.Namespace, r.Name)
}

// SecretRef is one key of one Secret that a room reads.
type SecretRef struct {
	Name, Key string
	// Components are the components whose pods read the key: only their pods
	// roll when it changes.
	Components []Component
}

// SecretRefs returns every Secret key the room reads, and who reads it.
func (r *ChatRoom) SecretRefs() []SecretRef {
	all := Components
	refs := []SecretRef{
		{Name: r.Spec.Postgres.SecretName, Key: keyOr(r.Spec.Postgres.SecretKey, DefaultSecretKey), Components: all},
		{Name: r.Spec.Redis.SecretName, Key: keyOr(r.Spec.Redis.SecretKey, DefaultSecretKey), Components: all},
	}
	if m := r.Spec.Moltbook; m.APIKeySecretName != "" {
		refs = append(refs, SecretRef{
			Name: m.APIKeySecretName, Key: keyOr(m.APIKeySecretKey, DefaultMoltbookAPIKeySecretKey),
			Components: []Component{ComponentVerifier},
		})
	}
	if t := r.Spec.Moderation.TokenSecretRef; t != nil {
		refs = append(refs, SecretRef{Name: t.Name, Key: keyOr(t.Key, DefaultModerationTokenKey), Components: []Component{ComponentAPI}})
	}
	return refs
}

// DefaultModerationTokenKey is the key of the moderation Secret that holds
// the token when the room names none.
const DefaultModerationTokenKey = "token"

// ServiceURL returns the in-cluster URL of component c's Service.
func (r *ChatRoom) ServiceURL(c Component, port int32) string {
	return fmt.Sprintf("http://%s.%s.svc:%d", r.ComponentName(c), r.Namespace, port)
}

// PublicURL returns the room's public URL, or "" without an ingress.
func (r *ChatRoom) PublicURL() string {
	in := r.Spec.Ingress
	if in == nil || in.Host == "" {
		return ""
	}
	if in.TLSSecretName != "" {
		return "https://" + in.Host + "/"
	}
	return "http://" + in.Host + "/"
}

// keyOr returns k, or def when the (not yet defaulted) key is empty.
func keyOr(k, def string) string {
	if k == "" {
		return def
	}
	return k
}

// Policy returns the streamer autoscaler's policy for this spec, which must
// be defaulted (SetDefaults). Percentages become fractions and durations
// become time.Durations; nothing else changes, so a defaulted spec gives
// exactly autoscale.DefaultPolicy() (a test checks it).
func (s StreamerAutoscalingSpec) Policy() autoscale.Policy {
	return autoscale.Policy{
		MinReplicas:         s.MinReplicas,
		MaxReplicas:         s.MaxReplicas,
		TargetPerPod:        int64(s.TargetConnectionsPerPod),
		SparePods:           deref(s.SparePods),
		ScaleUpTolerance:    float64(deref(s.ScaleUp.TolerancePercent)) / 100,
		ScaleDownTolerance:  float64(deref(s.ScaleDown.TolerancePercent)) / 100,
		ScaleUpWindow:       duration(s.ScaleUp.StabilizationWindow),
		ScaleDownWindow:     duration(s.ScaleDown.StabilizationWindow),
		Period:              duration(s.RateLimitPeriod),
		ScaleUpMaxPods:      deref(s.ScaleUp.MaxPods),
		ScaleUpMaxPercent:   deref(s.ScaleUp.MaxPercent),
		ScaleDownMaxPods:    deref(s.ScaleDown.MaxPods),
		ScaleDownMaxPercent: deref(s.ScaleDown.MaxPercent),
	}
}

// Interval returns how often the autoscaler evaluates the room:
// evaluationInterval, or autoscale.DefaultInterval when unset.
func (s StreamerAutoscalingSpec) Interval() time.Duration {
	if s.EvaluationInterval == nil || s.EvaluationInterval.Duration <= 0 {
		return autoscale.DefaultInterval
	}
	return s.EvaluationInterval.Duration
}

// deref returns *p, or 0 when p is nil.
func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// duration returns d's duration, or 0 when d is nil.
func duration(d *metav1.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.Duration
}
