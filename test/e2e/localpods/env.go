package localpods

import (
	"context"
	"fmt"
	"math"
	"net"
	"runtime"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Listen variables: the runtime contract's two addresses (docs/runtime.md).
// In a cluster every pod binds :8080 and :9090 on its own IP; here all pods
// share 127.0.0.1, so the runner rewrites these two variables to the pod's
// own local ports (see Runner).
const (
	EnvListen      = "CHATR_LISTEN"
	EnvAdminListen = "CHATR_ADMIN_LISTEN"
	// EnvModerationListen is the API pods' moderation port, rewritten the
	// same way.
	EnvModerationListen = "CHATR_MODERATION_LISTEN"

	// DefaultMainPort is the container port assumed when CHATR_LISTEN is
	// unset or names no port.
	DefaultMainPort = int32(8080)
)

// configError is what the kubelet reports as CreateContainerConfigError: a
// referenced Secret, ConfigMap or key is missing. The pod waits and retries.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// envVar is one resolved variable, in the order the kubelet builds them.
type envVar struct{ name, value string }

// envList keeps variables in first-definition order with last-wins values.
type envList struct {
	order []string
	vals  map[string]string
}

func newEnvList() *envList { return &envList{vals: map[string]string{}} }

func (l *envList) set(k, v string) {
	if _, ok := l.vals[k]; !ok {
		l.order = append(l.order, k)
	}
	l.vals[k] = v
}

func (l *envList) list() []envVar {
	out := make([]envVar, 0, len(l.order))
	for _, k := range l.order {
		out = append(out, envVar{k, l.vals[k]})
	}
	return out
}

// podFacts are what fieldRef can read.
type podFacts struct {
	name, namespace, uid, nodeName, serviceAccount string
	labels, annotations                            map[string]string
}

// resolveEnv builds a container's environment as the kubelet does: envFrom
// sources in order (later ones win, keys prefixed), then env entries, each
// value expanded with $(VAR) against what is defined so far. Missing
// non-optional Secrets, ConfigMaps or keys give a *configError.
func resolveEnv(ctx context.Context, c client.Client, ns string, ctr *corev1.Container, pod podFacts) (*envList, error) {
	env := newEnvList()
	cms := map[string]*corev1.ConfigMap{}
	secrets := map[string]*corev1.Secret{}
	getCM := func(name string, optional bool) (*corev1.ConfigMap, error) {
		if cm, ok := cms[name]; ok {
			return cm, nil
		}
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
			if apierrors.IsNotFound(err) {
				if optional {
					cms[name] = nil
					return nil, nil
				}
				return nil, &configError{fmt.Sprintf("configmap %q not found", name)}
			}
			return nil, err
		}
		cms[name] = cm
		return cm, nil
	}
	getSecret := func(name string, optional bool) (*corev1.Secret, error) {
		if s, ok := secrets[name]; ok {
			return s, nil
		}
		s := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				if optional {
					secrets[name] = nil
					return nil, nil
				}
				return nil, &configError{fmt.Sprintf("secret %q not found", name)}
			}
			return nil, err
		}
		secrets[name] = s
		return s, nil
	}

	for _, src := range ctr.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			cm, err := getCM(src.ConfigMapRef.Name, isTrue(src.ConfigMapRef.Optional))
			if err != nil {
				return nil, err
			}
			if cm == nil {
				continue
			}
			for _, k := range sortedKeys(cm.Data) {
				env.set(src.Prefix+k, cm.Data[k])
			}
		case src.SecretRef != nil:
			s, err := getSecret(src.SecretRef.Name, isTrue(src.SecretRef.Optional))
			if err != nil {
				return nil, err
			}
			if s == nil {
				continue
			}
			for _, k := range sortedKeys(s.Data) {
				env.set(src.Prefix+k, string(s.Data[k]))
			}
		}
	}

	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			env.set(e.Name, expand(e.Value, env.vals))
			continue
		}
		vf := e.ValueFrom
		switch {
		case vf.SecretKeyRef != nil:
			ref := vf.SecretKeyRef
			s, err := getSecret(ref.Name, isTrue(ref.Optional))
			if err != nil {
				return nil, err
			}
			if s == nil {
				continue
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if isTrue(ref.Optional) {
					continue
				}
				return nil, &configError{fmt.Sprintf("couldn't find key %s in Secret %s/%s", ref.Key, ns, ref.Name)}
			}
			env.set(e.Name, string(v))
		case vf.ConfigMapKeyRef != nil:
			ref := vf.ConfigMapKeyRef
			cm, err := getCM(ref.Name, isTrue(ref.Optional))
			if err != nil {
				return nil, err
			}
			if cm == nil {
				continue
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				if isTrue(ref.Optional) {
					continue
				}
				return nil, &configError{fmt.Sprintf("couldn't find key %s in ConfigMap %s/%s", ref.Key, ns, ref.Name)}
			}
			env.set(e.Name, v)
		case vf.FieldRef != nil:
			v, err := fieldValue(vf.FieldRef.FieldPath, pod)
			if err != nil {
				return nil, err
			}
			env.set(e.Name, v)
		case vf.ResourceFieldRef != nil:
			v, err := resourceValue(vf.ResourceFieldRef, ctr)
			if err != nil {
				return nil, err
			}
			env.set(e.Name, v)
		default:
			return nil, &configError{fmt.Sprintf("env %s: unsupported valueFrom", e.Name)}
		}
	}
	return env, nil
}

// fieldValue answers the downward API. Addresses are the loopback: every
// local pod's IP is 127.0.0.1.
func fieldValue(path string, pod podFacts) (string, error) {
	if k, ok := subscript(path, "metadata.labels"); ok {
		return pod.labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return pod.annotations[k], nil
	}
	switch path {
	case "metadata.name":
		return pod.name, nil
	case "metadata.namespace":
		return pod.namespace, nil
	case "metadata.uid":
		return pod.uid, nil
	case "spec.nodeName":
		return pod.nodeName, nil
	case "spec.serviceAccountName":
		return pod.serviceAccount, nil
	case "status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs":
		return PodIP, nil
	}
	return "", &configError{fmt.Sprintf("unsupported fieldRef %q", path)}
}

// subscript parses `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

// resourceValue answers resourceFieldRef from the container's requests and
// limits. An unset limit is, as in a cluster, the node's allocatable: here
// the CPU count for cpu and 0 (unknown) for the rest.
func resourceValue(ref *corev1.ResourceFieldSelector, ctr *corev1.Container) (string, error) {
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", &configError{fmt.Sprintf("unsupported resourceFieldRef %q", ref.Resource)}
	}
	list := ctr.Resources.Limits
	if kind == "requests" {
		list = ctr.Resources.Requests
	}
	q, set := list[corev1.ResourceName(name)]
	if !set {
		if name == "cpu" && kind == "limits" {
			q = *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI)
		} else {
			q = resource.Quantity{}
		}
	}
	div := ref.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	if name == "cpu" {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(div.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(div.Value()))), 10), nil
}

// expand replaces $(VAR) with VAR's value when VAR is defined, leaves it as
// written when not, and turns $$ into $ — Kubernetes' expansion rules for
// env values, command and args.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// listenPort returns the container port named by a listen address such as
// ":8080" or "0.0.0.0:9090", or def when it names none.
func listenPort(addr string, def int32) int32 {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return def
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil || n <= 0 {
		return def
	}
	return int32(n)
}

func isTrue(b *bool) bool { return b != nil && *b }
