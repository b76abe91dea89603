package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// commandSpec is one entry of kmsd's command table: a command, its
// subcommands (for the groups: iam, root, audit, store, import) and a
// one-line summary. The completion scripts are generated from it.
type commandSpec struct {
	name    string
	subs    []string
	summary string
}

// commandTable lists every command that dispatch runs (main_test.go checks
// that each one answers -h).
var commandTable = []commandSpec{
	{name: "serve", summary: "start kmsd"},
	{name: "init", summary: "create a sealed root of trust"},
	{name: "unseal", summary: "unseal a sealed kmsd"},
	{name: "encrypt", summary: "envelope-encrypt files or streams"},
	{name: "decrypt", summary: "envelope-decrypt files or streams"},
	{name: "iam", subs: []string{"create-access-key", "list-access-keys", "check"}, summary: "access keys and identities"},
	{name: "audit", subs: []string{"verify", "accept-reset", "drop-kept"}, summary: "verify or accept the audit log"},
	{name: "store", subs: []string{"check"}, summary: "check the store"},
	{name: "root", subs: []string{"rotate", "migrate", "status", "retire"}, summary: "manage the root of trust"},
	{name: "backup", summary: "snapshot the store"},
	{name: "restore", summary: "load a snapshot into an empty store"},
	{name: "bench", summary: "load-test a kmsd"},
	{name: "import", subs: []string{"local-kms"}, summary: "convert an emulator's seed file"},
	{name: "completion", subs: []string{"bash", "zsh", "fish"}, summary: "print a shell completion script"},
	{name: "version", summary: "print the version"},
	{name: "help", summary: "list the commands"},
}

// flagLineRE matches a flag in the usage text the flag package prints.
var flagLineRE = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9-]*)`)

// commandFlags returns the flags of "kmsd ARGS…", read from the usage its
// flag set prints for -h (the one description of each command's flags).
func commandFlags(ctx context.Context, args []string, getenv func(string) string) []string {
	var out bytes.Buffer
	dispatch(ctx, append(slices.Clone(args), "-h"), &out, &out, getenv)
	var flags []string
	for _, m := range flagLineRE.FindAllStringSubmatch(out.String(), -1) {
		if f := "--" + m[1]; !slices.Contains(flags, f) {
			flags = append(flags, f)
		}
	}
	slices.Sort(flags)
	return flags
}

// completionWords is what the scripts complete: the commands, the
// subcommands of each group, and the flags of each command or
// subcommand (keyed "cmd" or "cmd sub").
type completionWords struct {
	commands []string
	subs     map[string][]string
	flags    map[string][]string
}

func gatherCompletion(ctx context.Context, getenv func(string) string) completionWords {
	w := completionWords{subs: map[string][]string{}, flags: map[string][]string{}}
	for _, c := range commandTable {
		w.commands = append(w.commands, c.name)
		switch {
		case len(c.subs) > 0:
			w.subs[c.name] = c.subs
			if c.name == "completion" {
				continue
			}
			for _, s := range c.subs {
				w.flags[c.name+" "+s] = commandFlags(ctx, []string{c.name, s}, getenv)
			}
		case c.name != "help" && c.name != "version":
			w.flags[c.name] = commandFlags(ctx, []string{c.name}, getenv)
		}
	}
	return w
}

// completionMain runs "kmsd completion bash|zsh|fish".
func completionMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	const usage = `usage: kmsd completion bash|zsh|fish

Prints a completion script for the shell, completing commands, subcommands
and flags:

  bash:  source <(kmsd completion bash)        (or save it in /etc/bash_completion.d/kmsd)
  zsh:   kmsd completion zsh > "${fpath[1]}/_kmsd"
  fish:  kmsd completion fish > ~/.config/fish/completions/kmsd.fish
`
	if len(args) != 1 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("completion: name one shell: bash, zsh or fish")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	// The flags are read without the environment: a KMSD_* variable
	// changes no flag's name.
	w := gatherCompletion(ctx, func(string) string { return "" })
	switch args[0] {
	case "bash":
		return writeBash(stdout, w)
	case "zsh":
		return writeZsh(stdout, w)
	case "fish":
		return writeFish(stdout, w)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("completion: unknown shell %q (bash, zsh or fish)", args[0])
}

func sortedKeys(m map[string][]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func writeBash(out io.Writer, w completionWords) error {
	var b strings.Builder
	b.WriteString("# bash completion for kmsd (kmsd completion bash)\n_kmsd() {\n")
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]} sub=${COMP_WORDS[2]}\n")
	fmt.Fprintf(&b, "\tif ((COMP_CWORD == 1)); then\n\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\t\treturn\n\tfi\n", strings.Join(append(slices.Clone(w.commands), "--version", "--help"), " "))
	b.WriteString("\tlocal words=\n\tcase \"$cmd\" in\n")
	for _, c := range sortedKeys(w.subs) {
		fmt.Fprintf(&b, "\t%s)\n\t\tif ((COMP_CWORD == 2)); then\n\t\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\t\t\treturn\n\t\tfi\n\t\tcase \"$sub\" in\n", c, strings.Join(w.subs[c], " "))
		for _, s := range w.subs[c] {
			if fl := w.flags[c+" "+s]; len(fl) > 0 {
				fmt.Fprintf(&b, "\t\t%s) words=%q ;;\n", s, strings.Join(fl, " "))
			}
		}
		b.WriteString("\t\tesac\n\t\t;;\n")
	}
	for _, c := range sortedKeys(w.flags) {
		if !strings.Contains(c, " ") {
			fmt.Fprintf(&b, "\t%s) words=%q ;;\n", c, strings.Join(w.flags[c], " "))
		}
	}
	b.WriteString("\tesac\n\tif [[ $cur == -* ]]; then\n\t\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n\telse\n\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n\tfi\n}\ncomplete -o filenames -F _kmsd kmsd\n")
	_, err := io.WriteString(out, b.String())
	return err
}

func writeZsh(out io.Writer, w completionWords) error {
	var b strings.Builder
	b.WriteString("#compdef kmsd\n# zsh completion for kmsd (kmsd completion zsh)\n_kmsd() {\n\tlocal -a words_\n")
	fmt.Fprintf(&b, "\tif (( CURRENT == 2 )); then\n\t\tcompadd -- %s --version --help\n\t\treturn\n\tfi\n", strings.Join(w.commands, " "))
	b.WriteString("\tcase ${words[2]} in\n")
	for _, c := range sortedKeys(w.subs) {
		fmt.Fprintf(&b, "\t%s)\n\t\tif (( CURRENT == 3 )); then\n\t\t\tcompadd -- %s\n\t\t\treturn\n\t\tfi\n\t\tcase ${words[3]} in\n", c, strings.Join(w.subs[c], " "))
		for _, s := range w.subs[c] {
			if fl := w.flags[c+" "+s]; len(fl) > 0 {
				fmt.Fprintf(&b, "\t\t%s) words_=(%s) ;;\n", s, strings.Join(fl, " "))
			}
		}
		b.WriteString("\t\tesac\n\t\t;;\n")
	}
	for _, c := range sortedKeys(w.flags) {
		if !strings.Contains(c, " ") {
			fmt.Fprintf(&b, "\t%s) words_=(%s) ;;\n", c, strings.Join(w.flags[c], " "))
		}
	}
	b.WriteString("\tesac\n\tif [[ $PREFIX == -* ]]; then\n\t\tcompadd -- $words_\n\telse\n\t\t_files\n\tfi\n}\n_kmsd \"$@\"\n")
	_, err := io.WriteString(out, b.String())
	return err
}

func writeFish(out io.Writer, w completionWords) error {
	var b strings.Builder
	b.WriteString("# fish completion for kmsd (kmsd completion fish)\ncomplete -c kmsd -f\n")
	fmt.Fprintf(&b, "complete -c kmsd -n '__fish_use_subcommand' -a '%s'\n", strings.Join(w.commands, " "))
	b.WriteString("complete -c kmsd -n '__fish_use_subcommand' -l version -d 'print the version'\n")
	for _, c := range commandTable {
		for _, s := range c.subs {
			fmt.Fprintf(&b, "complete -c kmsd -n '__fish_seen_subcommand_from %s; and not __fish_seen_subcommand_from %s' -a '%s'\n", c.name, strings.Join(c.subs, " "), s)
		}
	}
	for _, k := range sortedKeys(w.flags) {
		cond := "__fish_seen_subcommand_from " + k
		if c, s, ok := strings.Cut(k, " "); ok {
			cond = "__fish_seen_subcommand_from " + c + "; and __fish_seen_subcommand_from " + s
		}
		for _, f := range w.flags[k] {
			fmt.Fprintf(&b, "complete -c kmsd -n '%s' -l %s -r -F\n", cond, strings.TrimPrefix(f, "--"))
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}
