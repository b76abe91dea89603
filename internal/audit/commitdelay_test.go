package audit

import (
	"context"
	"sync"
	"testing"
	"time"
)

// gatedFile blocks its next Sync once armed, until released.
type gatedFile struct {
	logFile
	g *gate
}

type gate struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{} // closed when an armed Sync starts
	release chan struct{}
	syncs   int
}

func (f gatedFile) Sync() error {
	f.g.mu.Lock()
	armed := f.g.armed
	f.g.armed = false
	f.g.syncs++
	f.g.mu.Unlock()
	if armed {
		close(f.g.entered)
		<-f.g.release
	}
	return f.logFile.Sync()
}

func (l *Log) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

// TestCommitDelay: with commitSiblings records waiting, the writer holds
// the batch back for the commit delay, and the records appended meanwhile
// share its fsync; with fewer waiting, it writes at once.
func TestCommitDelay(t *testing.T) {
	for _, tc := range []struct {
		name      string
		waiting   int // records queued behind the blocked fsync
		lingers   bool
		wantSyncs int // fsyncs after the blocked one, for all the records
	}{
		{"light load writes at once", commitSiblings - 1, false, 1},
		{"load lingers and shares one fsync", commitSiblings, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
			fire := make(chan time.Time)
			lingering := make(chan time.Duration, 1)
			opts := Options{CommitDelay: 5 * time.Millisecond, DigestEvery: -1, DigestInterval: -1, KeptPollInterval: -1}
			opts.wrapFile = func(f logFile) logFile { return gatedFile{f, g} }
			opts.commitTimer = func(d time.Duration) <-chan time.Time {
				lingering <- d
				return fire
			}
			l := openLog(t, t.TempDir(), opts)
			appendN(t, l, 0, 1) // the file exists

			g.mu.Lock()
			g.armed = true
			g.mu.Unlock()
			var wg sync.WaitGroup
			appendAsync := func(i int) {
				wg.Go(func() {
					if err := l.Append(context.Background(), testRecord(i)); err != nil {
						t.Errorf("Append %d: %v", i, err)
					}
				})
			}
			appendAsync(1) // its fsync blocks
			<-g.entered
			for i := range tc.waiting {
				appendAsync(10 + i)
			}
			waitFor(t, func() bool { return l.queued() == tc.waiting })
			g.mu.Lock()
			before := g.syncs
			g.mu.Unlock()
			close(g.release)

			if tc.lingers {
				select {
				case d := <-lingering:
					if d != opts.CommitDelay {
						t.Errorf("lingered %v, want %v", d, opts.CommitDelay)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("the writer did not linger with %d records waiting", tc.waiting)
				}
				// Appended while the writer lingers: they join the batch.
				for i := range 3 {
					appendAsync(100 + i)
				}
				waitFor(t, func() bool { return l.queued() == tc.waiting+3 })
				fire <- time.Now()
			}
			wg.Wait()
			g.mu.Lock()
			syncs := g.syncs - before
			g.mu.Unlock()
			if syncs != tc.wantSyncs {
				t.Errorf("%d fsyncs for the waiting records, want %d", syncs, tc.wantSyncs)
			}
			select {
			case d := <-lingering:
				t.Errorf("the writer lingered (%v) again with %d records waiting", d, tc.waiting)
			default:
			}
			// The next record alone: after a large batch the load is
			// still taken as high (the writer lingers), after a small one
			// not.
			appendAsync(1000)
			if tc.lingers {
				select {
				case <-lingering:
					fire <- time.Now()
				case <-time.After(10 * time.Second):
					t.Fatal("the writer did not linger after a large batch")
				}
			}
			wg.Wait()
			select {
			case d := <-lingering:
				t.Errorf("the writer lingered (%v) after a small batch", d)
			default:
			}
			closeLog(t, l)
			want := 3 + tc.waiting
			if tc.lingers {
				want += 3
			}
			if rep := mustVerify(t, l.opts.Dir); rep.Records != uint64(want) {
				t.Errorf("verify: %d records, want %d", rep.Records, want)
			}
		})
	}
}
