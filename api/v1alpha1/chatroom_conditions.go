package v1alpha1

// Condition types of a ChatRoom. Available, Progressing and Degraded follow the
// Deployment's vocabulary so that tools which understand one understand the
// other; the per-component conditions say which part is the cause.
const (
	// ConditionAvailable is True when the room serves: the API and the
	// streamers each have at least one available pod.
	ConditionAvailable = "Available"
	// ConditionProgressing is True while a Deployment of the room rolls out
	// (new pod template, or replicas not yet all up to date and available).
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when something needs a human: a missing
	// Secret, an object the operator may not adopt, a rollout past its
	// deadline, or a component with fewer available pods than asked for.
	ConditionDegraded = "Degraded"

	// ConditionAPIAvailable is the API Deployment's availability.
	ConditionAPIAvailable = "APIAvailable"
	// ConditionStreamerAvailable is the streamer Deployment's availability.
	ConditionStreamerAvailable = "StreamerAvailable"
	// ConditionVerifierAvailable is the verifier Deployment's availability.
	ConditionVerifierAvailable = "VerifierAvailable"

	// ConditionScalingActive and ConditionScalingLimited are reserved for the
	// streamer autoscaler; the ChatRoom reconciler never writes them.
	ConditionScalingActive  = "ScalingActive"
	ConditionScalingLimited = "ScalingLimited"

	// ConditionMonitoring is True when the room's PodMonitor is in place;
	// False says why not: spec.monitoring is off, or the Prometheus
	// Operator's CRDs are not installed.
	ConditionMonitoring = "Monitoring"
)

// Reasons of the conditions above (CamelCase, as metav1.Condition requires).
const (
	ReasonAvailable                = "Available"
	ReasonComponentUnavailable     = "ComponentUnavailable"
	ReasonMinimumReplicasAvailable = "MinimumReplicasAvailable"
	ReasonNoReplicasAvailable      = "NoReplicasAvailable"
	ReasonDeploymentMissing        = "DeploymentMissing"
	ReasonRollingOut               = "RollingOut"
	ReasonRolledOut                = "RolledOut"
	ReasonAsExpected               = "AsExpected"
	ReasonReplicasUnavailable      = "ReplicasUnavailable"
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	ReasonReplicaFailure           = "ReplicaFailure"
	ReasonSecretNotFound           = "SecretNotFound"
	ReasonSecretKeyNotFound        = "SecretKeyNotFound"
	ReasonNotOwned                 = "ResourceNotOwned"
	ReasonReconcileError           = "ReconcileError"

	ReasonMonitoringDisabled     = "MonitoringDisabled"
	ReasonPodMonitorReady        = "PodMonitorReady"
	ReasonMonitoringCRDsNotFound = "MonitoringCRDsNotFound"
)

// ComponentConditionType returns the per-component availability condition of c.
func ComponentConditionType(c Component) string {
	switch c {
	case ComponentAPI:
		return ConditionAPIAvailable
	case ComponentStreamer:
		return ConditionStreamerAvailable
	default:
		return ConditionVerifierAvailable
	}
}
