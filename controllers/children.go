package controllers

import (
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// annotationManagedAnnotations lists the annotation keys the operator set on
// a child, so that a key dropped from the spec (spec.ingress.annotations) is
// removed from the child while annotations others added are kept.
const annotationManagedAnnotations = "chatr.ai/managed-annotations"

// slot is one child of a room: what it should be (desired, nil when it
// should not exist), what it is (live, nil when absent) and how to compare
// and merge the two for its kind.
type slot struct {
	kind, name string
	component  chatrv1.Component
	desired    client.Object
	live       client.Object
	notOwned   bool
	// readOnly slots are read (for the status) but never written: the
	// Deployments while a Secret they need is missing.
	readOnly bool
	// hashInput is what the spec hash covers: everything the operator sets,
	// except the streamer's replicas, which are the autoscaler's.
	hashInput any
	newObj    func() client.Object
	// same reports whether live holds every value desired sets. Fields the
	// operator leaves empty (server defaults, fields others set) never count
	// as drift.
	same func(desired, live client.Object) bool
	// merge copies the fields the operator manages from desired into live.
	merge func(live, desired client.Object)
}

// planChildren builds every child the room should have, in creation order:
// what pods need (ServiceAccount, ConfigMap) before the pods. Without
// Secret hashes (a Secret is missing) the Deployments are only read, so the
// existing ones keep running as they are and the status still describes them.
func planChildren(room *chatrv1.ChatRoom, secretHashes map[chatrv1.Component]string, withDeployments bool) []*slot {
	cm := buildConfigMap(room)
	slots := []*slot{
		serviceAccountSlot(buildServiceAccount(room)),
		configMapSlot(cm),
	}
	for _, c := range chatrv1.Components {
		d := buildDeployment(room, c, podHashes{Config: hashKeys(cm.Data, configKeys(c)), Secrets: secretHashes[c]})
		s := deploymentSlot(d, c)
		if !withDeployments {
			s.desired, s.hashInput, s.readOnly = nil, nil, true
		}
		slots = append(slots, s)
	}
	for _, c := range servedComponents {
		slots = append(slots, serviceSlot(buildService(room, c)))
	}
	for _, c := range chatrv1.Components {
		slots = append(slots, pdbSlot(buildPodDisruptionBudget(room, c)), networkPolicySlot(buildNetworkPolicy(room, c)))
	}
	in := buildIngress(room)
	s := ingressSlot(in)
	if in == nil {
		s.name = room.IngressName()
	}
	return append(slots, s)
}

func serviceAccountSlot(d *corev1.ServiceAccount) *slot {
	return &slot{
		kind: "ServiceAccount", name: d.Name, desired: d,
		hashInput: []any{d.Labels, d.AutomountServiceAccountToken},
		newObj:    func() client.Object { return &corev1.ServiceAccount{} },
		same: func(desired, live client.Object) bool {
			return equality.Semantic.DeepEqual(desired.(*corev1.ServiceAccount).AutomountServiceAccountToken,
				live.(*corev1.ServiceAccount).AutomountServiceAccountToken)
		},
		merge: func(live, desired client.Object) {
			live.(*corev1.ServiceAccount).AutomountServiceAccountToken = desired.(*corev1.ServiceAccount).AutomountServiceAccountToken
		},
	}
}

func configMapSlot(d *corev1.ConfigMap) *slot {
	return &slot{
		kind: "ConfigMap", name: d.Name, desired: d,
		hashInput: []any{d.Labels, d.Data},
		newObj:    func() client.Object { return &corev1.ConfigMap{} },
		// Every key is the operator's, and "" is a meaningful value (no
		// trusted proxies), so the data must match exactly.
		same: func(desired, live client.Object) bool {
			return maps.Equal(desired.(*corev1.ConfigMap).Data, live.(*corev1.ConfigMap).Data)
		},
		merge: func(live, desired client.Object) {
			live.(*corev1.ConfigMap).Data = desired.(*corev1.ConfigMap).Data
		},
	}
}

// deploymentSlot keeps the Deployment in line, except the streamer's
// replicas after creation: the streamer autoscaler is their only writer.
func deploymentSlot(d *appsv1.Deployment, c chatrv1.Component) *slot {
	keepReplicas := c == chatrv1.ComponentStreamer
	hashed := d.Spec.DeepCopy()
	if keepReplicas {
		hashed.Replicas = nil
	}
	return &slot{
		kind: "Deployment", name: d.Name, component: c, desired: d,
		hashInput: []any{d.Labels, hashed},
		newObj:    func() client.Object { return &appsv1.Deployment{} },
		same: func(desired, live client.Object) bool {
			want := desired.(*appsv1.Deployment).Spec.DeepCopy()
			have := live.(*appsv1.Deployment).Spec
			if keepReplicas {
				want.Replicas = have.Replicas
			}
			return equality.Semantic.DeepDerivative(*want, have)
		},
		merge: func(live, desired client.Object) {
			l, w := live.(*appsv1.Deployment), desired.(*appsv1.Deployment)
			if !keepReplicas {
				l.Spec.Replicas = w.Spec.Replicas
			}
			// The selector is immutable and never changes; the rest is ours.
			l.Spec.Template = w.Spec.Template
			l.Spec.Strategy = w.Spec.Strategy
			l.Spec.RevisionHistoryLimit = w.Spec.RevisionHistoryLimit
			l.Spec.ProgressDeadlineSeconds = w.Spec.ProgressDeadlineSeconds
			l.Spec.MinReadySeconds = w.Spec.MinReadySeconds
		},
	}
}

func serviceSlot(d *corev1.Service) *slot {
	return &slot{
		kind: "Service", name: d.Name, desired: d,
		hashInput: []any{d.Labels, d.Spec},
		newObj:    func() client.Object { return &corev1.Service{} },
		same: func(desired, live client.Object) bool {
			return equality.Semantic.DeepDerivative(desired.(*corev1.Service).Spec, live.(*corev1.Service).Spec)
		},
		// The cluster IPs and other allocated fields stay as they are.
		merge: func(live, desired client.Object) {
			l, w := live.(*corev1.Service), desired.(*corev1.Service)
			l.Spec.Type = w.Spec.Type
			l.Spec.Selector = w.Spec.Selector
			l.Spec.Ports = w.Spec.Ports
		},
	}
}

func pdbSlot(d *policyv1.PodDisruptionBudget) *slot {
	return &slot{
		kind: "PodDisruptionBudget", name: d.Name, desired: d,
		hashInput: []any{d.Labels, d.Spec},
		newObj:    func() client.Object { return &policyv1.PodDisruptionBudget{} },
		same: func(desired, live client.Object) bool {
			return equality.Semantic.DeepDerivative(desired.(*policyv1.PodDisruptionBudget).Spec, live.(*policyv1.PodDisruptionBudget).Spec)
		},
		merge: func(live, desired client.Object) {
			live.(*policyv1.PodDisruptionBudget).Spec = desired.(*policyv1.PodDisruptionBudget).Spec
		},
	}
}

func networkPolicySlot(d *networkingv1.NetworkPolicy) *slot {
	return &slot{
		kind: "NetworkPolicy", name: d.Name, desired: d,
		hashInput: []any{d.Labels, d.Spec},
		newObj:    func() client.Object { return &networkingv1.NetworkPolicy{} },
		same: func(desired, live client.Object) bool {
			return equality.Semantic.DeepDerivative(desired.(*networkingv1.NetworkPolicy).Spec, live.(*networkingv1.NetworkPolicy).Spec)
		},
		merge: func(live, desired client.Object) {
			live.(*networkingv1.NetworkPolicy).Spec = desired.(*networkingv1.NetworkPolicy).Spec
		},
	}
}

// ingressSlot keeps the Ingress in line; a nil desired Ingress (no
// spec.ingress) means an existing one of ours is deleted.
func ingressSlot(d *networkingv1.Ingress) *slot {
	s := &slot{
		kind:   "Ingress",
		newObj: func() client.Object { return &networkingv1.Ingress{} },
		same: func(desired, live client.Object) bool {
			return equality.Semantic.DeepDerivative(desired.(*networkingv1.Ingress).Spec, live.(*networkingv1.Ingress).Spec)
		},
		merge: func(live, desired client.Object) {
			live.(*networkingv1.Ingress).Spec = desired.(*networkingv1.Ingress).Spec
		},
	}
	if d != nil {
		s.name, s.desired = d.Name, d
		s.hashInput = []any{d.Labels, maps.Clone(d.Annotations), d.Spec}
	}
	return s
}

// metav1IsControlledBy reports whether room is obj's controller, by UID, so a
// leftover of a deleted room with the same name is not taken for ours.
func metav1IsControlledBy(obj client.Object, room *chatrv1.ChatRoom) bool {
	return metav1.IsControlledBy(obj, room)
}

// setAnnotation sets one annotation, creating the map when needed.
func setAnnotation(obj client.Object, k, v string) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[k] = v
	obj.SetAnnotations(a)
}

// managedAnnotationKeys lists the annotation keys the operator sets on obj,
// other than its own bookkeeping.
func managedAnnotationKeys(obj client.Object) string {
	var keys []string
	for k := range obj.GetAnnotations() {
		if k != annotationSpecHash && k != annotationManagedAnnotations {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

// metadataInLine reports whether live carries every label and annotation
// desired sets, and the controller reference.
func metadataInLine(desired, live client.Object) bool {
	for k, v := range desired.GetLabels() {
		if live.GetLabels()[k] != v {
			return false
		}
	}
	for k, v := range desired.GetAnnotations() {
		if live.GetAnnotations()[k] != v {
			return false
		}
	}
	return true
}

// mergeMetadata sets desired's labels and annotations on live, drops the
// annotations the operator set before but no longer sets, and keeps the
// ones others added.
func mergeMetadata(live, desired client.Object) {
	labels := maps.Clone(live.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, desired.GetLabels())
	live.SetLabels(labels)

	annotations := maps.Clone(live.GetAnnotations())
	if annotations == nil {
		annotations = map[string]string{}
	}
	if prev := annotations[annotationManagedAnnotations]; prev != "" {
		for _, k := range strings.Split(prev, ",") {
			delete(annotations, k)
		}
	}
	maps.Copy(annotations, desired.GetAnnotations())
	live.SetAnnotations(annotations)
}
