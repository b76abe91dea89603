package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// buildVersion describes the running binary from its build information:
// the module version ("(devel)" for a build from a working tree, a tag or
// a pseudo-version for go install), the VCS revision and time, and
// whether the working tree had changes. A binary built without module
// information (go run of a single file) says so.
func buildVersion(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "kmsd (no build information) " + runtime.Version()
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "kmsd %s", v)
	if bi.Main.Path != "" {
		fmt.Fprintf(&b, " (%s)", bi.Main.Path)
	}
	if rev != "" {
		fmt.Fprintf(&b, " revision %s", rev)
		if when != "" {
			fmt.Fprintf(&b, " of %s", when)
		}
		if modified {
			b.WriteString(" with local changes")
		}
	} else {
		b.WriteString(" (no VCS revision recorded)")
	}
	fmt.Fprintf(&b, " %s %s/%s", bi.GoVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// versionMain runs "kmsd version" and "kmsd --version".
func versionMain(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(stdout, "usage: kmsd version (or kmsd --version): print the module version and VCS revision")
			return nil
		}
		return fmt.Errorf("version: unexpected arguments %v", args)
	}
	fmt.Fprintln(stdout, buildVersion(debug.ReadBuildInfo()))
	return nil
}
