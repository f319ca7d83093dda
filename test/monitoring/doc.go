// Package monitoring holds one test, in a Go module of its own: every PromQL
// expression the Helm chart ships (the alerts of files/prometheus-rules.yaml
// and the panels of files/grafana-dashboard.json) parses with Prometheus's own
// parser, and every metric it names is one the room's components and the
// operator really export. Prometheus is a heavy module whose requirements
// would move shared dependencies of the operator and the components (and the
// go directive) in the main go.mod, so it stays here; make test runs this
// module too (hack/gotest.sh).
package monitoring
