package v1alpha1

// MonitoringSpec asks the operator for the objects a Prometheus Operator
// needs to scrape the room: one PodMonitor (monitoring.coreos.com/v1) that
// scrapes /metrics on the admin port (9090) of every pod of the room, API,
// streamers and verifier. It needs the Prometheus Operator's CRDs in the
// cluster; without them the room works as before and its Monitoring
// condition says why nothing was created.
type MonitoringSpec struct {
	// enabled creates the room's PodMonitor (and deletes it when turned off).
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// labels are put on the PodMonitor, for the Prometheus whose
	// podMonitorSelector picks them (kube-prometheus-stack selects
	// release: <its release name> by default).
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// interval is how often Prometheus scrapes each pod, as Prometheus
	// writes durations (30s, 1m, 1m30s).
	// +kubebuilder:validation:Pattern=`^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:default="30s"
	// +optional
	Interval string `json:"interval,omitempty"`
}

// PodMonitorName is the name of the room's PodMonitor.
func (r *ChatRoom) PodMonitorName() string { return r.Name }

// DefaultScrapeInterval is spec.monitoring.interval's default.
const DefaultScrapeInterval = "30s"
