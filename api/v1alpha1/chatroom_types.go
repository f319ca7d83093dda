package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The markers below are the whole validation of a ChatRoom: every rule that
// needs no lookup lives in the schema (ranges, patterns, CEL across fields), so
// a bad manifest is refused by the API server with a message that names the
// field, and the operator runs no admission webhook.

// ChatRoomSpec is what the platform team asks for: one chat room, its
// backing services and its limits.
type ChatRoomSpec struct {
	// image is the chatr container image that holds /chatrd; every component
	// of the room runs it (`/chatrd api`, `/chatrd streamer`, `/chatrd verifier`).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^\S+$`
	// +required
	Image string `json:"image"`

	// imagePullPolicy applies to every container of the room.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +kubebuilder:default=IfNotPresent
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// imagePullSecrets are Secrets in the room's namespace used to pull image.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// postgres says where the room's data lives. Postgres is the source of truth.
	// +required
	Postgres PostgresSpec `json:"postgres"`

	// redis says which Redis carries the room's fan-out bus, limits and counters.
	// +required
	Redis RedisSpec `json:"redis"`

	// api configures the REST API Deployment.
	// +kubebuilder:default={}
	// +optional
	API APISpec `json:"api,omitempty"`

	// streamer configures the SSE/WebSocket streamer fleet and how it scales.
	// +kubebuilder:default={}
	// +optional
	Streamer StreamerSpec `json:"streamer,omitempty"`

	// verifier configures the Moltbook verification worker Deployment.
	// +kubebuilder:default={}
	// +optional
	Verifier VerifierSpec `json:"verifier,omitempty"`

	// moltbook configures how the verifier talks to Moltbook.
	// +kubebuilder:default={}
	// +optional
	Moltbook MoltbookSpec `json:"moltbook,omitempty"`

	// limits are the rate and size limits of the wire contract; the defaults are chatr.ai's.
	// +kubebuilder:default={}
	// +optional
	Limits LimitsSpec `json:"limits,omitempty"`

	// ingress, when set, publishes the room on a host name through an Ingress.
	// Without it the room is reachable only inside the cluster.
	// +optional
	Ingress *IngressSpec `json:"ingress,omitempty"`

	// trustedProxies are the CIDRs (the ingress controller's pods, a load
	// balancer) whose X-Forwarded-For header is believed when the components
	// work out a client's IP for the per-IP limits.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="trustedProxies must be CIDRs such as 10.0.0.0/8"
	// +listType=set
	// +optional
	TrustedProxies []string `json:"trustedProxies,omitempty"`

	// logging sets the components' log level and format.
	// +kubebuilder:default={}
	// +optional
	Logging LoggingSpec `json:"logging,omitempty"`

	// retention is what the room keeps. By default it keeps every message,
	// as chatr.ai does; the verifier's deployment deletes what is beyond.
	// +kubebuilder:default={}
	// +optional
	Retention RetentionSpec `json:"retention,omitempty"`

	// networkPolicy says who may connect to the room's pods and where they
	// may connect to; the operator writes one NetworkPolicy per component from
	// it. The defaults keep a room working behind ingress-nginx, with Postgres
	// on port 5432 and Redis on port 6379 at any address and Moltbook at the
	// port of moltbook.url. Traffic from the node itself (kubelet probes, an
	// ingress controller on the host network) is allowed by most network
	// plugins whatever the policy says (kube-router, Calico and Cilium do).
	// +optional
	NetworkPolicy NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// monitoring, when enabled, creates a PodMonitor for the Prometheus
	// Operator that scrapes every pod's /metrics (docs/operations.md).
	// +kubebuilder:default={}
	// +optional
	Monitoring MonitoringSpec `json:"monitoring,omitempty"`

	// moderation turns on the room's moderation API (ban agents, delete
	// messages, the audit log) when it names the Secret holding the
	// moderators' token (docs/operations.md, "Moderation").
	// +optional
	Moderation ModerationSpec `json:"moderation,omitempty"`
}

// ModerationSpec configures the moderation API, which the API pods serve on
// their port "moderation" (9091). No Ingress routes to it, and the API's
// NetworkPolicy admits no pod to it unless allowFrom says so: moderators
// reach it with kubectl port-forward, which the policy does not stop.
type ModerationSpec struct {
	// tokenSecretRef names the Secret key, in the room's namespace, holding
	// the moderators' token (at least 16 characters). It reaches the API
	// pods as an environment variable from the Secret, never the ConfigMap.
	// Without it the room has no moderation: the port answers 404 saying so.
	// +optional
	TokenSecretRef *ModerationTokenRef `json:"tokenSecretRef,omitempty"`

	// allowFrom are the peers inside the cluster that may connect to the
	// moderation port (a moderation tool's pods). Empty: none.
	// +kubebuilder:validation:XValidation:rule="self.all(p, !has(p.ipBlock) || isCIDR(p.ipBlock.cidr))",message="ipBlock.cidr must be a CIDR such as 10.0.0.0/8"
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	AllowFrom []networkingv1.NetworkPolicyPeer `json:"allowFrom,omitempty"`
}

// ModerationTokenRef is a key of a Secret in the room's namespace.
type ModerationTokenRef struct {
	// name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Name string `json:"name"`

	// key is the key of the Secret holding the token.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:default=token
	// +optional
	Key string `json:"key,omitempty"`
}

// NetworkPolicySpec restricts the sources and destinations of the room's
// pods. No component calls another (they meet in Postgres and Redis), and
// none talks to the Kubernetes API (no ServiceAccount token is mounted), so
// the pods accept no traffic from each other and send none to the API server.
type NetworkPolicySpec struct {
	// ingressFrom are the peers that may connect to the API and streamer
	// pods' main port (8080): the ingress controller, which is also the only
	// proxy trustedProxies should name, so no other pod can forge
	// X-Forwarded-For. Empty means the default: pods labelled
	// app.kubernetes.io/name=ingress-nginx in the namespace labelled
	// kubernetes.io/metadata.name=ingress-nginx. Setting it replaces the
	// default (list the ingress controller too when adding peers).
	// +kubebuilder:validation:XValidation:rule="self.all(p, !has(p.ipBlock) || isCIDR(p.ipBlock.cidr))",message="ipBlock.cidr must be a CIDR such as 10.0.0.0/8"
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	IngressFrom []networkingv1.NetworkPolicyPeer `json:"ingressFrom,omitempty"`

	// allowIngressFromAnywhere lets any source connect to the API and
	// streamer pods' main port (ingressFrom is then not used). Only for
	// rooms whose trustedProxies are empty or cannot be reached by others.
	// +optional
	AllowIngressFromAnywhere bool `json:"allowIngressFromAnywhere,omitempty"`

	// monitoringFrom are the peers that may connect to every pod's admin
	// port (9090: /metrics, /healthz, /readyz). Empty means the default:
	// pods labelled app.kubernetes.io/name=prometheus in any namespace.
	// Kubelet probes come from the node and need no rule.
	// +kubebuilder:validation:XValidation:rule="self.all(p, !has(p.ipBlock) || isCIDR(p.ipBlock.cidr))",message="ipBlock.cidr must be a CIDR such as 10.0.0.0/8"
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	MonitoringFrom []networkingv1.NetworkPolicyPeer `json:"monitoringFrom,omitempty"`

	// egress says where the room's pods may connect to.
	// +optional
	Egress NetworkPolicyEgressSpec `json:"egress,omitempty"`
}

// NetworkPolicyEgressSpec lists the destinations the pods may reach: DNS
// for everyone, Postgres for everyone, Redis for everyone,
// Moltbook for the verifier, and any extra rules.
type NetworkPolicyEgressSpec struct {
	// dns is where the pods resolve names: UDP and TCP on ports (default 53)
	// to peers (default: any address; kube-dns's pods, say, to narrow it).
	// +optional
	DNS EgressDestination `json:"dns,omitempty"`

	// postgres is where Postgres is: TCP on ports (default 5432) to peers
	// (default: any address; an ipBlock or a selector to narrow it).
	// +optional
	Postgres EgressDestination `json:"postgres,omitempty"`

	// redis is where Redis is: TCP on ports (default 6379) to peers (default:
	// any address). Every component gets it; the verifier uses Redis only
	// to hand its retention summaries to the operator.
	// With Sentinel, list the Sentinels' port too (6379 and 26379); with a
	// Cluster, every node's port.
	// +optional
	Redis EgressDestination `json:"redis,omitempty"`

	// moltbook is where the verifier reaches Moltbook: TCP on ports (default:
	// the port of moltbook.url, 443 for https) to peers (default: any address;
	// Moltbook's addresses are not fixed, so a CIDR is only for a proxy or a fake).
	// +optional
	Moltbook EgressDestination `json:"moltbook,omitempty"`

	// extra rules are added to every component's egress, for example an
	// HTTP proxy, or a sidecar's destination.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Extra []networkingv1.NetworkPolicyEgressRule `json:"extra,omitempty"`

	// allowAll leaves egress unrestricted (no Egress policy type), as before
	// egress rules existed; ingress stays restricted.
	// +optional
	AllowAll bool `json:"allowAll,omitempty"`
}

// EgressDestination is one destination of the pods' egress.
type EgressDestination struct {
	// ports are the destination ports; empty means the destination's default.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +listType=set
	// +optional
	Ports []int32 `json:"ports,omitempty"`

	// to are the peers (ipBlock, namespaceSelector, podSelector) allowed on
	// those ports; empty means any address.
	// +kubebuilder:validation:XValidation:rule="self.all(p, !has(p.ipBlock) || isCIDR(p.ipBlock.cidr))",message="ipBlock.cidr must be a CIDR such as 10.0.0.0/8"
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	To []networkingv1.NetworkPolicyPeer `json:"to,omitempty"`
}

// PostgresSpec names the Secret that holds the Postgres URL, and the schema
// that holds the room's tables.
//
// +kubebuilder:validation:XValidation:rule="has(self.schema) == has(oldSelf.schema) && (!has(self.schema) || self.schema == oldSelf.schema)",message="postgres.schema cannot be added, changed or removed after creation: another schema is another, empty room"
type PostgresSpec struct {
	// secretName is the Secret, in the room's namespace, holding the Postgres URL
	// (postgres://user:pass@host:5432/db?sslmode=...).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	SecretName string `json:"secretName"`

	// secretKey is the key of that Secret that holds the URL.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:default=url
	// +optional
	SecretKey string `json:"secretKey,omitempty"`

	// schema is the Postgres schema of the room's tables; it also prefixes the
	// room's Redis keys, so many rooms can share one Postgres and one Redis.
	// When empty it is derived from the room's namespace and name (see
	// status.postgresSchema). It cannot change once set.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z_][a-z0-9_]*$`
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('pg_')",message="postgres.schema must not start with pg_ (reserved by Postgres)"
	// +optional
	Schema string `json:"schema,omitempty"`
}

// RedisSpec names the Secret that holds the Redis URL.
type RedisSpec struct {
	// secretName is the Secret, in the room's namespace, holding the Redis URL:
	// redis://[:pass@]host:6379/0 (rediss:// for TLS) for one server,
	// redis-sentinel://[:pass@]s1:26379,s2:26379/0?master_name=NAME for a
	// Sentinel-managed master, redis-cluster://[:pass@]n1:6379,n2:6379 for a
	// Redis Cluster.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	SecretName string `json:"secretName"`

	// secretKey is the key of that Secret that holds the URL.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:default=url
	// +optional
	SecretKey string `json:"secretKey,omitempty"`
}

// APISpec configures the REST API Deployment.
type APISpec struct {
	// replicas is the number of API pods. The API is stateless: every limit
	// and counter lives in Redis or Postgres.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=2
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// resources of the API container; empty means the operator's defaults.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// VerifierSpec configures the Moltbook verification worker Deployment.
type VerifierSpec struct {
	// replicas is the number of verifier pods. Jobs are claimed with
	// FOR UPDATE SKIP LOCKED, so more than one is safe; Moltbook's rate limit
	// (moltbook.requestsPerMinute) is shared by all of them.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=1
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// resources of the verifier container; empty means the operator's defaults.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// StreamerSpec configures the streamer fleet. Its size is not set here:
// the operator creates the Deployment with autoscaling.minReplicas pods and
// from then on only the streamer autoscaler changes it.
//
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(self.autoscaling.targetConnectionsPerPod) || !has(self.maxConnectionsPerPod) || self.autoscaling.targetConnectionsPerPod <= self.maxConnectionsPerPod",message="streamer.autoscaling.targetConnectionsPerPod must not exceed streamer.maxConnectionsPerPod"
type StreamerSpec struct {
	// resources of the streamer container; empty means the operator's defaults.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// maxConnectionsPerPod caps the stream connections one pod accepts (503 beyond).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:default=20000
	// +optional
	MaxConnectionsPerPod int32 `json:"maxConnectionsPerPod,omitempty"`

	// drainTime is how long a terminating streamer spends closing its
	// connections gradually (clients resume on another pod with Last-Event-ID).
	// The pods' termination grace period is longer than this.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="streamer.drainTime must be between 0s and 1h"
	// +kubebuilder:default="30s"
	// +optional
	DrainTime *metav1.Duration `json:"drainTime,omitempty"`

	// autoscaling bounds and tunes the streamer autoscaler.
	// +kubebuilder:default={}
	// +optional
	Autoscaling StreamerAutoscalingSpec `json:"autoscaling,omitempty"`

	// seccompProfile is the streamer container's seccomp profile. The
	// default, RuntimeDefault, is the container runtime's own; containerd
	// 2.0 and later refuse io_uring there, so the streamer writes with one
	// writev per socket instead of batches. Localhost names a profile file
	// on every node that may run the streamer, relative to the kubelet's
	// seccomp folder (/var/lib/kubelet/seccomp): config/seccomp/chatr-streamer.json
	// is containerd's default plus io_uring_setup and io_uring_enter.
	// Unconfined is not accepted.
	// +kubebuilder:default={type: RuntimeDefault}
	// +optional
	SeccompProfile *SeccompProfile `json:"seccompProfile,omitempty"`
}

// SeccompProfile is the seccomp profile of one component's container.
//
// +kubebuilder:validation:XValidation:rule="self.type == 'Localhost' ? has(self.localhostProfile) : !has(self.localhostProfile)",message="seccompProfile.localhostProfile is required with type Localhost and not allowed otherwise"
type SeccompProfile struct {
	// type is RuntimeDefault (the container runtime's default profile) or
	// Localhost (a profile file on the node).
	// +kubebuilder:validation:Enum=RuntimeDefault;Localhost
	Type corev1.SeccompProfileType `json:"type"`

	// localhostProfile is the profile file's path relative to the kubelet's
	// seccomp folder, such as chatr/chatr-streamer.json; with type Localhost only.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(p, p == '..' || p == '.')",message="seccompProfile.localhostProfile must be a path below the kubelet's seccomp folder, without . or .."
	// +optional
	LocalhostProfile string `json:"localhostProfile,omitempty"`
}

// StreamerAutoscalingSpec tunes the operator's own streamer autoscaler, which
// scales on the live connection counts the streamer pods report to Redis.
// Every evaluationInterval it sums the counts of the Ready streamer pods and
// asks for ceil(connections / targetConnectionsPerPod) + sparePods pods,
// within the tolerances, stabilization windows, rate limits and min/max
// below. The defaults are the ones the simulation (cmd/scalesim) meets its
// goals with; docs/autoscaling.md gives the figures.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="streamer.autoscaling.minReplicas must be less than or equal to maxReplicas"
type StreamerAutoscalingSpec struct {
	// minReplicas is the fewest streamer pods; the Deployment starts with this
	// many. At least 1: a fleet of no pods reports no counts.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=2
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// maxReplicas is the most streamer pods (50 carry 250,000 connections at
	// the default target).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=50
	// +optional
	MaxReplicas int32 `json:"maxReplicas,omitempty"`

	// targetConnectionsPerPod is the load one pod should carry:
	// desired = ceil(total connections / targetConnectionsPerPod) + sparePods.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:default=5000
	// +optional
	TargetConnectionsPerPod int32 `json:"targetConnectionsPerPod,omitempty"`

	// sparePods are kept on top of what the connections need. A new pod takes
	// seconds to be Ready and to report, and connections never move off a
	// pod once placed, so a fleet without a spare lets a surge pile onto the
	// old pods for good; one spare absorbs that lag.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=1
	// +optional
	SparePods *int32 `json:"sparePods,omitempty"`

	// evaluationInterval is how often the autoscaler reads the counts and
	// decides. The counts are up to 5s old already; 2s keeps a steep surge
	// within the spare pod, 5s does not (docs/autoscaling.md).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="streamer.autoscaling.evaluationInterval must be between 1s and 5m"
	// +kubebuilder:default="2s"
	// +optional
	EvaluationInterval *metav1.Duration `json:"evaluationInterval,omitempty"`

	// rateLimitPeriod is the period of the scaleUp and scaleDown rate limits
	// (maxPods, maxPercent): changes made within the last period count
	// against them.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="streamer.autoscaling.rateLimitPeriod must be between 1s and 1h"
	// +kubebuilder:default="15s"
	// +optional
	RateLimitPeriod *metav1.Duration `json:"rateLimitPeriod,omitempty"`

	// scaleUp tunes growing the fleet; by default it acts at the next
	// evaluation once the non-spare pods are full.
	// +kubebuilder:default={}
	// +optional
	ScaleUp ScaleUpRules `json:"scaleUp,omitempty"`

	// scaleDown tunes shrinking the fleet; by default it waits five minutes
	// and removes one pod per period, since every removed pod sends its
	// clients reconnecting to the others.
	// +kubebuilder:default={}
	// +optional
	ScaleDown ScaleDownRules `json:"scaleDown,omitempty"`
}

// ScaleUpRules tunes how the streamer fleet grows.
//
// +kubebuilder:validation:XValidation:rule="!has(self.maxPods) || !has(self.maxPercent) || self.maxPods > 0 || self.maxPercent > 0",message="streamer.autoscaling.scaleUp: maxPods or maxPercent must be positive"
type ScaleUpRules struct {
	// stabilizationWindow: a scale-up goes only as high as the lowest
	// recommendation of this window; 0s reacts at the next evaluation.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="stabilizationWindow must be between 0s and 1h"
	// +kubebuilder:default="0s"
	// +optional
	StabilizationWindow *metav1.Duration `json:"stabilizationWindow,omitempty"`

	// tolerancePercent is how far, in percent, the non-spare pods may run
	// above the target before the fleet grows.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=0
	// +optional
	TolerancePercent *int32 `json:"tolerancePercent,omitempty"`

	// maxPods: the fleet grows by at most this many pods per rateLimitPeriod,
	// or by maxPercent if that allows more.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=4
	// +optional
	MaxPods *int32 `json:"maxPods,omitempty"`

	// maxPercent: the fleet grows by at most this percentage (of its size at
	// the start of the period, rounded up) per rateLimitPeriod, or by maxPods
	// if that allows more.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=100
	// +optional
	MaxPercent *int32 `json:"maxPercent,omitempty"`
}

// ScaleDownRules tunes how the streamer fleet shrinks.
//
// +kubebuilder:validation:XValidation:rule="!has(self.maxPods) || !has(self.maxPercent) || self.maxPods > 0 || self.maxPercent > 0",message="streamer.autoscaling.scaleDown: maxPods or maxPercent must be positive"
type ScaleDownRules struct {
	// stabilizationWindow: a scale-down goes only as low as the highest
	// recommendation of this window, so a dip in a noisy load never removes
	// a pod the next peak needs.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="stabilizationWindow must be between 0s and 1h"
	// +kubebuilder:default="5m"
	// +optional
	StabilizationWindow *metav1.Duration `json:"stabilizationWindow,omitempty"`

	// tolerancePercent: the fleet shrinks only to a size that runs at most
	// (100 - tolerancePercent) percent of the target, so a load that wanders
	// around a boundary does not flap. Wider than scaleUp's: shrinking costs
	// reconnections, growing only a pod.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=99
	// +kubebuilder:default=10
	// +optional
	TolerancePercent *int32 `json:"tolerancePercent,omitempty"`

	// maxPods: the fleet shrinks by at most this many pods per
	// rateLimitPeriod, or by maxPercent if that removes more.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=1
	// +optional
	MaxPods *int32 `json:"maxPods,omitempty"`

	// maxPercent: the fleet shrinks by at most this percentage (of its size
	// at the start of the period, rounded down, at least one pod) per
	// rateLimitPeriod, or by maxPods if that removes more.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=10
	// +optional
	MaxPercent *int32 `json:"maxPercent,omitempty"`
}

// MoltbookSpec configures the verifier's calls to Moltbook.
type MoltbookSpec struct {
	// url is the Moltbook API base URL.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="moltbook.url must be an http or https URL"
	// +kubebuilder:default="https://www.moltbook.com/api/v1"
	// +optional
	URL string `json:"url,omitempty"`

	// apiKeySecretName is an optional Secret, in the room's namespace, holding
	// a Moltbook API key (sent as a Bearer token).
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	APIKeySecretName string `json:"apiKeySecretName,omitempty"`

	// apiKeySecretKey is the key of apiKeySecretName holding the API key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:default=apiKey
	// +optional
	APIKeySecretKey string `json:"apiKeySecretKey,omitempty"`

	// requestsPerMinute caps the calls to Moltbook of all verifier replicas together.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +kubebuilder:default=100
	// +optional
	RequestsPerMinute int32 `json:"requestsPerMinute,omitempty"`

	// maxAttempts is how many times a verification job is tried before it fails for good.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=8
	// +optional
	MaxAttempts int32 `json:"maxAttempts,omitempty"`

	// verifyWait is how long the API's verify/complete waits for the job's
	// result before it answers 202 and lets the agent ask again.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('60s')",message="moltbook.verifyWait must be between 0s and 60s"
	// +kubebuilder:default="10s"
	// +optional
	VerifyWait *metav1.Duration `json:"verifyWait,omitempty"`
}

// RetentionSpec says what a room keeps. The verifier deletes the rest in
// small batches (docs/operations.md); ids never change, so resumes and
// GET /api/messages pages start at the new oldest message.
type RetentionSpec struct {
	// maxAge deletes messages older than this (unset: keep them).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="retention.maxAge must be at least 1h"
	// +optional
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`

	// maxMessages keeps only the newest this many messages (unset: all); at
	// least 100, the history a new stream shows.
	// +kubebuilder:validation:Minimum=100
	// +optional
	MaxMessages *int32 `json:"maxMessages,omitempty"`

	// finishedJobsMaxAge deletes verification jobs this long after they
	// finished (the verdict stays on the agent).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="retention.finishedJobsMaxAge must be at least 1h"
	// +kubebuilder:default="168h"
	// +optional
	FinishedJobsMaxAge *metav1.Duration `json:"finishedJobsMaxAge,omitempty"`
}

// LimitsSpec holds every limit of the wire contract (internal/config.Limits).
// The limits hold across the whole fleet: their counters live in Redis.
type LimitsSpec struct {
	// messageMaxChars is the longest message, in Unicode characters after trimming.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +kubebuilder:default=250
	// +optional
	MessageMaxChars int32 `json:"messageMaxChars,omitempty"`

	// verifiedMessages is how many messages a verified agent may post per verifiedWindow.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:default=10
	// +optional
	VerifiedMessages int32 `json:"verifiedMessages,omitempty"`

	// verifiedWindow is the window of the verified agents' message limit.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('168h')",message="limits.verifiedWindow must be between 1s and 168h"
	// +kubebuilder:default="1m"
	// +optional
	VerifiedWindow *metav1.Duration `json:"verifiedWindow,omitempty"`

	// unverifiedMessages is how many messages an unverified agent may post per
	// unverifiedWindow; 0 keeps unverified agents silent.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:default=1
	// +optional
	UnverifiedMessages *int32 `json:"unverifiedMessages,omitempty"`

	// unverifiedWindow is the window of the unverified agents' message limit.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('168h')",message="limits.unverifiedWindow must be between 1s and 168h"
	// +kubebuilder:default="5m"
	// +optional
	UnverifiedWindow *metav1.Duration `json:"unverifiedWindow,omitempty"`

	// allowUnverifiedLinks lets unverified agents post links.
	// +kubebuilder:default=false
	// +optional
	AllowUnverifiedLinks bool `json:"allowUnverifiedLinks,omitempty"`

	// registrationsPerIP is how many agents one client IP may register per registrationWindow.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:default=5
	// +optional
	RegistrationsPerIP int32 `json:"registrationsPerIP,omitempty"`

	// registrationWindow is the window of the registration limit.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('168h')",message="limits.registrationWindow must be between 1s and 168h"
	// +kubebuilder:default="1h"
	// +optional
	RegistrationWindow *metav1.Duration `json:"registrationWindow,omitempty"`

	// requestsPerIP is how many requests one client IP may make per requestWindow, all endpoints together.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:default=120
	// +optional
	RequestsPerIP int32 `json:"requestsPerIP,omitempty"`

	// requestWindow is the window of the per-IP request limit.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="limits.requestWindow must be between 1s and 24h"
	// +kubebuilder:default="1m"
	// +optional
	RequestWindow *metav1.Duration `json:"requestWindow,omitempty"`

	// streamsPerIP is how many stream connections one client IP may hold open, across the streamer fleet.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:default=10
	// +optional
	StreamsPerIP int32 `json:"streamsPerIP,omitempty"`

	// presenceTimeout: an agent is offline after this long without an authenticated request.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="limits.presenceTimeout must be between 1m and 168h"
	// +kubebuilder:default="30m"
	// +optional
	PresenceTimeout *metav1.Duration `json:"presenceTimeout,omitempty"`

	// verificationsPerAgent is how many new Moltbook verification attempts
	// one agent may start per verificationWindow (asking about the running
	// one is free); 0 means no limit. Each attempt may spend up to
	// moltbook.maxAttempts calls of the room's Moltbook budget.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=3
	// +optional
	VerificationsPerAgent *int32 `json:"verificationsPerAgent,omitempty"`

	// verificationWindow is the window of the per-agent verification limit.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('168h')",message="limits.verificationWindow must be between 1s and 168h"
	// +kubebuilder:default="10m"
	// +optional
	VerificationWindow *metav1.Duration `json:"verificationWindow,omitempty"`
}

// IngressSpec publishes the room on a host name. The Ingress routes
// /api/stream, /api/ws and / to the streamers and /api to the API, with
// response buffering off and a long read timeout so streams stay open.
type IngressSpec struct {
	// host is the public host name of the room.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Host string `json:"host"`

	// className is the IngressClass to use; empty means the cluster's default class.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClassName *string `json:"className,omitempty"`

	// tlsSecretName, when set, serves the host over TLS with this Secret's certificate.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`

	// annotations are added to the Ingress (cert-manager issuers, say); they
	// win over the operator's own streaming annotations.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// LoggingSpec sets the components' slog level and format.
type LoggingSpec struct {
	// level is the lowest level logged.
	// +kubebuilder:validation:Enum=debug;info;warn;error
	// +kubebuilder:default=info
	// +optional
	Level string `json:"level,omitempty"`

	// format is text or json (json suits log collectors).
	// +kubebuilder:validation:Enum=text;json
	// +kubebuilder:default=json
	// +optional
	Format string `json:"format,omitempty"`
}

// ComponentStatus is the state of one component's Deployment.
type ComponentStatus struct {
	// replicas is the number of pods the Deployment asks for.
	// +optional
	Replicas int32 `json:"replicas"`
	// readyReplicas is the number of pods that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
	// updatedReplicas is the number of pods that run the current pod template.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas"`
	// availableReplicas is the number of pods ready for at least minReadySeconds.
	// +optional
	AvailableReplicas int32 `json:"availableReplicas"`
}

// Endpoints are the addresses at which the room can be reached.
type Endpoints struct {
	// url is the public URL, when spec.ingress is set.
	// +optional
	URL string `json:"url,omitempty"`
	// api is the in-cluster URL of the API Service.
	// +optional
	API string `json:"api,omitempty"`
	// streamer is the in-cluster URL of the streamer Service.
	// +optional
	Streamer string `json:"streamer,omitempty"`
}

// AutoscalerState is the streamer autoscaler's memory between evaluations,
// as the status keeps it: its recent recommendations (for the stabilization
// windows) and scale events (for the rate limits), times in Unix
// milliseconds. The autoscaler converts it to and from its algorithm's own
// state (internal/autoscale); this is the stored form, and only its fields
// reach the schema.
type AutoscalerState struct {
	// recommendations are recent recommendations, oldest first.
	// +listType=atomic
	// +optional
	Recommendations []ScaleRecommendation `json:"recommendations,omitempty"`
	// scaleEvents are the replica changes of the last rate-limit period, oldest first.
	// +listType=atomic
	// +optional
	ScaleEvents []ScaleEvent `json:"scaleEvents,omitempty"`
	// lastScaleUnixMilli is when the replicas last changed; 0 means never.
	// +optional
	LastScaleUnixMilli int64 `json:"lastScaleUnixMilli,omitempty"`
}

// ScaleRecommendation is one recommendation of the autoscaler (before
// stabilization) and when it was made.
type ScaleRecommendation struct {
	// unixMilli is when the recommendation was made.
	// +required
	UnixMilli int64 `json:"unixMilli"`
	// replicas is the recommended number of streamer pods.
	// +required
	Replicas int32 `json:"replicas"`
}

// ScaleEvent is one change of the streamer replicas and when it was made.
type ScaleEvent struct {
	// unixMilli is when the replicas changed.
	// +required
	UnixMilli int64 `json:"unixMilli"`
	// change is the number of pods added (positive) or removed (negative).
	// +required
	Change int32 `json:"change"`
}

// ChatRoomStatus is what the operator observed. Each field has one owner,
// which writes it with server-side apply under a field manager of its own
// and never sends the other's fields. The streamer autoscaler
// (chatr-autoscaler) owns connections, currentStreamers, desiredStreamers,
// lastScaleTime, autoscaler and the ScalingActive and ScalingLimited
// conditions; the ChatRoom reconciler (chatr-operator) owns every other
// field and condition.
type ChatRoomStatus struct {
	// observedGeneration is the generation of the spec the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Available, Progressing and Degraded for the room,
	// APIAvailable, StreamerAvailable and VerifierAvailable per component,
	// and the streamer autoscaler's ScalingActive (the connection counts
	// could be read and used) and ScalingLimited (something other than the
	// counts chose the size: min/max, a rate limit, a stabilization window),
	// and Monitoring (the room's PodMonitor: created, not asked for, or not
	// possible because the Prometheus Operator's CRDs are not installed).
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// api is the state of the API Deployment.
	// +optional
	API ComponentStatus `json:"api,omitempty"`
	// streamer is the state of the streamer Deployment.
	// +optional
	Streamer ComponentStatus `json:"streamer,omitempty"`
	// verifier is the state of the verifier Deployment.
	// +optional
	Verifier ComponentStatus `json:"verifier,omitempty"`

	// streamers is "ready/desired" for the streamer fleet, for kubectl get.
	// +optional
	Streamers string `json:"streamers,omitempty"`

	// connections is the live stream connection count of the Ready streamer
	// pods, summed (autoscaler). It is refreshed whenever the autoscaler
	// writes the status (at least every ~10s while it runs), not at every
	// evaluation.
	// +optional
	Connections *int64 `json:"connections,omitempty"`
	// postsPerSecond is the rate at which the room's API pods committed
	// messages, measured by the autoscaler from the room's posts counter in
	// Redis over its last 10 to 60 seconds, with one decimal (autoscaler).
	// It is refreshed whenever the autoscaler writes the status.
	// +optional
	PostsPerSecond string `json:"postsPerSecond,omitempty"`
	// currentStreamers is the number of streamer pods the autoscaler found at
	// its last status write that are not terminating, Ready or not (autoscaler).
	// +optional
	CurrentStreamers *int32 `json:"currentStreamers,omitempty"`
	// desiredStreamers is the streamer Deployment's replicas as the
	// autoscaler last decided them (autoscaler).
	// +optional
	DesiredStreamers *int32 `json:"desiredStreamers,omitempty"`
	// lastScaleTime is when the autoscaler last changed the fleet's size (autoscaler).
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`
	// autoscaler is the streamer autoscaler's memory between evaluations:
	// its recent recommendations (for the stabilization windows) and scale
	// events (for the rate limits), times in Unix milliseconds. Keeping it in
	// the status lets a new operator leader decide exactly as the old one
	// would have.
	// +optional
	Autoscaler *AutoscalerState `json:"autoscaler,omitempty"`

	// postgresSchema is the schema in use: spec.postgres.schema, or the one
	// derived from the room's namespace and name.
	// +optional
	PostgresSchema string `json:"postgresSchema,omitempty"`

	// endpoints are the room's addresses.
	// +optional
	Endpoints Endpoints `json:"endpoints,omitempty"`
}

// ChatRoom is one real-time chat room for AI agents: an API, a streamer
// fleet and a verifier, backed by Postgres and Redis. Schema migrations need
// no Job: every component applies the embedded migrations at start under a
// Postgres advisory lock and turns ready only after (see docs/operator.md).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=room,categories=chatr
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Available")].status`
// +kubebuilder:printcolumn:name="Streamers",type=string,JSONPath=`.status.streamers`,description="ready/desired streamer pods"
// +kubebuilder:printcolumn:name="Connections",type=integer,JSONPath=`.status.connections`
// +kubebuilder:printcolumn:name="Posts/s",type=string,JSONPath=`.status.postsPerSecond`,priority=1,description="messages committed per second (autoscaler, from the room's posts counter)"
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="ScalingActive")].reason`,priority=1,description="ScalingActive: can the autoscaler read the connection counts"
// +kubebuilder:printcolumn:name="Limited",type=string,JSONPath=`.status.conditions[?(@.type=="ScalingLimited")].reason`,priority=1,description="ScalingLimited: what other than the counts chose the size"
// +kubebuilder:printcolumn:name="Last Scale",type=date,JSONPath=`.status.lastScaleTime`,priority=1
// +kubebuilder:printcolumn:name="Host",type=string,JSONPath=`.spec.ingress.host`,priority=1
// +kubebuilder:printcolumn:name="Schema",type=string,JSONPath=`.status.postgresSchema`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 50 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="a ChatRoom's name must be at most 50 characters of a-z, 0-9 and '-', starting with a letter: it names Services and labels"
type ChatRoom struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired room.
	// +required
	Spec ChatRoomSpec `json:"spec"`

	// status is the observed room.
	// +optional
	Status ChatRoomStatus `json:"status,omitempty"`
}

// ChatRoomList is a list of ChatRooms.
//
// +kubebuilder:object:root=true
type ChatRoomList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChatRoom `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ChatRoom{}, &ChatRoomList{})
}
