package localpods

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/chatr-ai/chatr/internal/testenv"
)

// get fetches a path through the ingress and returns status, the serving
// pod (from the body) and the body.
func get(t *testing.T, base, path string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	pod := ""
	if rest, ok := strings.CutPrefix(body, "pod="); ok {
		pod, _, _ = strings.Cut(rest, " ")
		if h := resp.Header.Get(BackendHeader); h != pod {
			t.Errorf("%s header says %q, body %q", BackendHeader, h, pod)
		}
	}
	return resp.StatusCode, pod, body
}

func TestIngressRoutesToReadyPods(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	// The streamers are found through their Service (port "http" ->
	// targetPort "http" -> container port 8080), the API through its
	// Deployment (no Service).
	streamer := fakeDeployment(ns, "room-streamer", 2, corev1.EnvVar{Name: "FAKEPOD_TERM_DELAY", Value: "3s"})
	create(t, streamer)
	create(t, fakeDeployment(ns, "room-api", 1))
	create(t, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "room-streamer"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "room-streamer"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	})
	r := startRunner(t, ns, Options{})
	in, err := NewIngress(restCfg, ns, r, ChatRoomRoutes("room-streamer", "room-api"))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() })
	base := in.URL()

	streamers := names(waitReady(t, r, ns, "room-streamer", 2))
	api := names(waitReady(t, r, ns, "room-api", 1))
	testenv.Eventually(t, 5*time.Second, "backends", func() error {
		if got := in.Backends("/"); !slices.Equal(got, streamers) {
			return fmt.Errorf("/ -> %v", got)
		}
		if got := in.Backends("/api"); !slices.Equal(got, api) {
			return fmt.Errorf("/api -> %v", got)
		}
		return nil
	})

	// Round robin over both streamers, for / and /api/stream alike; /api to
	// the API; /apix is not /api.
	seen := map[string]int{}
	for range 4 {
		code, pod, body := get(t, base, "/")
		if code != 200 || !slices.Contains(streamers, pod) {
			t.Fatalf("GET / -> %d %q", code, body)
		}
		seen[pod]++
		if !strings.Contains(body, "xff=127.0.0.1") {
			t.Errorf("X-Forwarded-For not set: %q", body)
		}
	}
	if seen[streamers[0]] != 2 || seen[streamers[1]] != 2 {
		t.Errorf("round robin: %v", seen)
	}
	for _, path := range []string{"/api/agents", "/api", "/api/messages?x=1"} {
		if code, pod, body := get(t, base, path); code != 200 || pod != api[0] {
			t.Errorf("GET %s -> %d %q", path, code, body)
		}
	}
	if _, pod, body := get(t, base, "/apix"); !slices.Contains(streamers, pod) {
		t.Errorf("GET /apix -> %q", body)
	}

	// SSE passes through as it is written: the first event arrives while
	// the stream is still open.
	func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/stream", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				if !slices.Contains(streamers, data) {
					t.Errorf("SSE event from %q", data)
				}
				return
			}
		}
		t.Errorf("no SSE event before the stream ended: %v", sc.Err())
	}()

	// WebSocket upgrade through the proxy.
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(base, "http://", "ws://", 1)+"/api/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	from, text, _ := strings.Cut(string(msg), ": ")
	if text != "hello" || !slices.Contains(streamers, from) {
		t.Errorf("websocket echo %q", msg)
	}
	ws.Close()

	// An unready pod gets no traffic.
	info, _ := r.Pod(streamers[0])
	setReady(t, info, false)
	testenv.Eventually(t, 5*time.Second, "unready pod out of rotation", func() error {
		if got := in.Backends("/"); !slices.Equal(got, streamers[1:]) {
			return fmt.Errorf("/ -> %v", got)
		}
		return nil
	})
	for range 6 {
		if _, pod, body := get(t, base, "/"); pod != streamers[1] {
			t.Fatalf("GET / went to %q while %s is not ready", body, streamers[0])
		}
	}
	setReady(t, info, true)
	testenv.Eventually(t, 5*time.Second, "ready again", func() error {
		if got := in.Backends("/"); !slices.Equal(got, streamers) {
			return fmt.Errorf("/ -> %v", got)
		}
		return nil
	})

	// A terminating pod (draining for 3s) gets no traffic while it still
	// runs.
	annotatePod(t, ns, streamers[1], DeletionCostAnnotation, "-1")
	scale(t, ns, "room-streamer", 1)
	testenv.Eventually(t, 5*time.Second, "terminating pod out of rotation", func() error {
		p, ok := r.Pod(streamers[1])
		if !ok || !p.Terminating || !alive(p.PID) {
			return fmt.Errorf("pod %+v", p)
		}
		if got := in.Backends("/"); !slices.Equal(got, streamers[:1]) {
			return fmt.Errorf("/ -> %v", got)
		}
		return nil
	})
	for range 4 {
		if _, pod, body := get(t, base, "/"); pod != streamers[0] {
			t.Fatalf("GET / went to %q while %s terminates", body, streamers[1])
		}
	}
	if p, ok := r.Pod(streamers[1]); !ok || !alive(p.PID) {
		t.Fatalf("the terminating pod ended before the check; make FAKEPOD_TERM_DELAY longer")
	}

	// No ready backend: 503.
	scale(t, ns, "room-api", 0)
	testenv.Eventually(t, 10*time.Second, "503 without API pods", func() error {
		if code, _, body := get(t, base, "/api/agents"); code != http.StatusServiceUnavailable {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
}
