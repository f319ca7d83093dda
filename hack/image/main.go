// Command image builds a FROM-scratch container image from files on this
// machine and writes it as an OCI image archive, without a container engine:
// the archive loads with `ctr -n k8s.io images import` or `kind load
// image-archive`. `make image` builds chatr's two images with it; tests use
// it for tiny images of their own.
//
//	go run ./hack/image -name chatr.ai/chatr:v1 -out bin/images/chatr.tar \
//	    -file bin/images/rootfs/chatrd:/chatrd -entrypoint /chatrd \
//	    -ca-certs /etc/ssl/certs/ca-certificates.crt \
//	    -label org.opencontainers.image.revision=$(git rev-parse HEAD)
//
// By default the image runs as the nonroot user (65532:65532) and holds
// /etc/passwd, /etc/group and an empty /tmp (mode 1777) besides the listed
// files (-nonroot=false leaves them out). Every entry is owned by root with
// the time -created (default $SOURCE_DATE_EPOCH, else 0), so the same inputs
// give the same archive and digest. It prints "<name> <digest>".
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/chatr-ai/chatr/internal/ociimage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func run(args []string) error {
	var (
		name, out, user, workdir, caCerts, osName, arch, created string
		files, dirs, entrypoint, cmd, env, labels                list
		nonroot                                                  bool
	)
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.StringVar(&name, "name", "", "image name with tag, e.g. chatr.ai/chatr:v1 (required)")
	fs.StringVar(&out, "out", "", "OCI archive to write (required)")
	fs.Var(&files, "file", "hostpath:/dest[:mode] — a file of this machine at /dest in the image (repeatable); mode (octal) defaults to 0755 if the host file is executable, else 0644")
	fs.Var(&dirs, "dir", "/dest[:mode] — an empty directory (repeatable; default mode 0755)")
	fs.Var(&entrypoint, "entrypoint", "one element of the entrypoint (repeatable, in order)")
	fs.Var(&cmd, "cmd", "one element of the default arguments (repeatable, in order)")
	fs.Var(&env, "env", "KEY=value in the image's environment (repeatable)")
	fs.Var(&labels, "label", "key=value image label (repeatable)")
	fs.StringVar(&user, "user", ociimage.NonRootUser, "the user the image runs as")
	fs.StringVar(&workdir, "workdir", "", "working directory")
	fs.BoolVar(&nonroot, "nonroot", true, "add /etc/passwd and /etc/group naming the nonroot user (65532) and an empty /tmp (1777)")
	fs.StringVar(&caCerts, "ca-certs", "", "a CA bundle of this machine to put at "+ociimage.CACertsPath+" (e.g. that path itself)")
	fs.StringVar(&osName, "os", "linux", "the image's OS")
	fs.StringVar(&arch, "arch", runtime.GOARCH, "the image's architecture (that of the binaries)")
	fs.StringVar(&created, "created", os.Getenv("SOURCE_DATE_EPOCH"), "Unix seconds: the time of every file and the config's created (default $SOURCE_DATE_EPOCH, else 0)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if name == "" || out == "" {
		return errors.New("-name and -out are required")
	}
	var when time.Time
	if created == "" {
		when = time.Unix(0, 0)
	} else {
		secs, err := strconv.ParseInt(created, 10, 64)
		if err != nil {
			return fmt.Errorf("-created %q: not Unix seconds", created)
		}
		when = time.Unix(secs, 0)
	}

	spec := ociimage.Spec{
		Name: name, Entrypoint: entrypoint, Cmd: cmd, Env: env, User: user, WorkingDir: workdir,
		OS: osName, Architecture: arch, Created: when,
	}
	if nonroot {
		spec.Entries = append(spec.Entries, ociimage.NonRootEntries()...)
	}
	if caCerts != "" {
		files = append(files, caCerts+":"+ociimage.CACertsPath+":0644")
	}
	for _, f := range files {
		e, err := fileEntry(f)
		if err != nil {
			return err
		}
		spec.Entries = append(spec.Entries, e)
	}
	for _, d := range dirs {
		dest, mode, err := splitMode(d, 0o755)
		if err != nil {
			return fmt.Errorf("-dir %q: %w", d, err)
		}
		spec.Entries = append(spec.Entries, ociimage.Dir(dest, mode))
	}
	if len(labels) > 0 {
		spec.Labels = map[string]string{}
		for _, l := range labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" {
				return fmt.Errorf("-label %q: want key=value", l)
			}
			spec.Labels[k] = v
		}
	}

	img, err := ociimage.Build(spec)
	if err != nil {
		return err
	}
	if err := write(out, img, when); err != nil {
		return err
	}
	fmt.Println(img.Name, img.Digest())
	return nil
}

// fileEntry reads "hostpath:/dest[:mode]".
func fileEntry(arg string) (ociimage.Entry, error) {
	host, rest, ok := strings.Cut(arg, ":")
	if !ok || host == "" {
		return ociimage.Entry{}, fmt.Errorf("-file %q: want hostpath:/dest[:mode]", arg)
	}
	st, err := os.Stat(host)
	if err != nil {
		return ociimage.Entry{}, fmt.Errorf("-file %q: %w", arg, err)
	}
	if !st.Mode().IsRegular() {
		return ociimage.Entry{}, fmt.Errorf("-file %q: %s is not a regular file", arg, host)
	}
	// Only the executable bit of the host file counts, so the umask of the
	// machine that built it does not change the image.
	def := fs.FileMode(0o644)
	if st.Mode().Perm()&0o111 != 0 {
		def = 0o755
	}
	dest, mode, err := splitMode(rest, def)
	if err != nil {
		return ociimage.Entry{}, fmt.Errorf("-file %q: %w", arg, err)
	}
	data, err := os.ReadFile(host)
	if err != nil {
		return ociimage.Entry{}, err
	}
	return ociimage.File(dest, mode, data), nil
}

// splitMode reads "/dest[:octal mode]".
func splitMode(s string, def fs.FileMode) (string, fs.FileMode, error) {
	dest, m, hasMode := strings.Cut(s, ":")
	if !strings.HasPrefix(dest, "/") {
		return "", 0, fmt.Errorf("destination %q must be absolute", dest)
	}
	if !hasMode {
		return dest, def, nil
	}
	n, err := strconv.ParseUint(m, 8, 32)
	if err != nil || n > 0o7777 {
		return "", 0, fmt.Errorf("mode %q: want octal, e.g. 0755 or 1777", m)
	}
	mode := fs.FileMode(n & 0o777)
	if n&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	if n&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if n&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	return dest, mode, nil
}

// write writes the archive next to out and renames it into place, so a
// failed build never leaves half an archive under the final name.
func write(out string, img *ociimage.Image, mtime time.Time) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(out), ".image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := img.WriteArchive(f, mtime); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), out)
}
