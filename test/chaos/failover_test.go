package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatr-ai/chatr/internal/testenv"
)

// pgPair is a Postgres primary with a synchronous streaming replica, from
// the machine's own Postgres binaries, in a temporary folder: what an
// operator like CloudNativePG runs. A commit returns only once the replica
// has it (synchronous_standby_names), so a failover loses nothing that was
// acknowledged; clients reach whichever is primary through a multi-host URL
// with target_session_attrs=read-write.
type pgPair struct {
	bin              string
	dir              string
	primary, replica pgNode
}

type pgNode struct {
	data string
	port int
}

// pgBin finds the folder of initdb and pg_ctl (Debian keeps them out of PATH).
func pgBin(t *testing.T) string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		if p, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p)
		}
		testenv.Missing(t, "PostgreSQL's server binaries (initdb, pg_ctl) are missing, so the failover was not tested; apt-get install postgresql")
	}
	return filepath.Dir(matches[len(matches)-1])
}

// asPostgres runs a Postgres tool as the postgres user when we are root
// (initdb refuses to run as root).
func (p *pgPair) run(t *testing.T, tool string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(p.bin, tool), args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, tool)}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startPGPair(t *testing.T) *pgPair {
	t.Helper()
	p := &pgPair{bin: pgBin(t)}
	dir, err := os.MkdirTemp("", "chatr-failover-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v %s", err, out)
		}
	}
	t.Cleanup(func() {
		for _, n := range []pgNode{p.primary, p.replica} {
			if n.data != "" {
				_ = exec.Command("runuser", "-u", "postgres", "--", filepath.Join(p.bin, "pg_ctl"), "-D", n.data, "-m", "immediate", "stop").Run()
			}
		}
		_ = os.RemoveAll(dir)
	})
	p.primary = pgNode{data: filepath.Join(dir, "primary"), port: freePort(t)}
	p.replica = pgNode{data: filepath.Join(dir, "replica"), port: freePort(t)}
	p.run(t, "initdb", "-D", p.primary.data, "-U", "postgres", "--auth=trust", "--no-sync")
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
wal_level = replica
max_wal_senders = 5
synchronous_standby_names = '*'
fsync = off
`, p.primary.port, dir)
	appendFile(t, filepath.Join(p.primary.data, "postgresql.conf"), conf)
	appendFile(t, filepath.Join(p.primary.data, "pg_hba.conf"), "host replication all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n")
	p.run(t, "pg_ctl", "-D", p.primary.data, "-w", "-l", filepath.Join(dir, "primary.log"), "start")
	p.run(t, "pg_basebackup", "-h", "127.0.0.1", "-p", fmt.Sprint(p.primary.port), "-U", "postgres", "-D", p.replica.data, "-R", "--no-sync")
	// Promoted, the replica has no standby of its own to wait for.
	appendFile(t, filepath.Join(p.replica.data, "postgresql.conf"), fmt.Sprintf("port = %d\nsynchronous_standby_names = ''\n", p.replica.port))
	p.run(t, "pg_ctl", "-D", p.replica.data, "-w", "-l", filepath.Join(dir, "replica.log"), "start")
	// The replica streams synchronously before the room starts.
	testenv.Eventually(t, 30*time.Second, "the replica streams synchronously", func() error {
		c, err := pgx.Connect(context.Background(), p.nodeURL(p.primary))
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		var state string
		if err := c.QueryRow(context.Background(), `SELECT sync_state FROM pg_stat_replication`).Scan(&state); err != nil {
			return err
		}
		if state != "sync" {
			return fmt.Errorf("replication is %s", state)
		}
		return nil
	})
	return p
}

func appendFile(t *testing.T, name, s string) {
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func (p *pgPair) nodeURL(n pgNode) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", n.port)
}

// url is what the room is configured with: both hosts, the writable one chosen.
func (p *pgPair) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write",
		p.primary.port, p.replica.port)
}

// failover kills the primary (no shutdown: as a node loss) and promotes the
// replica, as CloudNativePG does; it returns how long the promotion took.
func (p *pgPair) failover(t *testing.T) time.Duration {
	start := time.Now()
	p.run(t, "pg_ctl", "-D", p.primary.data, "-m", "immediate", "stop")
	p.run(t, "pg_ctl", "-D", p.replica.data, "-w", "promote")
	p.primary.data = "" // stopped for good
	return time.Since(start)
}
