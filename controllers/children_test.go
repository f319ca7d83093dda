package controllers

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// Each child's compare (same) and merge, without a cluster: a live object is
// the desired one as the API server and others may have changed it.

// slotCase is one live object: the desired one changed by edit.
type slotCase struct {
	name string
	edit func(live client.Object)
	// same is whether the live object holds every value the operator sets.
	same bool
	// kept checks what the merge must keep of the live object (nil: nothing to check).
	kept func(t *testing.T, merged client.Object)
}

// testSlot checks each case: same reports drift as the case says; the merge
// of desired into the live object leaves nothing to report, keeps what
// others set, and changes neither desired nor what it was given.
func testSlot(t *testing.T, s *slot, cases []slotCase) {
	t.Helper()
	if s.desired == nil || s.newObj == nil || reflect.TypeOf(s.newObj()) != reflect.TypeOf(s.desired) {
		t.Fatalf("%s slot: desired %T, newObj %T", s.kind, s.desired, s.newObj())
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			desired := s.desired.DeepCopyObject().(client.Object)
			live := s.desired.DeepCopyObject().(client.Object)
			tc.edit(live)
			if got := s.same(desired, live); got != tc.same {
				t.Errorf("same = %v, want %v", got, tc.same)
			}
			liveBefore := live.DeepCopyObject()
			merged := live.DeepCopyObject().(client.Object)
			s.merge(merged, desired)
			if !s.same(desired, merged) {
				t.Errorf("after the merge the %s still differs from what the operator sets", s.kind)
			}
			if tc.kept != nil {
				tc.kept(t, merged)
			}
			if !reflect.DeepEqual(desired, s.desired) {
				t.Error("the merge changed the desired object")
			}
			if !reflect.DeepEqual(live, liveBefore) {
				t.Error("same or merge changed the live object it was given")
			}
		})
	}
}

func noEdit(client.Object) {}

func TestServiceAccountSlot(t *testing.T) {
	sa := func(o client.Object) *corev1.ServiceAccount { return o.(*corev1.ServiceAccount) }
	testSlot(t, serviceAccountSlot(buildServiceAccount(defaultedRoom(nil))), []slotCase{
		{"as built", noEdit, true, nil},
		{"token secrets others listed are kept", func(o client.Object) {
			sa(o).Secrets = []corev1.ObjectReference{{Name: "legacy-token"}}
		}, true, func(t *testing.T, m client.Object) {
			if len(sa(m).Secrets) != 1 {
				t.Errorf("secrets %v", sa(m).Secrets)
			}
		}},
		{"token mounting turned on", func(o client.Object) { sa(o).AutomountServiceAccountToken = ptr(true) }, false, nil},
		{"token mounting unset", func(o client.Object) { sa(o).AutomountServiceAccountToken = nil }, false, nil},
	})
}

func TestConfigMapSlot(t *testing.T) {
	cm := func(o client.Object) *corev1.ConfigMap { return o.(*corev1.ConfigMap) }
	desired := buildConfigMap(defaultedRoom(nil))
	var empty string
	for k, v := range desired.Data {
		if v == "" {
			empty = k
			break
		}
	}
	if empty == "" {
		t.Fatal("the default ConfigMap has no empty value to test with")
	}
	testSlot(t, configMapSlot(desired), []slotCase{
		{"as built", noEdit, true, nil},
		{"a value changed", func(o client.Object) {
			for k := range cm(o).Data {
				cm(o).Data[k] = "changed"
				break
			}
		}, false, nil},
		{"a key added: every key is the operator's", func(o client.Object) { cm(o).Data["EXTRA"] = "1" }, false, func(t *testing.T, m client.Object) {
			if _, ok := cm(m).Data["EXTRA"]; ok {
				t.Error("a key the operator does not set was kept")
			}
		}},
		{"an empty value is a value", func(o client.Object) { delete(cm(o).Data, empty) }, false, nil},
		{"binary data others added is kept", func(o client.Object) { cm(o).BinaryData = map[string][]byte{"b": {1}} }, true,
			func(t *testing.T, m client.Object) {
				if len(cm(m).BinaryData) != 1 {
					t.Error("binaryData dropped")
				}
			}},
	})
}

// withServerDefaults sets what the API server fills in on a Deployment.
func withServerDefaults(d *appsv1.Deployment) {
	d.Spec.Template.Spec.DNSPolicy = corev1.DNSClusterFirst
	d.Spec.Template.Spec.SchedulerName = corev1.DefaultSchedulerName
	d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
	for i := range d.Spec.Template.Spec.Containers {
		c := &d.Spec.Template.Spec.Containers[i]
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
		c.ImagePullPolicy = corev1.PullIfNotPresent
	}
}

func TestDeploymentSlot(t *testing.T) {
	d := func(o client.Object) *appsv1.Deployment { return o.(*appsv1.Deployment) }
	room := defaultedRoom(nil)
	hashes := podHashes{Config: "c1", Secrets: "s1"}
	for _, c := range []chatrv1.Component{chatrv1.ComponentAPI, chatrv1.ComponentStreamer} {
		streamer := c == chatrv1.ComponentStreamer
		t.Run(string(c), func(t *testing.T) {
			testSlot(t, deploymentSlot(buildDeployment(room, c, hashes), c), []slotCase{
				{"as built", noEdit, true, nil},
				{"with the API server's defaults and status", func(o client.Object) {
					withServerDefaults(d(o))
					d(o).Status = appsv1.DeploymentStatus{Replicas: 2, ReadyReplicas: 2}
				}, true, func(t *testing.T, m client.Object) {
					if d(m).Status.Replicas != 2 {
						t.Error("the status was dropped")
					}
				}},
				{"a pod template label others added", func(o client.Object) {
					d(o).Spec.Template.Labels["example.com/team"] = "a"
				}, true, nil},
				{"another image", func(o client.Object) {
					d(o).Spec.Template.Spec.Containers[0].Image = "ghcr.io/someone/else:1"
				}, false, nil},
				{"a changed config hash rolls the pods", func(o client.Object) {
					d(o).Spec.Template.Annotations[annotationConfigHash] = "old"
				}, false, nil},
				// A container others add (a mesh's injected sidecar) is not
				// drift; the operator's container gone is.
				{"a container others added", func(o client.Object) {
					d(o).Spec.Template.Spec.Containers = append(d(o).Spec.Template.Spec.Containers, corev1.Container{Name: "sidecar", Image: "x"})
				}, true, nil},
				{"the operator's container gone", func(o client.Object) {
					d(o).Spec.Template.Spec.Containers = nil
				}, false, nil},
				{"a changed strategy", func(o client.Object) {
					d(o).Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
				}, false, nil},
				// The streamer's replicas are the autoscaler's: never drift,
				// never merged. The others' are the operator's.
				{"other replicas", func(o client.Object) { d(o).Spec.Replicas = ptr(int32(7)) }, streamer,
					func(t *testing.T, m client.Object) {
						want := int32(7)
						if !streamer {
							want = *buildDeployment(room, c, hashes).Spec.Replicas
						}
						if got := *d(m).Spec.Replicas; got != want {
							t.Errorf("replicas %d after the merge, want %d", got, want)
						}
					}},
			})
		})
	}
}

// TestDeploymentSlotSpecHash: the spec hash of the streamer Deployment
// leaves its replicas out (the autoscaler's), the others' cover them.
func TestDeploymentSlotSpecHash(t *testing.T) {
	for _, c := range chatrv1.Components {
		a := defaultedRoom(nil)
		b := defaultedRoom(func(r *chatrv1.ChatRoom) {
			r.Spec.API.Replicas = ptr(int32(5))
			r.Spec.Verifier.Replicas = ptr(int32(5))
			r.Spec.Streamer.Autoscaling.MinReplicas = 5
			r.Spec.Streamer.Autoscaling.MaxReplicas = 10
		})
		ha := hashOf(deploymentSlot(buildDeployment(a, c, podHashes{}), c).hashInput)
		hb := hashOf(deploymentSlot(buildDeployment(b, c, podHashes{}), c).hashInput)
		if changed := ha != hb; changed != (c != chatrv1.ComponentStreamer) {
			t.Errorf("%s: the spec hash changed with the replicas: %v", c, changed)
		}
	}
}

func TestServiceSlot(t *testing.T) {
	svc := func(o client.Object) *corev1.Service { return o.(*corev1.Service) }
	testSlot(t, serviceSlot(buildService(defaultedRoom(nil), chatrv1.ComponentAPI)), []slotCase{
		{"as built", noEdit, true, nil},
		{"with the addresses the API server allocated", func(o client.Object) {
			s := svc(o)
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.0.0.5", []string{"10.0.0.5"}
			s.Spec.SessionAffinity = corev1.ServiceAffinityNone
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}, true, func(t *testing.T, m client.Object) {
			if svc(m).Spec.ClusterIP != "10.0.0.5" || len(svc(m).Spec.ClusterIPs) != 1 {
				t.Error("the allocated cluster IP was dropped")
			}
		}},
		{"another port", func(o client.Object) { svc(o).Spec.Ports[0].Port = 9999 }, false, nil},
		{"another selector", func(o client.Object) { svc(o).Spec.Selector = map[string]string{"app": "other"} }, false, nil},
		{"another type", func(o client.Object) { svc(o).Spec.Type = corev1.ServiceTypeNodePort }, false, nil},
	})
}

func TestPodDisruptionBudgetSlot(t *testing.T) {
	pdb := func(o client.Object) *policyv1.PodDisruptionBudget { return o.(*policyv1.PodDisruptionBudget) }
	testSlot(t, pdbSlot(buildPodDisruptionBudget(defaultedRoom(nil), chatrv1.ComponentStreamer)), []slotCase{
		{"as built", noEdit, true, nil},
		{"with a status", func(o client.Object) { pdb(o).Status.CurrentHealthy = 2 }, true, nil},
		{"minAvailable instead", func(o client.Object) {
			two := intstr.FromInt32(2)
			pdb(o).Spec.MaxUnavailable, pdb(o).Spec.MinAvailable = nil, &two
		}, false, func(t *testing.T, m client.Object) {
			if pdb(m).Spec.MinAvailable != nil {
				t.Error("minAvailable kept: the whole spec is the operator's")
			}
		}},
		{"another eviction policy", func(o client.Object) {
			p := policyv1.IfHealthyBudget
			pdb(o).Spec.UnhealthyPodEvictionPolicy = &p
		}, false, nil},
	})
}

func TestNetworkPolicySlot(t *testing.T) {
	np := func(o client.Object) *networkingv1.NetworkPolicy { return o.(*networkingv1.NetworkPolicy) }
	testSlot(t, networkPolicySlot(buildNetworkPolicy(defaultedRoom(nil), chatrv1.ComponentAPI)), []slotCase{
		{"as built", noEdit, true, nil},
		{"a rule dropped", func(o client.Object) { np(o).Spec.Egress = np(o).Spec.Egress[1:] }, false, nil},
		{"allow everything", func(o client.Object) { np(o).Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}} }, false, nil},
		{"another pod selector", func(o client.Object) { np(o).Spec.PodSelector.MatchLabels = map[string]string{"app": "x"} }, false, nil},
	})
}

func TestIngressSlot(t *testing.T) {
	in := func(o client.Object) *networkingv1.Ingress { return o.(*networkingv1.Ingress) }
	room := defaultedRoom(func(r *chatrv1.ChatRoom) {
		r.Spec.Ingress = &chatrv1.IngressSpec{Host: "chat.example.com", TLSSecretName: "tls"}
	})
	testSlot(t, ingressSlot(buildIngress(room)), []slotCase{
		{"as built", noEdit, true, nil},
		{"with the load balancer's status", func(o client.Object) {
			in(o).Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "192.0.2.1"}}
		}, true, nil},
		{"TLS dropped", func(o client.Object) { in(o).Spec.TLS = nil }, false, nil},
		{"another host", func(o client.Object) { in(o).Spec.Rules[0].Host = "evil.example.com" }, false, nil},
		{"a path removed", func(o client.Object) {
			paths := &in(o).Spec.Rules[0].HTTP.Paths
			*paths = (*paths)[1:]
		}, false, nil},
		{"a path to another Service", func(o client.Object) {
			in(o).Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "other"
		}, false, nil},
	})

	// No spec.ingress: the slot wants none, so an existing one is deleted.
	s := ingressSlot(buildIngress(defaultedRoom(nil)))
	if s.desired != nil || s.hashInput != nil || s.kind != "Ingress" {
		t.Errorf("without spec.ingress: desired %v, hashInput %v", s.desired, s.hashInput)
	}
}

// TestPlanChildrenWaitsForSecrets: without the Secrets' hashes the
// Deployments are only read (the running ones stay as they are); the
// rest is planned as usual.
func TestPlanChildrenWaitsForSecrets(t *testing.T) {
	room := defaultedRoom(nil)
	for _, withDeployments := range []bool{true, false} {
		kinds := map[string]int{}
		for _, s := range planChildren(room, map[chatrv1.Component]string{}, withDeployments) {
			kinds[s.kind]++
			if s.kind == "Deployment" && (s.readOnly == withDeployments || (s.desired == nil) == withDeployments) {
				t.Errorf("with deployments %v: %s %s readOnly %v, desired %v", withDeployments, s.kind, s.name, s.readOnly, s.desired != nil)
			}
			if s.kind != "Deployment" && s.kind != "Ingress" && (s.desired == nil || s.readOnly) {
				t.Errorf("with deployments %v: %s %s not planned", withDeployments, s.kind, s.name)
			}
		}
		want := map[string]int{"ServiceAccount": 1, "ConfigMap": 1, "Deployment": 3, "Service": 2, "PodDisruptionBudget": 3, "NetworkPolicy": 3, "Ingress": 1}
		if !reflect.DeepEqual(kinds, want) {
			t.Errorf("with deployments %v: slots %v, want %v", withDeployments, kinds, want)
		}
	}
}

func TestMetadataInLineAndMerge(t *testing.T) {
	desired := func() client.Object {
		cm := &corev1.ConfigMap{}
		cm.Labels = map[string]string{"app.kubernetes.io/name": "chatr", "team": "a"}
		cm.Annotations = map[string]string{"nginx/timeout": "3600", annotationSpecHash: "h2"}
		setAnnotation(cm, annotationManagedAnnotations, managedAnnotationKeys(cm))
		return cm
	}
	for _, tc := range []struct {
		name           string
		labels, annots map[string]string
		inLine         bool
		wantL, wantA   map[string]string
	}{
		{"ours and others'", map[string]string{"app.kubernetes.io/name": "chatr", "team": "a", "theirs": "x"},
			map[string]string{"nginx/timeout": "3600", annotationSpecHash: "h2", annotationManagedAnnotations: "nginx/timeout", "theirs": "y"}, true,
			map[string]string{"app.kubernetes.io/name": "chatr", "team": "a", "theirs": "x"},
			map[string]string{"nginx/timeout": "3600", annotationSpecHash: "h2", annotationManagedAnnotations: "nginx/timeout", "theirs": "y"}},
		{"a label changed", map[string]string{"app.kubernetes.io/name": "chatr", "team": "b"}, nil, false,
			map[string]string{"app.kubernetes.io/name": "chatr", "team": "a"},
			map[string]string{"nginx/timeout": "3600", annotationSpecHash: "h2", annotationManagedAnnotations: "nginx/timeout"}},
		{"nothing at all", nil, nil, false,
			map[string]string{"app.kubernetes.io/name": "chatr", "team": "a"},
			map[string]string{"nginx/timeout": "3600", annotationSpecHash: "h2", annotationManagedAnnotations: "nginx/timeout"}},
		// An annotation the operator set before and no longer sets is
		// removed; one someone else set is kept.
		{"an annotation dropped from the spec", map[string]string{"app.kubernetes.io/name": "chatr", "team": "a"},
			map[string]string{"old/key": "1", "nginx/timeout": "60", annotationSpecHash: "h1", annotationManagedAnnotations: "nginx/timeout,old/key", "theirs": "y"}, false,
			map[string]string{"app.kubernetes.io/name": "chatr", "team": "a"},
			map[string]string{"nginx/timeout": "3600", annotationSpecHash: "h2", annotationManagedAnnotations: "nginx/timeout", "theirs": "y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := &corev1.ConfigMap{}
			live.Labels, live.Annotations = tc.labels, tc.annots
			if got := metadataInLine(desired(), live); got != tc.inLine {
				t.Errorf("metadataInLine = %v, want %v", got, tc.inLine)
			}
			mergeMetadata(live, desired())
			if !reflect.DeepEqual(live.Labels, tc.wantL) || !reflect.DeepEqual(live.Annotations, tc.wantA) {
				t.Errorf("merged:\n labels      %v\n annotations %v\nwant\n labels      %v\n annotations %v", live.Labels, live.Annotations, tc.wantL, tc.wantA)
			}
			if !metadataInLine(desired(), live) {
				t.Error("not in line after the merge")
			}
		})
	}
}
