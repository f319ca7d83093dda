// Package chaos is the fault suite: a room of two API servers and two
// streamers (in this process, each with its own connections to the real
// Postgres and Redis through a fault proxy, so one part can lose a
// dependency while the others keep it), under steady posting and with SSE
// and WebSocket readers that resume with Last-Event-ID, through freezes,
// partitions and crashes. Each scenario prints a verdict — accepted, lost,
// duplicated, out of order, accepted-but-missing from Postgres, errors by
// kind, the slowest answer, recovery time, worst delivery delay — and
// fails when a promise broke. A negative control deliberately drops a
// message in one reader and must be caught, so the suite can fail.
//
// `make chaos` runs it with 30-second faults and prints "N passed, N
// failed"; under `make test` it runs with short faults.
package chaos
