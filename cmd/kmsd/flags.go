package main

import (
	"flag"

	"github.com/kmsd/kmsd/internal/config"
)

// dataDirFlags are the --config and --data-dir flags that the subcommands
// working on a data folder (iam, root, init, unseal) share.
type dataDirFlags struct {
	configFile, dataDir *string
}

func addDataDirFlags(fs *flag.FlagSet) dataDirFlags {
	return dataDirFlags{
		configFile: fs.String("config", "", "YAML configuration file (env KMSD_CONFIG)"),
		dataDir:    fs.String("data-dir", "", "data folder (env KMSD_DATA_DIR)"),
	}
}

// load resolves the configuration as kmsd serve would, with these flags.
func (d dataDirFlags) load(getenv func(string) string) (config.Config, error) {
	var args []string
	if *d.configFile != "" {
		args = append(args, "--config", *d.configFile)
	}
	if *d.dataDir != "" {
		args = append(args, "--data-dir", *d.dataDir)
	}
	return config.Load(args, getenv)
}
