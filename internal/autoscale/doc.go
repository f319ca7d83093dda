// Package autoscale is the streamer autoscaler's algorithm: from the
// connection counts the streamer pods report, the pods' readiness, the
// policy and a small persisted state, it decides the fleet's size, the
// status conditions, and which pods to remove first.
//
// It is pure and deterministic (the clock is an input) and imports neither
// Kubernetes nor Redis, so the controller, the tests and the simulation
// (cmd/scalesim) all drive the same code. docs/autoscaling.md describes the
// algorithm and the defaults.
package autoscale
