package autoscale

import (
	"cmp"
	"slices"
)

// DeletionCostAnnotation is the pod annotation the ReplicaSet controller
// reads when it picks the pods to remove on a scale-down: lower cost first
// (after unready pods, which always go first).
const DeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// DeletionCosts ranks the non-terminating pods for removal: the pod with the
// fewest connections gets cost 0, the next 1, and so on, so a scale-down
// sends the fewest clients reconnecting. Ties go by name, so the result is
// deterministic. A pod without a count ranks as if it carried the target:
// an unknown is never assumed cheap to remove.
//
// Every non-terminating pod gets a cost, so an annotation left from an
// earlier scale-down is always overwritten; ranks rather than raw counts
// keep the values stable while the order holds, so the controller patches
// only the pods whose annotation differs. The controller applies the costs
// before it lowers the Deployment's replicas.
func DeletionCosts(p Policy, pods []Pod) map[string]int32 {
	type ranked struct {
		name  string
		conns int64
	}
	var rs []ranked
	for _, pod := range pods {
		if pod.Terminating {
			continue
		}
		conns := p.TargetPerPod
		if pod.Reported {
			conns = max(pod.Connections, 0)
		}
		rs = append(rs, ranked{pod.Name, conns})
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(a.conns, b.conns), cmp.Compare(a.name, b.name))
	})
	costs := make(map[string]int32, len(rs))
	for i, r := range rs {
		costs[r.name] = int32(i)
	}
	return costs
}
