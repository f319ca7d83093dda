package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// Ports every component pod uses (docs/runtime.md). The admin port serves
// /healthz, /readyz and /metrics apart from the main port, so the Ingress
// (which only knows the main port) never exposes them.
const (
	portHTTP      = int32(8080)
	portAdmin     = int32(9090)
	portHTTPName  = "http"
	portAdminName = "admin"
	// The API pods' moderation API (docs/operations.md, "Moderation"): a
	// port of its own that no Ingress routes to.
	portModeration     = int32(9091)
	portModerationName = "moderation"
	// tmpVolume is an emptyDir at /tmp: the root filesystem is read-only.
	tmpVolume = "tmp"
	// chatrdPath is the one binary of the image.
	chatrdPath = "/chatrd"
	// nonRootUID is the distroless "nonroot" user. Naming it lets
	// runAsNonRoot be verified even for an image whose USER is a name.
	nonRootUID = int64(65532)
	// preStopSleep keeps a terminating streamer or API pod serving while the endpoint
	// removal reaches the ingress controller, so no new stream lands on it
	// after it starts draining.
	preStopSleep = int64(5)
	// graceMargin is added to preStopSleep + drainTime for the process to
	// close its last connections and exit before the kubelet kills it.
	graceMargin = int64(15)
)

// Annotations the operator writes.
const (
	// annotationSpecHash holds the hash of the desired object the operator
	// last wrote; a different desired hash means the spec changed.
	annotationSpecHash = "chatr.ai/spec-hash"
	// annotationConfigHash, on a pod template, holds the hash of the
	// ConfigMap keys that component reads: env from a ConfigMap is read only
	// at pod start, so a change must roll the pods.
	annotationConfigHash = "chatr.ai/config-hash"
	// annotationSecretsHash, on a pod template, holds the hash of the Secret
	// keys that component reads, for the same reason.
	annotationSecretsHash = "chatr.ai/secrets-hash"
)

// ownerRef is the controller reference every child carries: the garbage
// collector deletes the children with the room, and blockOwnerDeletion makes
// a foreground deletion of the room wait for them.
func ownerRef(room *chatrv1.ChatRoom) []metav1.OwnerReference {
	return []metav1.OwnerReference{*metav1.NewControllerRef(room, chatrv1.GroupVersion.WithKind("ChatRoom"))}
}

// objectMeta returns the metadata of a child of room.
func objectMeta(room *chatrv1.ChatRoom, name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       room.Namespace,
		Labels:          labels,
		OwnerReferences: ownerRef(room),
	}
}

// hashOf returns a short, stable hash of v's JSON encoding (map keys are
// sorted by encoding/json, so equal values hash equally).
func hashOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only unencodable types (channels, funcs) fail; the API types never do.
		panic(fmt.Sprintf("hashing %T: %v", v, err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// hashKeys returns the hash of the given keys of data, in sorted order, so a
// component's hash moves only when a key it reads changes.
func hashKeys(data map[string]string, keys []string) string {
	ks := append([]string(nil), keys...)
	sort.Strings(ks)
	pairs := make([][2]string, 0, len(ks))
	for _, k := range ks {
		pairs = append(pairs, [2]string{k, data[k]})
	}
	return hashOf(pairs)
}

// formatDuration writes d as Go's time.ParseDuration reads it, which is
// how internal/config parses every duration setting.
func formatDuration(d *metav1.Duration, def time.Duration) string {
	if d == nil {
		return def.String()
	}
	return d.Duration.String()
}

// itoa formats a count for a ConfigMap value.
func itoa(i int32) string { return strconv.Itoa(int(i)) }

// ptr returns a pointer to v, for the API's optional fields.
func ptr[T any](v T) *T { return &v }
