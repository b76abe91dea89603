package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestHelpExitsZero runs -h and --help for the top level and every
// command and subcommand of the command table: each prints its usage and
// is no error (kmsd exits 0).
func TestHelpExitsZero(t *testing.T) {
	runs := [][]string{{"-h"}, {"--help"}, {"help"}}
	for _, c := range commandTable {
		runs = append(runs, []string{c.name, "-h"}, []string{c.name, "--help"})
		for _, s := range c.subs {
			if c.name == "completion" {
				continue // "completion bash" prints a script, not usage
			}
			runs = append(runs, []string{c.name, s, "-h"}, []string{c.name, s, "--help"})
		}
	}
	noEnv := func(string) string { return "" }
	for _, args := range runs {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // nothing may start serving or wait
			if err := run(ctx, args, &out, &errOut, noEnv); err != nil {
				t.Fatalf("kmsd %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
			}
			if out.Len()+errOut.Len() == 0 {
				t.Errorf("kmsd %s printed no usage", strings.Join(args, " "))
			}
		})
	}
}

func TestBuildVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want []string
	}{
		{"no build info", nil, false, []string{"kmsd (no build information)"}},
		{"tagged, clean", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/kmsd/kmsd", Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "false"}}},
			true, []string{"kmsd v1.2.3 (github.com/kmsd/kmsd) revision 0123abcd of 2026-01-02T03:04:05Z go1.26.0"}},
		{"working tree with changes", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/kmsd/kmsd", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "feedface"}, {Key: "vcs.modified", Value: "true"}}},
			true, []string{"kmsd (devel)", "revision feedface with local changes"}},
		{"no vcs", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/kmsd/kmsd"}},
			true, []string{"kmsd (devel)", "(no VCS revision recorded)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := buildVersion(tc.bi, tc.ok)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("buildVersion = %q, lacks %q", got, w)
				}
			}
		})
	}
}

func TestVersionCommands(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &bytes.Buffer{}, os.Getenv); err != nil {
			t.Fatalf("kmsd %s: %v", args[0], err)
		}
		if !strings.HasPrefix(out.String(), "kmsd ") || !strings.Contains(out.String(), "github.com/kmsd/kmsd") {
			t.Errorf("kmsd %s printed %q", args[0], out.String())
		}
	}
	if err := run(context.Background(), []string{"version", "extra"}, &bytes.Buffer{}, &bytes.Buffer{}, os.Getenv); err == nil {
		t.Error("kmsd version extra: no error")
	}
}

// TestCompletionBash runs the bash script in bash and asks it for
// completions, as bash's programmable completion would.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	var script bytes.Buffer
	if err := run(context.Background(), []string{"completion", "bash"}, &script, &bytes.Buffer{}, os.Getenv); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "kmsd.bash")
	if err := os.WriteFile(file, script.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string // the words typed; the last one is completed
		want []string
		not  []string
	}{
		{"kmsd se", []string{"serve"}, []string{"init"}},
		{"kmsd --ver", []string{"--version"}, nil},
		{"kmsd iam cr", []string{"create-access-key"}, []string{"check"}},
		{"kmsd serve --data", []string{"--data-dir"}, []string{"--user"}},
		{"kmsd serve --pprof", []string{"--pprof-listen"}, nil},
		{"kmsd iam create-access-key --u", []string{"--user"}, nil},
		{"kmsd completion z", []string{"zsh"}, []string{"bash"}},
	} {
		t.Run(tc.line, func(t *testing.T) {
			words := strings.Fields(tc.line)
			prog := `source "$1"; COMP_WORDS=(` + strings.Join(words, " ") + `); COMP_CWORD=` + strconv.Itoa(len(words)-1) + `; _kmsd; printf '%s\n' "${COMPREPLY[@]}"`
			out, err := exec.Command(bash, "-c", prog, "bash", file).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			got := strings.Fields(string(out))
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("completions of %q are %v, lack %s", tc.line, got, w)
				}
			}
			for _, w := range tc.not {
				if slices.Contains(got, w) {
					t.Errorf("completions of %q are %v, hold %s", tc.line, got, w)
				}
			}
		})
	}
}

// TestCompletionScripts checks the zsh and fish scripts name every
// command and the flags of each (the shells are not installed here; bash
// runs its script in TestCompletionBash).
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"zsh", "fish"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"completion", shell}, &out, &bytes.Buffer{}, os.Getenv); err != nil {
			t.Fatal(err)
		}
		for _, c := range commandTable {
			if !strings.Contains(out.String(), c.name) {
				t.Errorf("%s script lacks command %s", shell, c.name)
			}
		}
		for _, f := range []string{"data-dir", "pprof-listen", "passphrase-file"} {
			if !strings.Contains(out.String(), f) {
				t.Errorf("%s script lacks flag %s", shell, f)
			}
		}
	}
	if err := run(context.Background(), []string{"completion", "tcsh"}, &bytes.Buffer{}, &bytes.Buffer{}, os.Getenv); err == nil {
		t.Error("completion for an unknown shell: no error")
	}
}
