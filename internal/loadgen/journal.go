package loadgen

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// journal is what the durable floor adds to the floor (kmsd bench
// --durable-floor): before each answer, one line per request appended to a
// file and fsynced, with the group commit a bare server would write. One
// writer takes every line queued, writes them at once, fsyncs and releases
// their requests; lines queued meanwhile go in the next batch. No hash
// chain, no signature, no commit delay: the least a server that keeps a
// durable record of every request must do, so that kmsd's ratio to it
// measures kmsd's own cost on a machine where fsync is dear.
type journal struct {
	f    *os.File
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	queue  []journalEntry
	failed error // once set, every append returns it
}

var errJournalClosed = errors.New("floor journal: closed")

type journalEntry struct {
	line []byte
	done chan error
}

// openJournal creates a new journal file in dir (removed by close).
func openJournal(dir string) (*journal, error) {
	f, err := os.CreateTemp(dir, "kmsd-bench-floor-*.log")
	if err != nil {
		return nil, fmt.Errorf("floor journal: %w", err)
	}
	j := &journal{f: f, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go j.run()
	return j, nil
}

// append returns once line is durable, or with the error that failed the
// journal.
func (j *journal) append(line []byte) error {
	e := journalEntry{line: line, done: make(chan error, 1)}
	j.mu.Lock()
	if j.failed != nil {
		j.mu.Unlock()
		return j.failed
	}
	j.queue = append(j.queue, e)
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return <-e.done
}

func (j *journal) run() {
	defer close(j.done)
	var buf []byte
	for {
		select {
		case <-j.wake:
		case <-j.stop:
			j.mu.Lock()
			j.failed = errJournalClosed
			batch := j.queue
			j.queue = nil
			j.mu.Unlock()
			for _, e := range batch {
				e.done <- errJournalClosed
			}
			return
		}
		for {
			j.mu.Lock()
			batch := j.queue
			j.queue = nil
			j.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			buf = buf[:0]
			for _, e := range batch {
				buf = append(buf, e.line...)
			}
			_, err := j.f.Write(buf)
			if err == nil {
				err = j.f.Sync()
			}
			if err != nil {
				err = fmt.Errorf("floor journal: %w", err)
				j.mu.Lock()
				j.failed = err
				j.mu.Unlock()
			}
			for _, e := range batch {
				e.done <- err
			}
		}
	}
}

// close stops the writer (appends still waiting get errJournalClosed) and
// removes the file.
func (j *journal) close() error {
	close(j.stop)
	<-j.done
	err := j.f.Close()
	if rerr := os.Remove(j.f.Name()); err == nil {
		err = rerr
	}
	return err
}
