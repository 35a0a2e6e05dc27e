package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestBaseDiffersFromDistrolessOnlyAsStated: the -base layer holds exactly
// what distroless/static:nonroot holds that a static Go binary uses (CA
// bundle, passwd and group with nonroot 65532, its home, /root, /tmp), and
// none of what the package doc says it leaves out: tzdata, nsswitch.conf,
// os-release and Debian's package metadata.
func TestBaseDiffersFromDistrolessOnlyAsStated(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "app")
	if err := os.WriteFile(bin, []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.tar")
	err := Write(Options{
		Output: out, Tag: "mcpgate.local/test:1", Base: true, CACerts: ca, User: "65532:65532",
		Files:      []File{{Src: bin, Dst: "/usr/local/bin/app", Mode: 0o755}},
		Entrypoint: []string{"/usr/local/bin/app"},
	})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}

	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatalf("read image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/app"}) {
		t.Errorf("config: user %q entrypoint %q", cf.Config.User, cf.Config.Entrypoint)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	entries := map[string]*tar.Header{}
	bodies := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		entries[name] = h
		b, _ := io.ReadAll(tr)
		bodies[name] = string(b)
	}

	want := []string{
		"etc", "etc/ssl", "etc/ssl/certs", "etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group",
		"home", "home/nonroot", "root", "tmp", "usr", "usr/local", "usr/local/bin", "usr/local/bin/app",
	}
	var got []string
	for name := range entries {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("layer entries:\n got %q\nwant %q", got, want)
	}
	// What distroless has and the local base leaves out.
	for _, absent := range []string{"usr/share/zoneinfo", "etc/nsswitch.conf", "etc/os-release", "var/lib/dpkg"} {
		if _, ok := entries[absent]; ok {
			t.Errorf("%s is in the base; the stated difference says it is not", absent)
		}
	}
	if !strings.Contains(bodies["etc/passwd"], "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks nonroot 65532:\n%s", bodies["etc/passwd"])
	}
	if h := entries["home/nonroot"]; h == nil || h.Uid != NonrootUID {
		t.Errorf("/home/nonroot is not owned by %d", NonrootUID)
	}
	if h := entries["tmp"]; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp is not world-writable with the sticky bit")
	}
}
