// Package localpods runs a namespace's Deployments as local processes
// against a bare API server, and routes to them like the ChatRoom Ingress.
// It is a test harness for `make e2e` (docs/e2e.md), not a product: with envtest
// (kube-apiserver and etcd, no controllers, no nodes) plus this package, the
// operator's Deployments really serve, with exactly the command, arguments
// and environment the operator wrote.
//
// # The local pod runner
//
//	r, err := localpods.New(cfg, "default", localpods.Options{
//		Binaries: map[string]string{"/chatrd": "/path/to/fresh/chatrd"},
//		LogDir:   "/tmp/e2e-logs",
//	})
//	err = r.Start(ctx)
//	defer r.Stop()
//
// The Runner plays the ReplicaSet controller, the kubelet and the deployment
// controller for every Deployment in the namespace:
//
//   - spec.replicas pods, each a real Pod (named <deployment>-<random>,
//     template labels plus pod-template-hash, annotations, an owner
//     reference to the Deployment, the Finalizer) and one process of the
//     first container: its command mapped through Options.Binaries, args,
//     and env resolved as a kubelet does (value with $(VAR) expansion,
//     secretKeyRef, configMapKeyRef, fieldRef with status.podIP 127.0.0.1,
//     resourceFieldRef, envFrom). A missing Secret or ConfigMap leaves the
//     pod waiting (CreateContainerConfigError) until it appears.
//   - Ports: all pods share 127.0.0.1, so each gets its own free port for
//     every container port, and CHATR_LISTEN / CHATR_ADMIN_LISTEN are
//     rewritten to them. PodInfo.Ports and Runner.Addr give the table.
//   - Readiness from the readinessProbe (httpGet or tcpSocket on the mapped
//     port, every Options.ProbePeriod, thresholds honoured) goes to the
//     Pod's status (Running, podIP, Ready, ContainersReady, container
//     status with restarts) and to the Deployment's status (replicas,
//     updated/ready/available/unavailable/terminating replicas,
//     observedGeneration, Available and Progressing conditions), so an
//     operator's conditions follow as in a cluster.
//   - Scale-down removes pods in the ReplicaSet's order (not running, not
//     ready, lowest controller.kubernetes.io/pod-deletion-cost, most
//     recently ready, most restarts, newest). Each victim is deleted in the
//     API and shows its deletionTimestamp (the Finalizer holds it) while
//     its preStop hook (sleep or httpGet) runs, SIGTERM is sent, and, after
//     the grace period, SIGKILL; then the Pod goes. Deleting a Pod in the
//     API does the same, and the Deployment gets a new one.
//   - A process that exits on its own is restarted after a short backoff
//     (restartCount, lastState). A new pod template rolls: the new pods
//     start, and old ones stop as new ones turn Ready (Recreate: old first).
//   - Stop terminates every process the same way (grace capped by
//     Options.MaxGracePeriod) and removes the Pods. History lists every
//     process that ended, and why.
//
// Each pod logs (stdout and stderr, all restarts) to LogDir/<pod>.log; the
// runner logs to LogDir/runner.log.
//
// # The local ingress
//
//	in, err := localpods.NewIngress(cfg, "default", r, localpods.ChatRoomRoutes("room-streamer", "room-api"))
//	err = in.Start("127.0.0.1:8080")
//	defer in.Close()
//
// It routes by longest path prefix (/api/stream, /api/ws and / to the
// streamers, /api to the API), round robin over the Ready pods that are not
// terminating, found by the selector of the named Service (or, without one,
// Deployment), as read from the API server. SSE responses are flushed as
// written; WebSocket upgrades pass through; no ready pod answers 503.
//
// # Not done
//
// Only the first container of a pod runs; init and sidecar containers,
// volumes, resource limits, liveness and startup probes, exec and gRPC
// probes and exec preStop hooks are ignored, and so are Service links
// (KUBERNETES_SERVICE_HOST and the like), paused Deployments and maxSurge (a
// rollout starts all new pods at once). There is no garbage collector: the
// runner itself stops the pods of a deleted Deployment.
package localpods
