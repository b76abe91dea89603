package audit

import (
	"context"
	"testing"
)

// BenchmarkAppendParallel measures durable appends from many concurrent
// requests, with group commit (every batch one write and one fsync) and
// with one fsync per record (batches of one, for comparison), in the same
// run. It reports records/s and records per fsync. The temporary
// directory must be on a real disk for the numbers to mean anything
// (TMPDIR).
func BenchmarkAppendParallel(b *testing.B) {
	for _, bc := range []struct {
		name     string
		maxBatch int
	}{
		{"group-commit", 0},
		{"fsync-per-record", 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			opts := Options{DigestEvery: DefaultDigestEvery, DigestInterval: DefaultDigestInterval}
			opts.maxBatch = bc.maxBatch
			l := openLog(b, b.TempDir(), opts)
			rec := testRecord(0)
			b.SetParallelism(32) // 32 appenders per CPU: a busy server
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := *rec
					r.EventID = ""
					if err := l.Append(context.Background(), &r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			closeLog(b, l)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.N)/float64(l.w.syncs), "records/fsync")
		})
	}
}

// BenchmarkAppendSerial is one appender waiting for each record: the
// latency of a durable append (one write and one fsync).
func BenchmarkAppendSerial(b *testing.B) {
	l := openLog(b, b.TempDir(), Options{})
	rec := testRecord(0)
	b.ReportAllocs()
	for b.Loop() {
		r := *rec
		r.EventID = ""
		if err := l.Append(context.Background(), &r); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	closeLog(b, l)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
