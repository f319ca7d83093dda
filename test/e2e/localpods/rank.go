package localpods

import (
	"slices"
	"sort"
	"strconv"
	"time"
)

// DeletionCostAnnotation is the Pod annotation a ReplicaSet reads to choose
// which pods to remove first when it scales down (lower cost goes first).
const DeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// victim is what the ranking looks at.
type victim struct {
	name       string
	running    bool // the process runs (phase Running); false: waiting to start or restarting
	ready      bool
	cost       int32
	readySince time.Time
	restarts   int
	seq        uint64 // creation order: higher is newer
}

// rankVictims sorts candidates so the ones to delete first come first, in
// the order of the ReplicaSet controller (ActivePodsWithRanks): pending
// before running, not ready before ready, lower deletion cost first, the
// most recently ready first, more restarts first, newest first. (Node
// placement, the controller's "doubled up" rank, is the same for every local
// pod; times compare exactly instead of in logarithmic buckets.)
func rankVictims(vs []victim) {
	sort.SliceStable(vs, func(i, j int) bool {
		a, b := vs[i], vs[j]
		if a.running != b.running {
			return !a.running
		}
		if a.ready != b.ready {
			return !a.ready
		}
		if a.cost != b.cost {
			return a.cost < b.cost
		}
		if a.ready && b.ready && !a.readySince.Equal(b.readySince) {
			return a.readySince.After(b.readySince)
		}
		if a.restarts != b.restarts {
			return a.restarts > b.restarts
		}
		return a.seq > b.seq
	})
}

// deletionCost parses the annotation as the ReplicaSet controller does: a
// missing or invalid value counts as 0.
func deletionCost(annotations map[string]string) int32 {
	v, ok := annotations[DeletionCostAnnotation]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return int32(n)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
