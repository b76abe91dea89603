package main

import (
	"fmt"
	"os"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/hsmcluster"
)

// hsmClusters builds the clusters custom key stores connect to from the
// hsm_clusters section, reading each trust anchor file.
func hsmClusters(cfg config.Config) (*hsmcluster.Clusters, error) {
	cs := make([]hsmcluster.Cluster, 0, len(cfg.HSMClusters))
	for _, h := range cfg.HSMClusters {
		cl := hsmcluster.Cluster{ID: h.ID, Module: h.Module, TokenLabel: h.TokenLabel, Sessions: h.Sessions}
		if h.TrustAnchorFile != "" {
			b, err := os.ReadFile(h.TrustAnchorFile)
			if err != nil {
				return nil, fmt.Errorf("hsm_clusters %s: trust_anchor_file: %w", h.ID, err)
			}
			cl.TrustAnchor = string(b)
		}
		cs = append(cs, cl)
	}
	return hsmcluster.New(cs)
}
