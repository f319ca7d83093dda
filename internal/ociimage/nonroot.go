package ociimage

import (
	"fmt"
	"io/fs"
)

// NonRootUID and NonRootGID are the unprivileged user and group chatr's
// images run as: the same numbers as the distroless "nonroot" user, so
// policies written for those images (runAsUser: 65532) fit ours.
const (
	NonRootUID  = 65532
	NonRootGID  = 65532
	NonRootName = "nonroot"
)

// Passwd and Group are the /etc/passwd and /etc/group of an image that runs
// as NonRootUID: root and nonroot, nothing else. The nonroot user's home is
// /tmp, the one writable directory such images have. The Dockerfile writes
// the same two files (a test compares them).
var (
	Passwd = fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/tmp:/sbin/nologin\n",
		NonRootName, NonRootUID, NonRootGID, NonRootName)
	Group = fmt.Sprintf("root:x:0:\n%s:x:%d:\n", NonRootName, NonRootGID)
)

// NonRootUser is the config's User for such images ("65532:65532"),
// numeric so that runAsNonRoot can check it without reading /etc/passwd.
var NonRootUser = fmt.Sprintf("%d:%d", NonRootUID, NonRootGID)

// NonRootEntries are what every chatr image holds besides its binary:
// /etc/passwd and /etc/group naming the nonroot user, and /tmp, an empty
// directory anyone may write to (mode 1777), as the mount point of the
// emptyDir the operator gives pods whose root file system is read-only.
func NonRootEntries() []Entry {
	return []Entry{
		File("/etc/passwd", 0o644, []byte(Passwd)),
		File("/etc/group", 0o644, []byte(Group)),
		Dir("/tmp", 0o777|fs.ModeSticky),
	}
}

// CACertsPath is where Go's crypto/x509 (and most TLS stacks on Linux)
// look for the system's CA bundle first.
const CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
