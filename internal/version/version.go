// Package version reports what build of mcpgate is running. The variables are
// stamped at link time:
//
//	-ldflags "-X github.com/mcpgate/mcpgate/internal/version.Version=v0.1.0 ..."
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped by the linker; the defaults describe a development build.
var (
	Version = "dev"
	Commit  = ""
	Date    = ""
)

// Info describes the running build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"goVersion"`
}

// Get returns the build information, falling back to the VCS data the Go
// toolchain embeds when the linker stamped nothing.
func Get() Info {
	info := Info{Version: Version, Commit: Commit, Date: Date, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && info.Commit == "":
				info.Commit = s.Value
			case s.Key == "vcs.time" && info.Date == "":
				info.Date = s.Value
			}
		}
	}
	return info
}

func (i Info) String() string {
	commit, date := i.Commit, i.Date
	if commit == "" {
		commit = "unknown"
	}
	if date == "" {
		date = "unknown"
	}
	return fmt.Sprintf("mcpgate %s (commit %s, built %s, %s)", i.Version, commit, date, i.GoVersion)
}
