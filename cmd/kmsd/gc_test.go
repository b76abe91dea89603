package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/kmsd/kmsd/internal/config"
)

func TestSetGCPercent(t *testing.T) {
	// SetGCPercent is process-wide: put back what the test binary had.
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name    string
		setting int
		gogc    string
		want    int // what setGCPercent returns
		applied int // what the runtime has afterwards (-1: untouched)
	}{
		{name: "default", want: defaultGCPercent, applied: defaultGCPercent},
		{name: "setting", setting: 250, want: 250, applied: 250},
		{name: "setting over GOGC", setting: 250, gogc: "50", want: 250, applied: 250},
		{name: "GOGC kept", gogc: "50", want: 50, applied: -1},
		{name: "GOGC off kept", gogc: "off", want: -1, applied: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(123)
			var cfg config.Config
			cfg.GCPercent = tc.setting
			got := setGCPercent(cfg, func(k string) string {
				if k == "GOGC" {
					return tc.gogc
				}
				return ""
			}, log)
			if got != tc.want {
				t.Errorf("setGCPercent = %d; want %d", got, tc.want)
			}
			now := debug.SetGCPercent(123)
			want := tc.applied
			if want == -1 {
				want = 123 // left alone
			}
			if now != want {
				t.Errorf("runtime GC percent %d; want %d", now, want)
			}
		})
	}
}
