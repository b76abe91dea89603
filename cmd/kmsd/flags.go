package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/kmsd/kmsd/internal/config"
)

// dataDirFlags are the --config and --data-dir flags that the subcommands
// working on a data folder (iam, root, init, unseal, backup, restore)
// share, and the --store and --store-dsn flags of those that add them.
type dataDirFlags struct {
	configFile, dataDir *string
	// storeType and storeDSN are nil unless addStoreFlags added them.
	storeType, storeDSN *string
}

func addDataDirFlags(fs *flag.FlagSet) dataDirFlags {
	return dataDirFlags{
		configFile: fs.String("config", "", "YAML configuration file (env KMSD_CONFIG)"),
		dataDir:    fs.String("data-dir", "", "data folder (env KMSD_DATA_DIR)"),
	}
}

// addStoreFlags adds --store and --store-dsn, which kmsd serve has too, for
// a command whose purpose is to name a store (backup, restore); the others
// take the store from the configuration file and the environment only.
func (d *dataDirFlags) addStoreFlags(fs *flag.FlagSet) {
	d.storeType = fs.String("store", "", "store type: sqlite or postgres (env KMSD_STORE; default sqlite)")
	d.storeDSN = fs.String("store-dsn", "", "PostgreSQL connection string of a postgres store (env KMSD_STORE_DSN; a password in it shows in the process list: prefer the environment or the YAML file)")
}

// load resolves the configuration as kmsd serve would, with these flags.
func (d dataDirFlags) load(getenv func(string) string) (config.Config, error) {
	var args []string
	for _, f := range []struct {
		name string
		v    *string
	}{{"--config", d.configFile}, {"--data-dir", d.dataDir}, {"--store", d.storeType}, {"--store-dsn", d.storeDSN}} {
		if f.v != nil && *f.v != "" {
			args = append(args, f.name, *f.v)
		}
	}
	cfg, err := config.Load(args, getenv)
	if err == nil && cfg.DataDir == "" {
		err = errors.New("the configuration is in dev mode without a data folder (a temporary one, gone with the kmsd that used it): name the folder with --data-dir")
	}
	return cfg, err
}

// command is one "kmsd GROUP NAME [flags]" of a group of commands on a
// data folder (iam, root): NAME, the arguments after it, and the flag set
// of "GROUP NAME" with the data-folder flags, to which the command adds
// its own.
type command struct {
	name  string
	args  []string
	flags *flag.FlagSet
	dirs  dataDirFlags
}

// newCommand takes the command name from args, one of names. Without
// one, or with an unknown one, it prints usage and fails; for help it
// prints usage to stdout and returns a nil command and no error.
func newCommand(group, usage string, names, args []string, stdout, stderr io.Writer) (*command, error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return nil, fmt.Errorf("kmsd %s: no command given", group)
	}
	switch name := args[0]; {
	case name == "help" || name == "-h" || name == "--help":
		fmt.Fprint(stdout, usage)
		return nil, nil
	case !slices.Contains(names, name):
		fmt.Fprint(stderr, usage)
		return nil, fmt.Errorf("kmsd %s: unknown command %q", group, name)
	}
	fs := flag.NewFlagSet(group+" "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &command{name: args[0], args: args[1:], flags: fs, dirs: addDataDirFlags(fs)}, nil
}
