package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"
)

var commitTime = time.Unix(1767268800, 0).UTC() // 2026-01-01T12:00:00Z

func testSpec(binary []byte) Spec {
	return Spec{
		Name:         "chatr.ai/chatr:v1.2.3-4-gabcdef0",
		Entries:      append(NonRootEntries(), File("/chatrd", 0o755, binary), File(CACertsPath, 0o644, []byte("-----BEGIN CERTIFICATE-----\n"))),
		Entrypoint:   []string{"/chatrd"},
		User:         NonRootUser,
		Labels:       map[string]string{"org.opencontainers.image.revision": "abcdef0", "org.opencontainers.image.source": "https://github.com/chatr-ai/chatr"},
		OS:           "linux",
		Architecture: "amd64",
		Created:      commitTime,
	}
}

func archive(t *testing.T, s Spec) (*Image, []byte) {
	t.Helper()
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := img.WriteArchive(&buf, s.Created); err != nil {
		t.Fatal(err)
	}
	return img, buf.Bytes()
}

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h, b})
	}
}

// The archive is an OCI layout a containerd import understands, naming the
// image both ways, and every blob is where its digest says.
func TestArchiveLayout(t *testing.T) {
	img, b := archive(t, testSpec([]byte("binary")))
	files := map[string][]byte{}
	var names []string
	for _, e := range readTar(t, bytes.NewReader(b)) {
		names = append(names, e.hdr.Name)
		if e.hdr.Typeflag == tar.TypeReg {
			files[e.hdr.Name] = e.data
		}
		if !e.hdr.ModTime.Equal(commitTime) || e.hdr.Uid != 0 || e.hdr.Gid != 0 {
			t.Errorf("%s: time %v owner %d:%d", e.hdr.Name, e.hdr.ModTime, e.hdr.Uid, e.hdr.Gid)
		}
	}
	if names[0] != "oci-layout" || names[1] != "index.json" || names[2] != "blobs/" || names[3] != "blobs/sha256/" || len(names) != 7 {
		t.Fatalf("archive entries %v", names)
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %s", files["oci-layout"])
	}
	for name, data := range files {
		if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && digestOf(data) != "sha256:"+hex {
			t.Errorf("blob %s holds content of digest %s", name, digestOf(data))
		}
	}

	var idx index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != MediaTypeIndex || len(idx.Manifests) != 1 {
		t.Fatalf("index %s", files["index.json"])
	}
	m := idx.Manifests[0]
	wantAnn := map[string]string{AnnotationContainerdName: "chatr.ai/chatr:v1.2.3-4-gabcdef0", AnnotationRefName: "v1.2.3-4-gabcdef0"}
	if m.Digest != img.Digest() || m.MediaType != MediaTypeManifest || !reflect.DeepEqual(m.Annotations, wantAnn) ||
		m.Platform == nil || *m.Platform != (Platform{Architecture: "amd64", OS: "linux"}) {
		t.Errorf("index manifest entry %+v", m)
	}

	var man manifest
	if err := json.Unmarshal(files["blobs/sha256/"+strings.TrimPrefix(m.Digest, "sha256:")], &man); err != nil {
		t.Fatal(err)
	}
	if man.SchemaVersion != 2 || man.MediaType != MediaTypeManifest || man.Config.MediaType != MediaTypeConfig ||
		len(man.Layers) != 1 || man.Layers[0].MediaType != MediaTypeLayer {
		t.Fatalf("manifest %+v", man)
	}
	for _, d := range append([]Descriptor{man.Config}, man.Layers...) {
		if got := files["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]; int64(len(got)) != d.Size {
			t.Errorf("%s: %d bytes, descriptor says %d", d.Digest, len(got), d.Size)
		}
	}
}

// The config carries the user, the entrypoint, the labels, a fixed created
// time and the uncompressed layer's digest.
func TestConfig(t *testing.T) {
	img, _ := archive(t, testSpec([]byte("binary")))
	b, _ := img.Blob(img.Config.Digest)
	var cfg imageConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || !reflect.DeepEqual(cfg.Config.Entrypoint, []string{"/chatrd"}) ||
		cfg.Config.Labels["org.opencontainers.image.revision"] != "abcdef0" {
		t.Errorf("config %s", b)
	}
	if cfg.Created != "2026-01-01T12:00:00Z" || cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("created %q os %q arch %q", cfg.Created, cfg.OS, cfg.Architecture)
	}
	raw, _ := img.Blob(img.Layer.Digest)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("gzip header carries time %v name %q", zr.ModTime, zr.Name)
	}
	unz, _ := io.ReadAll(zr)
	if cfg.RootFS.Type != "layers" || !reflect.DeepEqual(cfg.RootFS.DiffIDs, []string{digestOf(unz)}) || img.DiffID != digestOf(unz) {
		t.Errorf("rootfs %+v, layer diff id %s", cfg.RootFS, digestOf(unz))
	}
}

func layerEntries(t *testing.T, img *Image) []tarEntry {
	t.Helper()
	raw, _ := img.Blob(img.Layer.Digest)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return readTar(t, zr)
}

// The layer holds the binary, the nonroot user, /tmp and the CA bundle,
// sorted, parents first, every owner root and every time the commit's.
func TestLayerContents(t *testing.T) {
	img, _ := archive(t, testSpec([]byte("binary")))
	type row struct {
		name string
		typ  byte
		mode int64
	}
	var got []row
	content := map[string]string{}
	for _, e := range layerEntries(t, img) {
		got = append(got, row{e.hdr.Name, e.hdr.Typeflag, e.hdr.Mode})
		content[e.hdr.Name] = string(e.data)
		if !e.hdr.ModTime.Equal(commitTime) || e.hdr.Uid != 0 || e.hdr.Gid != 0 || e.hdr.Uname != "" {
			t.Errorf("%s: time %v owner %d:%d %q", e.hdr.Name, e.hdr.ModTime, e.hdr.Uid, e.hdr.Gid, e.hdr.Uname)
		}
	}
	want := []row{
		{"chatrd", tar.TypeReg, 0o755},
		{"etc/", tar.TypeDir, 0o755},
		{"etc/group", tar.TypeReg, 0o644},
		{"etc/passwd", tar.TypeReg, 0o644},
		{"etc/ssl/", tar.TypeDir, 0o755},
		{"etc/ssl/certs/", tar.TypeDir, 0o755},
		{"etc/ssl/certs/ca-certificates.crt", tar.TypeReg, 0o644},
		{"tmp/", tar.TypeDir, 0o1777},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("layer\n got %v\nwant %v", got, want)
	}
	if content["chatrd"] != "binary" {
		t.Errorf("binary %q", content["chatrd"])
	}
	if !strings.Contains(content["etc/passwd"], "nonroot:x:65532:65532:") || !strings.Contains(content["etc/group"], "nonroot:x:65532:") {
		t.Errorf("passwd %q group %q", content["etc/passwd"], content["etc/group"])
	}
}

// Two builds of the same inputs are byte for byte the same; any change to a
// file, a mode, the time or the config changes the digest.
func TestReproducible(t *testing.T) {
	base := testSpec([]byte("binary"))
	img1, a1 := archive(t, base)
	img2, a2 := archive(t, testSpec([]byte("binary")))
	if img1.Digest() != img2.Digest() || !bytes.Equal(a1, a2) {
		t.Fatalf("two builds differ: %s %s", img1.Digest(), img2.Digest())
	}
	// Entry order in the spec does not matter: the layer is sorted.
	shuffled := testSpec([]byte("binary"))
	for i, j := 0, len(shuffled.Entries)-1; i < j; i, j = i+1, j-1 {
		shuffled.Entries[i], shuffled.Entries[j] = shuffled.Entries[j], shuffled.Entries[i]
	}
	if img, _ := archive(t, shuffled); img.Digest() != img1.Digest() {
		t.Errorf("entry order changed the digest")
	}

	changes := map[string]func(*Spec){
		"file content": func(s *Spec) { s.Entries[3].Data = []byte("binary2") },
		"file mode":    func(s *Spec) { s.Entries[3].Mode = 0o700 },
		"time":         func(s *Spec) { s.Created = s.Created.Add(time.Second) },
		"user":         func(s *Spec) { s.User = "0:0" },
		"label":        func(s *Spec) { s.Labels = map[string]string{"org.opencontainers.image.revision": "1234567"} },
		"extra file":   func(s *Spec) { s.Entries = append(s.Entries, File("/x", 0, nil)) },
	}
	for name, change := range changes {
		s := testSpec([]byte("binary"))
		change(&s)
		if img, _ := archive(t, s); img.Digest() == img1.Digest() {
			t.Errorf("%s: digest unchanged", name)
		}
	}
	// The name is not part of the image, only of the archive's index.
	renamed := testSpec([]byte("binary"))
	renamed.Name = "chatr.ai/other:v1"
	if img, a := archive(t, renamed); img.Digest() != img1.Digest() || bytes.Equal(a, a1) {
		t.Errorf("a new name must keep the digest and change the index")
	}
}

func TestBuildRejects(t *testing.T) {
	for name, change := range map[string]func(*Spec){
		"no name":           func(s *Spec) { s.Name = "" },
		"digest reference":  func(s *Spec) { s.Name = "chatr.ai/chatr@sha256:00" },
		"upper case":        func(s *Spec) { s.Name = "chatr.ai/Chatr:v1" },
		"empty tag":         func(s *Spec) { s.Name = "chatr.ai/chatr:" },
		"bad tag":           func(s *Spec) { s.Name = "chatr.ai/chatr:v1+meta" },
		"tag starts with -": func(s *Spec) { s.Name = "chatr.ai/chatr:-dirty" },
		"relative path":     func(s *Spec) { s.Entries = append(s.Entries, File("chatrd2", 0, nil)) },
		"duplicate path":    func(s *Spec) { s.Entries = append(s.Entries, File("/chatrd", 0, nil)) },
		"file as parent":    func(s *Spec) { s.Entries = append(s.Entries, File("/chatrd/x", 0, nil)) },
		"device":            func(s *Spec) { s.Entries = append(s.Entries, Entry{Path: "/dev/null", Mode: fs.ModeDevice}) },
		"no platform":       func(s *Spec) { s.Architecture = "" },
	} {
		s := testSpec(nil)
		change(&s)
		if _, err := Build(s); err == nil {
			t.Errorf("%s: built", name)
		}
	}
}

func TestDefaultTag(t *testing.T) {
	s := testSpec(nil)
	s.Name = "localhost:5000/pause"
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != "localhost:5000/pause:latest" || !strings.Contains(string(img.Index()), `"org.opencontainers.image.ref.name":"latest"`) {
		t.Errorf("name %s index %s", img.Name, img.Index())
	}
}
