package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

const account = "111122223333"

// acked is what the service acknowledged to a client: it must all be
// there after any number of kill -9.
type acked struct {
	key, alias, policySid, grant string
	ciphertexts                  []ciphertext
}

type ciphertext struct {
	blob, plaintext []byte
	context         map[string]string
}

// policyWith is a key policy that lets the account in and carries sid, by
// which the test recognises it.
func policyWith(sid string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%[1]s:root"},"Action":"kms:*","Resource":"*"},
{"Sid":%[2]q,"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%[1]s:root"},"Action":"kms:DescribeKey","Resource":"*"}]}`, account, sid)
}

// work is one client's loop: it makes a key, its alias, its policy and a
// grant, and encrypts under it, each step sent to the next node and
// retried on the others until acknowledged, until ctx ends. It returns
// what was acknowledged.
func work(ctx context.Context, w int, clients []*awskms.Client) ([]acked, error) {
	var out []acked
	node := w
	step := func(op func(context.Context, *awskms.Client) error, final func(error) bool) error {
		node++
		return retry(ctx, clients, node, 30*time.Second, final, op)
	}
	for i := 0; ctx.Err() == nil; i++ {
		var a acked
		err := step(func(ctx context.Context, c *awskms.Client) error {
			k, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String(fmt.Sprintf("worker %d key %d", w, i))})
			if err == nil {
				a.key = *k.KeyMetadata.KeyId
			}
			return err
		}, nil)
		if err != nil {
			return out, ignoreEnd(ctx, err, "CreateKey")
		}
		alias := fmt.Sprintf("alias/w%d-%d", w, i)
		err = step(func(ctx context.Context, c *awskms.Client) error {
			_, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: &alias, TargetKeyId: &a.key})
			return err
		}, func(err error) bool {
			// An attempt that got no answer may have been committed.
			var ae *types.AlreadyExistsException
			return errors.As(err, &ae)
		})
		if err != nil && !isAlreadyExists(err) {
			return out, ignoreEnd(ctx, err, "CreateAlias")
		}
		a.alias = alias
		out = append(out, a) // the key and its alias are acknowledged
		last := &out[len(out)-1]

		sid := fmt.Sprintf("w%d-%d", w, i)
		if err := step(func(ctx context.Context, c *awskms.Client) error {
			_, err := c.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: &a.key, PolicyName: aws.String("default"), Policy: aws.String(policyWith(sid))})
			return err
		}, nil); err != nil {
			return out, ignoreEnd(ctx, err, "PutKeyPolicy")
		}
		last.policySid = sid
		if err := step(func(ctx context.Context, c *awskms.Client) error {
			g, err := c.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: &a.key, GranteePrincipal: aws.String("arn:aws:iam::" + account + ":role/app"),
				Operations: []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationDecrypt}})
			if err == nil {
				last.grant = *g.GrantId
			}
			return err
		}, nil); err != nil {
			return out, ignoreEnd(ctx, err, "CreateGrant")
		}
		for j := range 3 {
			pt := []byte(fmt.Sprintf("worker %d key %d message %d", w, i, j))
			ec := map[string]string{"worker": fmt.Sprint(w), "n": fmt.Sprint(j)}
			if err := step(func(ctx context.Context, c *awskms.Client) error {
				e, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: &alias, Plaintext: pt, EncryptionContext: ec})
				if err == nil {
					last.ciphertexts = append(last.ciphertexts, ciphertext{e.CiphertextBlob, pt, ec})
				}
				return err
			}, nil); err != nil {
				return out, ignoreEnd(ctx, err, "Encrypt")
			}
		}
	}
	return out, nil
}

func isAlreadyExists(err error) bool {
	var ae *types.AlreadyExistsException
	return errors.As(err, &ae)
}

// ignoreEnd drops the error of a step that the end of the run cut short.
func ignoreEnd(ctx context.Context, err error, what string) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// TestKillNodesUnderLoad runs three nodes under load from four clients
// that retry on another node, and kills a random node with SIGKILL and
// restarts it, 20 times. Afterwards every acknowledged key, alias, key
// policy and grant is there and every acknowledged ciphertext decrypts, a
// disabled key is refused on another node within one second, and the
// audit log of every node verifies against its anchor.
func TestKillNodesUnderLoad(t *testing.T) {
	skipShort(t)
	dsn := storeDSN(t)
	bin := buildKmsd(t)
	nodes, akid, secret := startCluster(t, bin, dsn, 3)
	clientsOf := func() []*awskms.Client {
		var cs []*awskms.Client
		for _, nd := range nodes {
			cs = append(cs, nd.client(akid, secret, 10*time.Second))
		}
		return cs
	}

	const workers, cycles = 4, 20
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var wg sync.WaitGroup
	results := make([][]acked, workers)
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w], errs[w] = work(ctx, w, clientsOf())
		}()
	}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	start := time.Now()
	for c := range cycles {
		time.Sleep(time.Duration(300+rnd.IntN(500)) * time.Millisecond)
		nd := nodes[rnd.IntN(len(nodes))]
		nd.kill()
		time.Sleep(time.Duration(rnd.IntN(300)) * time.Millisecond)
		nd.start()
		t.Logf("cycle %d: node %d killed and restarted (%s)", c+1, nd.n, time.Since(start).Round(time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond)
	stopLoad()
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", w, err)
		}
	}

	// Everything acknowledged is there, read through every node in turn.
	cs := clientsOf()
	bg := context.Background()
	var keys, grants, cts int
	i := 0
	check := func(what string, op func(context.Context, *awskms.Client) error) {
		i++
		if err := retry(bg, cs, i, 10*time.Second, func(error) bool { return true }, op); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	for _, rs := range results {
		for _, a := range rs {
			keys++
			check("key "+a.key, func(ctx context.Context, c *awskms.Client) error {
				d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: &a.alias})
				if err == nil && *d.KeyMetadata.KeyId != a.key {
					return fmt.Errorf("%s names key %s, want %s", a.alias, *d.KeyMetadata.KeyId, a.key)
				}
				return err
			})
			if a.policySid != "" {
				check("policy of "+a.key, func(ctx context.Context, c *awskms.Client) error {
					p, err := c.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: &a.key, PolicyName: aws.String("default")})
					if err == nil && !strings.Contains(*p.Policy, `"`+a.policySid+`"`) {
						return fmt.Errorf("the key policy lacks the acknowledged statement %s: %s", a.policySid, *p.Policy)
					}
					return err
				})
			}
			if a.grant != "" {
				grants++
				check("grant of "+a.key, func(ctx context.Context, c *awskms.Client) error {
					l, err := c.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: &a.key})
					if err != nil {
						return err
					}
					for _, g := range l.Grants {
						if *g.GrantId == a.grant {
							return nil
						}
					}
					return fmt.Errorf("grant %s is gone", a.grant)
				})
			}
			for _, ct := range a.ciphertexts {
				cts++
				check("ciphertext under "+a.key, func(ctx context.Context, c *awskms.Client) error {
					d, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.blob, EncryptionContext: ct.context})
					if err == nil && !bytes.Equal(d.Plaintext, ct.plaintext) {
						return fmt.Errorf("decrypts to %q, want %q", d.Plaintext, ct.plaintext)
					}
					return err
				})
			}
		}
	}
	t.Logf("%d cycles in %s; acknowledged and found again: %d keys with their aliases and policies, %d grants, %d ciphertexts",
		cycles, time.Since(start).Round(time.Second), keys, grants, cts)
	if keys == 0 || cts == 0 {
		t.Fatal("the clients got nothing acknowledged")
	}

	// A key disabled on one node is refused on another within a second.
	checkDisableSeen(t, cs[0], cs[1], results[0][0].key)

	// Every node's audit log verifies, each against its anchor, in one
	// command, after 20 kill -9.
	for _, nd := range nodes {
		nd.stop()
	}
	args := []string{"audit", "verify"}
	for _, nd := range nodes {
		args = append(args, "--node", nd.dir)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + os.TempDir(), "KMSD_STORE=postgres", "KMSD_STORE_DSN=" + dsn}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK: 3 node logs") {
		t.Errorf("kmsd audit verify --node ×3: %v\n%s", err, out)
	}
}

// checkDisableSeen disables key through a and checks that b, which has
// just used it, refuses it within one second of a's answer.
func checkDisableSeen(t *testing.T, a, b *awskms.Client, key string) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.Encrypt(ctx, &awskms.EncryptInput{KeyId: &key, Plaintext: []byte("x")}); err != nil {
		t.Fatalf("encrypt before disabling: %v", err)
	}
	if _, err := a.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: &key}); err != nil {
		t.Fatalf("disable: %v", err)
	}
	disabled := time.Now()
	for {
		_, err := b.Encrypt(ctx, &awskms.EncryptInput{KeyId: &key, Plaintext: []byte("x")})
		var de *types.DisabledException
		if errors.As(err, &de) {
			t.Logf("the other node refused the disabled key %s after disable returned", time.Since(disabled).Round(time.Microsecond))
			return
		}
		if err != nil {
			t.Fatalf("encrypt after disabling: %v, want DisabledException", err)
		}
		if time.Since(disabled) > time.Second {
			t.Fatal("the other node still encrypts under the key a second after it was disabled")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
