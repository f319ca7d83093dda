package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatr-ai/chatr/internal/ociimage"
)

// build runs the command with args (plus -out) and returns the archive.
func build(t *testing.T, args ...string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "image.tar")
	if err := run(append(args, "-out", out)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// files reads a tar into name → (header, content).
func files(t *testing.T, r io.Reader) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	hs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		hs[h.Name] = h
		data[h.Name], _ = io.ReadAll(tr)
	}
}

// layer opens an archive and returns its layer's entries and its config.
func layer(t *testing.T, archive []byte) (map[string]*tar.Header, map[string][]byte, map[string]any) {
	t.Helper()
	_, blobs := files(t, bytes.NewReader(archive))
	var idx struct{ Manifests []ociimage.Descriptor }
	if err := json.Unmarshal(blobs["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	blob := func(d string) []byte { return blobs["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")] }
	var man struct {
		Config ociimage.Descriptor
		Layers []ociimage.Descriptor
	}
	if err := json.Unmarshal(blob(idx.Manifests[0].Digest), &man); err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(blob(man.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(man.Layers[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	hs, data := files(t, zr)
	return hs, data, cfg
}

// A tiny test image (as the real-node test builds its pause and probe
// images): a file with the host's executable bit, an entrypoint, the
// nonroot defaults, and the same archive from two runs.
func TestTinyImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pause")
	if err := os.WriteFile(bin, []byte("\x7fELF pause"), 0o700); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "motd")
	if err := os.WriteFile(data, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-name", "chatr.ai/pause:test", "-file", bin + ":/pause", "-file", data + ":/etc/motd",
		"-dir", "/data:0700", "-entrypoint", "/pause", "-cmd", "-v", "-env", "A=b", "-label", "k=v", "-created", "1767268800"}
	a1 := build(t, args...)
	if a2 := build(t, args...); !bytes.Equal(a1, a2) {
		t.Fatal("two runs wrote different archives")
	}
	hs, content, cfg := layer(t, a1)
	for name, mode := range map[string]int64{"pause": 0o755, "etc/motd": 0o644, "data/": 0o700, "tmp/": 0o1777, "etc/passwd": 0o644} {
		if hs[name] == nil || hs[name].Mode != mode {
			t.Errorf("%s: %+v, want mode %o", name, hs[name], mode)
		}
	}
	if string(content["pause"]) != "\x7fELF pause" || string(content["etc/passwd"]) != ociimage.Passwd {
		t.Errorf("contents %q %q", content["pause"], content["etc/passwd"])
	}
	c := cfg["config"].(map[string]any)
	if c["User"] != "65532:65532" || c["Entrypoint"].([]any)[0] != "/pause" || c["Cmd"].([]any)[0] != "-v" ||
		c["Env"].([]any)[0] != "A=b" || c["Labels"].(map[string]any)["k"] != "v" || cfg["created"] != "2026-01-01T12:00:00Z" {
		t.Errorf("config %v", cfg)
	}

	// -nonroot=false: only what is listed, running as the given user.
	hs, _, cfg = layer(t, build(t, "-name", "chatr.ai/pause:root", "-nonroot=false", "-user", "0", "-file", bin+":/pause", "-entrypoint", "/pause"))
	if len(hs) != 1 || hs["pause"] == nil || cfg["config"].(map[string]any)["User"] != "0" {
		t.Errorf("bare image: %v %v", hs, cfg["config"])
	}
}

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	_ = os.WriteFile(f, nil, 0o644)
	out := filepath.Join(dir, "x.tar")
	for name, args := range map[string][]string{
		"no name":       {"-out", out},
		"no out":        {"-name", "a/b:c"},
		"relative dest": {"-name", "a/b:c", "-out", out, "-file", f + ":etc/f"},
		"missing file":  {"-name", "a/b:c", "-out", out, "-file", filepath.Join(dir, "nope") + ":/f"},
		"directory":     {"-name", "a/b:c", "-out", out, "-file", dir + ":/f"},
		"bad mode":      {"-name", "a/b:c", "-out", out, "-file", f + ":/f:999"},
		"bad created":   {"-name", "a/b:c", "-out", out, "-created", "yesterday"},
		"bad label":     {"-name", "a/b:c", "-out", out, "-label", "novalue"},
	} {
		if err := run(args); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed build left %s", out)
	}
}

// The Dockerfile builds the same images for people with Docker: the same
// passwd and group, /tmp, CA bundle, user, entrypoints and version stamping.
func TestDockerfileAgrees(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	printf := func(s string) string { return "printf '" + strings.ReplaceAll(s, "\n", `\n`) + "'" }
	for _, want := range []string{
		printf(ociimage.Passwd) + " > /rootfs/etc/passwd",
		printf(ociimage.Group) + " > /rootfs/etc/group",
		"chmod 1777 /rootfs/tmp",
		"cp " + ociimage.CACertsPath + " /rootfs" + ociimage.CACertsPath,
		"USER " + ociimage.NonRootUser,
		`ENTRYPOINT ["/chatrd"]`,
		`ENTRYPOINT ["/chatr-operator"]`,
		"FROM scratch AS chatr\n",
		"FROM scratch AS chatr-operator\n",
		"CGO_ENABLED=0 go build -trimpath",
		"-X github.com/chatr-ai/chatr/internal/version.Version=${VERSION}",
		"-X github.com/chatr-ai/chatr/internal/version.Commit=${COMMIT}",
		"org.opencontainers.image.revision=${COMMIT}",
		"org.opencontainers.image.source=https://github.com/chatr-ai/chatr",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	mk, err := os.ReadFile("../image.mk")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-file $(IMAGE_DIR)/rootfs/chatrd:/chatrd:0755 -entrypoint /chatrd",
		"-file $(IMAGE_DIR)/rootfs/chatr-operator:/chatr-operator:0755 -entrypoint /chatr-operator",
		"CGO_ENABLED=0", "-trimpath", "$(VERSION_LDFLAGS)", "-ca-certs $(CA_CERTS)"} {
		if !strings.Contains(string(mk), want) {
			t.Errorf("hack/image.mk lacks %q", want)
		}
	}
}
