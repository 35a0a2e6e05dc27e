package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Options describe one image.
type Options struct {
	Output     string
	Tag        string
	Base       bool
	CACerts    string
	User       string
	WorkDir    string
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
}

// File is a host file and where it goes in the image.
type File struct {
	Src, Dst string
	Mode     int64
}

// NonrootUID is distroless's nonroot user and group.
const NonrootUID = 65532

// epoch is every entry's modification time, so the same inputs make the same
// image digest.
var epoch = time.Unix(0, 0).UTC()

func parseFileFlag(v string) (File, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || !path.IsAbs(parts[1]) {
		return File{}, fmt.Errorf("-file %q: want SRC:/ABS/DST[:MODE]", v)
	}
	f := File{Src: parts[0], Dst: parts[1], Mode: 0o755}
	if len(parts) == 3 {
		m, err := strconv.ParseInt(parts[2], 8, 32)
		if err != nil {
			return File{}, fmt.Errorf("-file %q: mode: %w", v, err)
		}
		f.Mode = m
	}
	return f, nil
}

// entry is one tar entry of the layer.
type entry struct {
	hdr  tar.Header
	body []byte
}

// baseFiles is the distroless-like base: what gcr.io/distroless/static:nonroot
// holds that a static Go binary needs. It differs from distroless in what it
// leaves out: no tzdata (/usr/share/zoneinfo), no /etc/nsswitch.conf, no
// /etc/os-release and no Debian package metadata (/var/lib/dpkg); and the CA
// bundle is the build machine's.
func baseFiles(caCerts string) ([]entry, error) {
	ca, err := os.ReadFile(caCerts)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group := "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
	return []entry{
		dir("etc", 0o755, 0),
		dir("etc/ssl", 0o755, 0),
		dir("etc/ssl/certs", 0o755, 0),
		file("etc/ssl/certs/ca-certificates.crt", 0o644, ca),
		file("etc/passwd", 0o644, []byte(passwd)),
		file("etc/group", 0o644, []byte(group)),
		dir("home", 0o755, 0),
		dir("home/nonroot", 0o700, NonrootUID),
		dir("root", 0o700, 0),
		dir("tmp", 0o1777, 0),
	}, nil
}

func dir(name string, mode int64, owner int) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: owner, Gid: owner, ModTime: epoch}}
}

func file(name string, mode int64, body []byte) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: epoch}, body: body}
}

// layer builds one uncompressed tar of the entries, parents first, each
// directory once.
func layer(entries []entry) ([]byte, error) {
	seen := map[string]bool{}
	var all []entry
	for _, e := range entries {
		if e.hdr.Typeflag == tar.TypeDir {
			seen[strings.TrimSuffix(e.hdr.Name, "/")] = true
		}
	}
	for _, e := range entries {
		for p := path.Dir(strings.TrimSuffix(e.hdr.Name, "/")); p != "." && !seen[p]; p = path.Dir(p) {
			seen[p] = true
			all = append(all, dir(p, 0o755, 0))
		}
		all = append(all, e)
	}
	sort.SliceStable(all, func(i, j int) bool {
		return strings.Count(strings.TrimSuffix(all[i].hdr.Name, "/"), "/") < strings.Count(strings.TrimSuffix(all[j].hdr.Name, "/"), "/")
	})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range all {
		h := e.hdr
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write builds the image and writes it as a tarball.
func Write(o Options) error {
	ref, err := name.NewTag(o.Tag)
	if err != nil {
		return fmt.Errorf("tag: %w", err)
	}
	var entries []entry
	if o.Base {
		base, err := baseFiles(o.CACerts)
		if err != nil {
			return err
		}
		entries = append(entries, base...)
	}
	for _, f := range o.Files {
		body, err := os.ReadFile(f.Src)
		if err != nil {
			return fmt.Errorf("read %s: %w", f.Src, err)
		}
		entries = append(entries, file(strings.TrimPrefix(f.Dst, "/"), f.Mode, body))
	}
	tarBytes, err := layer(entries)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	})
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "mkimage", Created: v1.Time{Time: epoch}}})
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	if a := os.Getenv("GOARCH"); a != "" {
		cf.Architecture = a
	}
	cf.Created = v1.Time{Time: epoch}
	cf.Config.User = o.User
	cf.Config.WorkingDir = o.WorkDir
	cf.Config.Entrypoint = o.Entrypoint
	cf.Config.Cmd = o.Cmd
	cf.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, o.Env...)
	if o.Base {
		cf.Config.Env = append(cf.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	tmp := o.Output + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", o.Output, err)
	}
	return os.Rename(tmp, o.Output)
}
