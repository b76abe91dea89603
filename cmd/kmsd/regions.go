package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/store"
)

// checkKeyRegions refuses to serve a store that holds keys in Regions cfg
// does not serve: kmsd refuses every request signed for such a Region, so
// those keys would silently become unreachable. cfg.AllowUnservedKeyRegions
// accepts it (the keys stay in the store, unused, until their Regions are
// served again), with a warning naming them. It reads only, and not the
// keys: the store counts those outside the served Regions along its index
// (store.Keys.CountKeysOutsideRegions), so that a start costs the same with
// a million keys as with none.
func checkKeyRegions(ctx context.Context, st store.Store, cfg config.Config, log *slog.Logger) error {
	if st == nil {
		return nil // no store yet: a first start
	}
	unserved, total, err := unservedKeys(ctx, st, cfg.Regions)
	if err != nil {
		return err
	}
	if total == 0 {
		return nil
	}
	regions := slices.Sorted(func(yield func(string) bool) {
		for r := range unserved {
			if !yield(r) {
				return
			}
		}
	})
	parts := make([]string, len(regions))
	for i, r := range regions {
		parts[i] = fmt.Sprintf("%s (%d)", r, unserved[r])
	}
	if cfg.AllowUnservedKeyRegions {
		log.Warn("the store holds keys in Regions kmsd does not serve (allow_unserved_key_regions): they cannot be used until their Regions are served again",
			"keys", total, "regions", strings.Join(parts, ", "))
		return nil
	}
	keys := "keys"
	if total == 1 {
		keys = "key"
	}
	return fmt.Errorf("the store holds %d %s in Regions this kmsd would not serve: %s (it serves %s). Their requests would be refused and the keys unusable. Add those Regions to regions (--regions, KMSD_REGIONS), or, to serve without them, start with --allow-unserved-key-regions (allow_unserved_key_regions: true); the keys stay in the store",
		total, keys, strings.Join(parts, ", "), servedList(cfg.Regions))
}

// unservedKeys counts the keys of st in Regions not in served, by Region,
// and in all.
func unservedKeys(ctx context.Context, st store.Keys, served []string) (byRegion map[string]int, total int, err error) {
	byRegion, err = st.CountKeysOutsideRegions(ctx, served)
	if err != nil {
		return nil, 0, fmt.Errorf("count the keys of the store outside the served Regions: %w", err)
	}
	for _, n := range byRegion {
		total += n
	}
	return byRegion, total, nil
}

// servedList names the served Regions, briefly when they are many.
func servedList(regions []string) string {
	if len(regions) > 6 {
		return fmt.Sprintf("%d Regions: %s, …", len(regions), strings.Join(regions[:6], ", "))
	}
	return strings.Join(regions, ", ")
}
