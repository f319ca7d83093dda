// Package ociimage builds single-layer container images from a list of files
// and writes them as OCI image archives (an OCI image layout in one tar), the
// format `ctr images import` and `kind load image-archive` read.
//
// It exists because our build machines have no container engine: chatr's
// images are FROM scratch (a static binary, a passwd file, CA certificates,
// /tmp), so a small pure-Go writer is all an image build needs, and being
// pure it is easy to test and to make reproducible. Everything that could
// vary between two builds of the same inputs is fixed: entries are sorted,
// every entry has the same time (Spec.Created), owner 0:0 and explicit
// modes, the gzip stream carries no time or name, and the config's
// `created` is Spec.Created. The same inputs therefore give byte-identical
// archives and the same digests with the same Go release (a different Go
// release may compress differently, which changes only the layer's
// compressed digest, not its diff_id).
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Media types and annotation keys of the OCI image and layout specifications
// (and containerd's name annotation).
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"

	// AnnotationContainerdName is what containerd's importer names the
	// image after (the full reference, e.g. chatr.ai/chatr:v1).
	AnnotationContainerdName = "io.containerd.image.name"
	// AnnotationRefName is the OCI layout's reference name: the tag only,
	// as containerd's own exporter writes it.
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// Entry is one file, directory or symbolic link of the image's file system.
type Entry struct {
	// Path is absolute inside the image ("/etc/passwd").
	Path string
	// Mode holds the permission bits plus fs.ModeDir, fs.ModeSymlink,
	// fs.ModeSticky, fs.ModeSetuid or fs.ModeSetgid; 0 for a regular file
	// means 0644 (and 0755 for a directory).
	Mode fs.FileMode
	// Data is a regular file's content.
	Data []byte
	// Target is a symbolic link's target.
	Target string
	// UID and GID own the entry (0: root).
	UID, GID int
}

// File is a regular file entry.
func File(p string, mode fs.FileMode, data []byte) Entry {
	return Entry{Path: p, Mode: mode, Data: data}
}

// Dir is a directory entry; mode may carry fs.ModeSticky (e.g. /tmp:
// Dir("/tmp", 0o777|fs.ModeSticky)).
func Dir(p string, mode fs.FileMode) Entry { return Entry{Path: p, Mode: mode | fs.ModeDir} }

// Spec describes an image.
type Spec struct {
	// Name is the full reference the archive names the image with
	// ("chatr.ai/chatr:v1"); a name without a tag gets ":latest".
	Name string
	// Entries are the layer's contents. Parent directories that are not
	// listed are added (0755, root).
	Entries []Entry
	// Entrypoint, Cmd, Env, User, WorkingDir and Labels go to the image
	// config as in a Dockerfile.
	Entrypoint []string
	Cmd        []string
	Env        []string
	User       string
	WorkingDir string
	Labels     map[string]string
	// OS and Architecture of the image ("linux", "amd64").
	OS, Architecture string
	// Created is the time of every layer entry and the config's "created".
	// Builds meant to be reproducible pass a fixed time (the commit's).
	Created time.Time
}

// Descriptor points at one blob.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Platform of an image.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// Image is a built image: its blobs and their descriptors.
type Image struct {
	Name     string
	Manifest Descriptor // its Digest is the image's digest
	Config   Descriptor
	Layer    Descriptor
	DiffID   string // digest of the uncompressed layer
	blobs    map[string][]byte
	index    []byte
}

// Digest is the manifest's digest, by which registries and containerd know
// the image ("sha256:...").
func (img *Image) Digest() string { return img.Manifest.Digest }

// Blob returns the content of one blob by digest.
func (img *Image) Blob(digest string) ([]byte, bool) {
	b, ok := img.blobs[digest]
	return b, ok
}

// Index is the archive's index.json.
func (img *Image) Index() []byte { return img.index }

type imageConfig struct {
	Created      string          `json:"created"`
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Config       containerConfig `json:"config"`
	RootFS       rootFS          `json:"rootfs"`
	History      []history       `json:"history"`
}

type containerConfig struct {
	User       string            `json:"User,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	Cmd        []string          `json:"Cmd,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type history struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// Build makes the image: the layer, the config, the manifest and the index.
func Build(s Spec) (*Image, error) {
	name, tag, err := splitName(s.Name)
	if err != nil {
		return nil, err
	}
	if s.OS == "" || s.Architecture == "" {
		return nil, errors.New("ociimage: OS and Architecture are required")
	}
	created := s.Created.UTC().Truncate(time.Second)

	rawLayer, err := layerTar(s.Entries, created)
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	// The gzip header's time and name stay zero: nothing varies.
	if _, err := zw.Write(rawLayer); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}

	img := &Image{Name: name + ":" + tag, blobs: map[string][]byte{}}
	img.DiffID = digestOf(rawLayer)
	img.Layer = img.add(MediaTypeLayer, gz.Bytes())

	ts := created.Format(time.RFC3339)
	cfg := imageConfig{
		Created:      ts,
		Architecture: s.Architecture,
		OS:           s.OS,
		Config: containerConfig{
			User: s.User, Env: s.Env, Entrypoint: s.Entrypoint, Cmd: s.Cmd,
			WorkingDir: s.WorkingDir, Labels: s.Labels,
		},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{img.DiffID}},
		History: []history{{Created: ts, CreatedBy: "chatr internal/ociimage: one layer of listed files"}},
	}
	cfgJSON, err := json.Marshal(cfg) // map keys are sorted: deterministic
	if err != nil {
		return nil, err
	}
	img.Config = img.add(MediaTypeConfig, cfgJSON)

	manJSON, err := json.Marshal(manifest{
		SchemaVersion: 2, MediaType: MediaTypeManifest,
		Config: img.Config, Layers: []Descriptor{img.Layer},
	})
	if err != nil {
		return nil, err
	}
	img.Manifest = img.add(MediaTypeManifest, manJSON)

	inIndex := img.Manifest
	inIndex.Platform = &Platform{Architecture: s.Architecture, OS: s.OS}
	inIndex.Annotations = map[string]string{
		AnnotationContainerdName: img.Name,
		AnnotationRefName:        tag,
	}
	if img.index, err = json.Marshal(index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: []Descriptor{inIndex}}); err != nil {
		return nil, err
	}
	return img, nil
}

func (img *Image) add(mediaType string, b []byte) Descriptor {
	d := digestOf(b)
	img.blobs[d] = b
	return Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// tagRE is the tag grammar of the OCI distribution specification.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// splitName splits "host/repo:tag" into the name and the tag (default
// "latest"); a digest reference cannot be built.
func splitName(ref string) (name, tag string, err error) {
	if ref == "" {
		return "", "", errors.New("ociimage: the image needs a name")
	}
	if strings.Contains(ref, "@") {
		return "", "", fmt.Errorf("ociimage: %q: a built image is named by a tag, not a digest", ref)
	}
	name, tag = ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i+1:]
	}
	if name == "" || strings.ContainsAny(name, " \t\n") || strings.ToLower(name) != name {
		return "", "", fmt.Errorf("ociimage: %q is not an image reference (lower-case name, optional :tag)", ref)
	}
	if !tagRE.MatchString(tag) {
		return "", "", fmt.Errorf("ociimage: %q: a tag is 1 to 128 letters, digits, _ . or -, not starting with . or -", ref)
	}
	return name, tag, nil
}

// layerTar writes the entries, with their missing parent directories, as a
// tar sorted by path, every header fixed but for what the entry says.
func layerTar(entries []Entry, mtime time.Time) ([]byte, error) {
	byPath := map[string]Entry{}
	for _, e := range entries {
		p := path.Clean("/" + e.Path)
		if p == "/" || !path.IsAbs(e.Path) {
			return nil, fmt.Errorf("ociimage: entry path %q must be absolute and not /", e.Path)
		}
		if _, dup := byPath[p]; dup {
			return nil, fmt.Errorf("ociimage: %s listed twice", p)
		}
		e.Path = p
		byPath[p] = e
	}
	for p, e := range byPath {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if parent, ok := byPath[d]; ok {
				if !parent.Mode.IsDir() {
					return nil, fmt.Errorf("ociimage: %s is inside %s, which is not a directory", e.Path, d)
				}
				continue
			}
			byPath[d] = Dir(d, 0o755)
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := byPath[p]
		h := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    tarMode(e.Mode),
			Uid:     e.UID,
			Gid:     e.GID,
			ModTime: mtime,
			Format:  tar.FormatPAX, // long names and ids never change the format mid-archive
		}
		switch {
		case e.Mode.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case e.Mode&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Target
		case e.Mode.IsRegular():
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.Data))
		default:
			return nil, fmt.Errorf("ociimage: %s: only files, directories and symbolic links (mode %v)", p, e.Mode)
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarMode converts fs.FileMode bits to tar's (the C mode bits), with the
// defaults 0644 for files and 0755 for directories and links.
func tarMode(m fs.FileMode) int64 {
	perm := int64(m.Perm())
	if perm == 0 {
		perm = 0o644
		if m.IsDir() || m&fs.ModeSymlink != 0 {
			perm = 0o755
		}
	}
	if m&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	return perm
}

// WriteArchive writes the image as an OCI image layout in one tar:
// oci-layout, index.json and blobs/sha256/<hex> for the manifest, the config
// and the layer, sorted, with fixed times, owners and modes, so the archive
// itself is as reproducible as the image.
func (img *Image) WriteArchive(w io.Writer, mtime time.Time) error {
	mtime = mtime.UTC().Truncate(time.Second)
	tw := tar.NewWriter(w)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: 0o644, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX})
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", img.index); err != nil {
		return err
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	digests := make([]string, 0, len(img.blobs))
	for d := range img.blobs {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	for _, d := range digests {
		if err := put("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), img.blobs[d]); err != nil {
			return err
		}
	}
	return tw.Close()
}
