// Command manykeys measures kmsd serve's memory with many keys stored: it
// fills a data folder's store with -keys keys (directly through the store
// API, in large transactions: a million CreateKey calls over HTTP would
// take longer than the point needs), then, for each -cache-sizes value,
// starts kmsd serve with that --key-cache-size, spreads DescribeKey over
// random keys of the million from 16 workers for -duration, and reports
// kmsd's resident memory (VmRSS at the end, VmHWM the peak) and how many
// distinct keys the load touched.
//
//	go run ./bench/manykeys -kmsd ./kmsd -keys 1000000 -cache-sizes 1000,10000,100000
//
// bench/memory.sh builds kmsd and runs it.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

func main() {
	kmsd := flag.String("kmsd", "kmsd", "the kmsd executable")
	dir := flag.String("dir", "", "work folder (default: a new temporary one, removed at the end)")
	n := flag.Int("keys", 1_000_000, "keys to store")
	sizes := flag.String("cache-sizes", "1000,10000,100000", "--key-cache-size values to measure, comma-separated")
	duration := flag.Duration("duration", 20*time.Second, "DescribeKey load per cache size")
	addr := flag.String("listen", "127.0.0.1:47110", "address kmsd serve listens on")
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()

	work := *dir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "kmsd-manykeys-"); err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(work)
	}
	data := filepath.Join(work, "data")

	// A first start makes the data folder and its admin access key; one
	// key made through the API is the template of the million.
	p, creds := serve(*kmsd, data, *addr, 0)
	client := newClient(*addr, creds)
	ck, err := client.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		log.Fatalf("CreateKey: %v", err)
	}
	p.stop()

	ids := populate(ctx, data, *ck.KeyMetadata.KeyId, *n)

	fmt.Printf("%d keys stored\n", len(ids)+1)
	fmt.Printf("%-16s %12s %12s %12s %14s %10s\n", "--key-cache-size", "RSS idle MB", "RSS end MB", "peak MB", "keys touched", "req/s")
	for _, s := range strings.Split(*sizes, ",") {
		size, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			log.Fatalf("cache size %q: %v", s, err)
		}
		p, _ := serve(*kmsd, data, *addr, size)
		idle, _ := rss(p.cmd.Process.Pid)
		touched, reqs := load(ctx, newClient(*addr, creds), ids, *duration)
		end, peak := rss(p.cmd.Process.Pid)
		p.stop()
		fmt.Printf("%-16d %12.1f %12.1f %12.1f %14d %10.0f\n", size, mb(idle), mb(end), mb(peak), touched, float64(reqs)/duration.Seconds())
	}
}

// populate stores n-1 copies of the template key (new ids, the same
// policy) in the store of data folder data, 10,000 per transaction, and
// returns their ids.
func populate(ctx context.Context, data, templateID string, n int) []string {
	st, err := backend.Open(ctx, backend.Config{DataDir: data})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	tmpl, err := st.GetKey(ctx, templateID)
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	ids := make([]string, 0, n-1)
	const batch = 10_000
	for len(ids) < n-1 {
		err := st.Update(ctx, func(tx store.Tx) error {
			for i := 0; i < batch && len(ids) < n-1; i++ {
				k := *tmpl
				k.ID = newUUID()
				// Key records only: DescribeKey, the load, reads no
				// material (the template's is wrapped for its own ARN).
				k.CurrentMaterial = ""
				if err := tx.CreateKey(ctx, &k, nil); err != nil {
					return err
				}
				ids = append(ids, k.ID)
			}
			return nil
		})
		if err != nil {
			log.Fatalf("storing keys: %v", err)
		}
	}
	log.Printf("stored %d keys in %s", len(ids), time.Since(start).Round(time.Second))
	return ids
}

// load runs DescribeKey on random keys from 16 workers for d and returns
// how many distinct keys it touched and how many requests succeeded.
func load(ctx context.Context, c *awskms.Client, ids []string, d time.Duration) (int, int64) {
	var touched sync.Map
	var distinct, reqs atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				i, _ := rand.Int(rand.Reader, big.NewInt(int64(len(ids))))
				id := ids[i.Int64()]
				if _, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: &id}); err != nil {
					log.Fatalf("DescribeKey: %v", err)
				}
				reqs.Add(1)
				if _, loaded := touched.LoadOrStore(id, struct{}{}); !loaded {
					distinct.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(distinct.Load()), reqs.Load()
}

type process struct{ cmd *exec.Cmd }

func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
}

// serve starts kmsd serve and waits until it listens. On the data
// folder's first start it returns the admin access key its banner shows.
func serve(bin, data, addr string, cacheSize int) (*process, aws.Credentials) {
	args := []string{"serve", "--data-dir", data, "--listen", addr}
	if cacheSize > 0 {
		args = append(args, "--key-cache-size", strconv.Itoa(cacheSize))
	}
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	var creds aws.Credentials
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "export AWS_ACCESS_KEY_ID="); ok {
				creds.AccessKeyID = v
			} else if v, ok := strings.CutPrefix(line, "export AWS_SECRET_ACCESS_KEY="); ok {
				creds.SecretAccessKey = v
			}
			if strings.Contains(line, "aws kms create-key") {
				close(ready)
			}
		}
	}()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i == 600 {
			log.Fatal("kmsd serve does not listen after a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(data, backend.DatabaseFile)); err == nil {
		select {
		case <-ready:
		case <-time.After(2 * time.Second): // not a first start: no new key shown
		}
	}
	return &process{cmd}, creds
}

var savedCreds aws.Credentials

func newClient(addr string, creds aws.Credentials) *awskms.Client {
	if creds.AccessKeyID != "" {
		savedCreds = creds
	}
	return awskms.New(awskms.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://" + addr),
		Credentials:  credentials.NewStaticCredentialsProvider(savedCreds.AccessKeyID, savedCreds.SecretAccessKey, ""),
	})
}

// rss returns VmRSS and VmHWM of a process, in bytes.
func rss(pid int) (cur, peak int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			cur = v << 10
		case "VmHWM:":
			peak = v << 10
		}
	}
	return cur, peak
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
