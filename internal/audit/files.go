package audit

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/durable"
)

// Log files are named audit-<first sequence, 20 digits>-<UTC creation time>.jsonl,
// for example audit-00000000000000000001-20250520T204616Z.jsonl: sorted by
// name, they are in log order whatever the clock did.
const (
	filePrefix     = "audit-"
	fileSuffix     = ".jsonl"
	fileTimeLayout = "20060102T150405Z"
	seqDigits      = 20
	lockFileName   = ".lock"
)

func fileName(firstSeq uint64, created time.Time) string {
	return fmt.Sprintf("%s%0*d-%s%s", filePrefix, seqDigits, firstSeq, created.UTC().Format(fileTimeLayout), fileSuffix)
}

// parseFileName returns the first sequence and creation time a log file's
// name states.
func parseFileName(base string) (seq uint64, created time.Time, ok bool) {
	s, found := strings.CutPrefix(base, filePrefix)
	if !found {
		return 0, time.Time{}, false
	}
	s, found = strings.CutSuffix(s, fileSuffix)
	if !found || len(s) != seqDigits+1+len(fileTimeLayout) || s[seqDigits] != '-' {
		return 0, time.Time{}, false
	}
	seq, err := strconv.ParseUint(s[:seqDigits], 10, 64)
	if err != nil {
		return 0, time.Time{}, false
	}
	created, err = time.Parse(fileTimeLayout, s[seqDigits+1:])
	if err != nil {
		return 0, time.Time{}, false
	}
	return seq, created, true
}

// LogFiles returns the paths of the log files in dir, in log order: every
// file named audit-*.jsonl, sorted by name.
func LogFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var paths []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, filePrefix) && strings.HasSuffix(n, fileSuffix) {
			paths = append(paths, filepath.Join(dir, n))
		}
	}
	sort.Strings(paths)
	return paths, nil
}

// lineBefore returns the line of f that ends at end (f[end-1] is its
// newline, excluded from line) and the offset where it starts. It reads
// backwards in growing windows, so lines cost what they are long.
func lineBefore(f io.ReaderAt, end int64) (line []byte, start int64, err error) {
	for window := int64(8 << 10); ; window *= 2 {
		w := min(window, end)
		buf := make([]byte, w)
		if _, err := f.ReadAt(buf, end-w); err != nil {
			return nil, 0, err
		}
		body := buf[:w-1] // without the newline that ends the line
		if i := lastIndexByte(body, '\n'); i >= 0 {
			return body[i+1:], end - w + int64(i) + 1, nil
		}
		if w == end {
			return body, 0, nil
		}
		if w > maxLineBytes {
			return nil, 0, fmt.Errorf("line ending at byte %d is longer than %d bytes", end, maxLineBytes)
		}
	}
}

// lastNewline returns the offset just past the last newline of f's first
// size bytes, or 0 if there is none.
func lastNewline(f io.ReaderAt, size int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		n := min(int64(chunk), end)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := lastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

func lastIndexByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// tail is what Open learns from the existing files.
type tail struct {
	newest       string    // path of the newest file, "" if there is none
	newestSize   int64     // its size after any repair
	newestTime   time.Time // its creation time, from its name
	newestRecord bool      // it holds at least one record
	lastSeq      uint64    // the last record's sequence, 0 if none
	lastHash     [32]byte  // its line hash, or the genesis hash
	lastDigest   [32]byte  // the last digest line's hash, or the genesis hash
	endsClosed   bool      // the last line is a close digest
	discarded    int64     // bytes of an incomplete last line cut off
}

// readTail prepares dir's existing log for appending: it removes empty
// files at the end (created just before a crash), cuts an incomplete last
// line (a write torn by a crash: never fsynced, so never acknowledged),
// and finds the last record and the last digest, reading backwards.
func readTail(dir string) (*tail, error) {
	t := &tail{lastHash: genesis, lastDigest: genesis}
	files, err := LogFiles(dir)
	if err != nil {
		return nil, err
	}
	for len(files) > 0 {
		path := files[len(files)-1]
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: %w", err)
		}
		size := fi.Size()
		keep, err := lastNewline(f, size)
		if err == nil && keep < size {
			t.discarded += size - keep
			if err = f.Truncate(keep); err == nil {
				err = f.Sync()
			}
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("audit: repairing the end of %s: %w", path, err)
		}
		if keep > 0 {
			t.newestSize = keep
			break
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("audit: removing empty log file: %w", err)
		}
		if err := durable.SyncDir(dir); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		files = files[:len(files)-1]
	}
	if len(files) == 0 {
		return t, nil
	}
	t.newest = files[len(files)-1]
	if _, created, ok := parseFileName(filepath.Base(t.newest)); ok {
		t.newestTime = created
	}

	foundRecord, foundDigest, first := false, false, true
	for i := len(files) - 1; i >= 0 && !(foundRecord && foundDigest); i-- {
		path := files[i]
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: %w", err)
		}
		end := fi.Size()
		if i == len(files)-1 {
			end = t.newestSize
		} else if end > 0 {
			// Older files are not repaired; an incomplete end there is
			// for Verify to report. Start from their last full line.
			if end, err = lastNewline(f, end); err != nil {
				f.Close()
				return nil, fmt.Errorf("audit: reading %s: %w", path, err)
			}
		}
		for end > 0 && !(foundRecord && foundDigest) {
			line, start, err := lineBefore(f, end)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("audit: reading %s: %w", path, err)
			}
			full := make([]byte, len(line)+1)
			copy(full, line)
			full[len(line)] = '\n'
			p, perr := parseLine(line)
			if perr != nil {
				f.Close()
				return nil, fmt.Errorf("audit: %s, the line at byte %d: %v; the log cannot be continued (run kmsd audit verify, and move the damaged file aside)", path, start, perr)
			}
			if first {
				t.endsClosed = p.isDigest && p.digest.Reason == ReasonClose
				first = false
			}
			switch {
			case p.isDigest && !foundDigest:
				t.lastDigest, foundDigest = lineHash(full), true
			case !p.isDigest && !foundRecord:
				t.lastSeq, t.lastHash, foundRecord = p.seq, lineHash(full), true
			}
			if !p.isDigest && i == len(files)-1 {
				t.newestRecord = true
			}
			end = start
		}
		f.Close()
	}
	return t, nil
}

// eachCompleteLine calls fn with every complete line of the file at path,
// without its newline, until fn returns false. An incomplete last line (a
// write under way, or torn by a crash) holds no acknowledged record and is
// left out. fn must not keep line past its call, but may append to it.
func eachCompleteLine(path string, fn func(line []byte) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes+1)
	sc.Split(splitLines)
	for sc.Scan() {
		line := sc.Bytes()
		if line[len(line)-1] != '\n' {
			break
		}
		if !fn(line[:len(line)-1]) {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}
