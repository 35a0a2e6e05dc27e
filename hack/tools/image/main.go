// Command mkimage writes a container image as a tarball that `ctr images
// import` loads, without a Docker engine or a registry. The image is one layer
// of the given files, optionally over a base equivalent to
// gcr.io/distroless/static:nonroot (CA certificates, /etc/passwd and
// /etc/group with root and nonroot (65532), /tmp and the nonroot home; see
// baseFiles for the exact difference).
//
//	mkimage -o mcpgate.tar -tag mcpgate.local/mcpgate:dev -base \
//	  -file /path/to/mcpgate:/usr/local/bin/mcpgate -entrypoint /usr/local/bin/mcpgate \
//	  -cmd manager -user 65532:65532
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var opts Options
	var files, entry, cmd, env listFlag
	flag.StringVar(&opts.Output, "o", "", "the image tarball to write")
	flag.StringVar(&opts.Tag, "tag", "", "the image reference to record, such as mcpgate.local/mcpgate:dev")
	flag.BoolVar(&opts.Base, "base", false, "add the distroless-like base (CA certificates, passwd, group, /tmp)")
	flag.StringVar(&opts.CACerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "the CA bundle the base ships")
	flag.StringVar(&opts.User, "user", "", "the image's user, such as 65532:65532")
	flag.StringVar(&opts.WorkDir, "workdir", "", "the image's working directory")
	flag.Var(&files, "file", "SRC:DST[:MODE] a host file and its path in the image (repeatable)")
	flag.Var(&entry, "entrypoint", "one entrypoint argument (repeatable)")
	flag.Var(&cmd, "cmd", "one cmd argument (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE (repeatable)")
	flag.Parse()
	opts.Entrypoint, opts.Cmd, opts.Env = entry, cmd, env
	for _, f := range files {
		file, err := parseFileFlag(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mkimage:", err)
			os.Exit(2)
		}
		opts.Files = append(opts.Files, file)
	}
	if opts.Output == "" || opts.Tag == "" {
		fmt.Fprintln(os.Stderr, "mkimage: -o and -tag are required")
		os.Exit(2)
	}
	if err := Write(opts); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}
