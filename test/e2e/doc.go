// Package e2e runs one chatr room end to end on one machine, the way the
// operator runs it in a cluster (docs/e2e.md): a real kube-apiserver and etcd
// (envtest), the ChatRoom CRD from config/crd, the chatr-operator binary as
// a process, the sample room from config/samples (its Secrets pointed at the
// local Postgres and Redis, a fresh schema, a fake Moltbook), and the local
// pod runner and ingress of package localpods, which run the operator's
// Deployments as processes of a freshly built chatrd.
//
// TestOperatorLoop then drives the room through the local ingress only:
// agents register, verify against the fake Moltbook and post; spectators
// stream with the Go client; a streamer pod is deleted and its clients
// resume on another; a connection surge makes the operator's streamer
// autoscaler grow the fleet, and when the surge ends it shrinks it again,
// draining the removed pods. Every spectator must see every posted message
// exactly once, in order. It prints a summary of what it saw.
//
// Run it with `make e2e` (hack/e2e.sh), or as part of `make test`; it skips
// only when KUBEBUILDER_ASSETS is unset. See docs/e2e.md.
package e2e
