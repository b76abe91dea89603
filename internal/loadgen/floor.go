package loadgen

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/sigv4"
)

// Floor is the reference server of "kmsd bench --floor": the least a server
// answering the same requests must do, so that kmsd's figures can be read
// as multiples of it. It is what a bare implementation would be: net/http,
// encoding/json, the SigV4 check (internal/sigv4's Verifier, one access
// key), and for each operation its cryptography with keys held in a map in
// memory (AES-256-GCM with the key itself and a random nonce for
// Encrypt/Decrypt/GenerateDataKey; crypto/ecdsa, crypto/ed25519,
// crypto/rsa for Sign/Verify; crypto/hmac for GenerateMac). Nothing else:
// no key policy, no grants, no store, no audit log, no metrics. CreateKey
// generates the key and keeps it in memory only.
//
// It answers CreateKey, DescribeKey, GetPublicKey, Encrypt, Decrypt,
// GenerateDataKey, Sign, Verify and GenerateMac, shaped like AWS KMS, so
// that the load generator drives it with the same code as kmsd.
type Floor struct {
	verifier *sigv4.Verifier
	region   string

	mu   sync.RWMutex
	keys map[string]*floorKey

	// journal, if set, makes this the durable floor: every request's line
	// is durable before its answer (see journal).
	journal *journal
}

// FloorAccount is the account in the floor's key ARNs.
const FloorAccount = "111122223333"

type floorKey struct {
	id, arn, spec, usage string
	created              time.Time
	aead                 cipher.AEAD // SYMMETRIC_DEFAULT
	hmacKey              []byte      // HMAC_*
	signer               crypto.Signer
}

// NewFloor returns a floor for region that accepts requests signed with
// the given access key.
func NewFloor(region, accessKeyID, secret string) *Floor {
	f := &Floor{region: region, keys: map[string]*floorKey{}}
	secretBytes := []byte(secret)
	f.verifier = &sigv4.Verifier{Service: "kms", Regions: []string{region}, Now: time.Now,
		Lookup: func(_ context.Context, id string) ([]byte, error) {
			if id != accessKeyID {
				return nil, sigv4.ErrUnknownAccessKey
			}
			return secretBytes, nil
		}}
	return f
}

// ServeFloor serves h on ln until ctx ends, with the HTTP server settings
// of kmsd serve (internal/server.Run), so that both pay the same for
// net/http.
func ServeFloor(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// ServeHTTP answers one request.
func (f *Floor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	var out *floorOut
	if err != nil {
		err = awserr.New(awserr.Validation, "request body too large or unreadable")
	} else if _, err = f.verifier.Verify(r.Context(), r, body); err == nil {
		out, err = f.serve(strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "TrentService."), body)
	}
	var b []byte
	status := http.StatusOK
	if err == nil {
		b, err = json.Marshal(out)
	}
	if f.journal != nil && err == nil {
		// The durable floor's record: what a bare server that keeps one
		// per request writes at the least, durable before the answer.
		line := fmt.Appendf(nil, "{\"time\":%q,\"operation\":%q,\"sourceIPAddress\":%q}\n",
			time.Now().UTC().Format(time.RFC3339Nano), r.Header.Get("X-Amz-Target"), r.RemoteAddr)
		err = f.journal.append(line)
	}
	if err != nil {
		code := awserr.CodeOf(err)
		if code == "" {
			code = awserr.KMSInternal
		}
		status = awserr.HTTPStatus(code)
		msg := err.Error()
		var e *awserr.Error
		if errors.As(err, &e) {
			msg = e.Message
		}
		b, _ = json.Marshal(map[string]string{"__type": code, "message": msg})
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// Requests the floor reads (the members it uses).
type floorIn struct {
	KeyId             string
	KeySpec           string
	KeyUsage          string
	Description       string
	Plaintext         []byte
	CiphertextBlob    []byte
	EncryptionContext map[string]string
	NumberOfBytes     int
	Message           []byte
	MessageType       string
	Signature         []byte
	SigningAlgorithm  string
	MacAlgorithm      string
}

// floorOut is every answer of the floor: the members of each operation's
// output it sends, the others omitted.
type floorOut struct {
	KeyId               string         `json:",omitempty"`
	CiphertextBlob      []byte         `json:",omitempty"`
	Plaintext           []byte         `json:",omitempty"`
	EncryptionAlgorithm string         `json:",omitempty"`
	Signature           []byte         `json:",omitempty"`
	SignatureValid      bool           `json:",omitempty"`
	SigningAlgorithm    string         `json:",omitempty"`
	Mac                 []byte         `json:",omitempty"`
	MacAlgorithm        string         `json:",omitempty"`
	PublicKey           []byte         `json:",omitempty"`
	KeySpec             string         `json:",omitempty"`
	KeyUsage            string         `json:",omitempty"`
	SigningAlgorithms   []string       `json:",omitempty"`
	KeyMetadata         *floorMetadata `json:",omitempty"`
}

// floorMetadata is KeyMetadata as the floor fills it.
type floorMetadata struct {
	AWSAccountId          string
	KeyId                 string
	Arn                   string
	CreationDate          int64
	Enabled               bool
	Description           string
	KeyUsage              string
	KeyState              string
	Origin                string
	KeyManager            string
	KeySpec               string
	CustomerMasterKeySpec string
	MultiRegion           bool
	EncryptionAlgorithms  []string `json:",omitempty"`
	SigningAlgorithms     []string `json:",omitempty"`
	MacAlgorithms         []string `json:",omitempty"`
}

func (f *Floor) serve(op string, body []byte) (*floorOut, error) {
	var in floorIn
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, awserr.New(awserr.Serialization, "the request body is not a JSON object of the operation's shape")
	}
	switch op {
	case "CreateKey":
		k, err := f.createKey(in.KeySpec, in.KeyUsage)
		if err != nil {
			return nil, err
		}
		return &floorOut{KeyMetadata: k.metadata(in.Description)}, nil
	case "Decrypt":
		return f.decrypt(in)
	}
	k, err := f.key(in.KeyId)
	if err != nil {
		return nil, err
	}
	switch op {
	case "DescribeKey":
		return &floorOut{KeyMetadata: k.metadata("")}, nil
	case "GetPublicKey":
		if k.signer == nil {
			return nil, awserr.New(awserr.UnsupportedOperation, "not an asymmetric key")
		}
		der, err := x509.MarshalPKIXPublicKey(k.signer.Public())
		if err != nil {
			return nil, err
		}
		return &floorOut{KeyId: k.arn, PublicKey: der, KeySpec: k.spec, KeyUsage: k.usage,
			SigningAlgorithms: []string{signingAlgorithms[k.spec]}}, nil
	case "Encrypt":
		blob, err := k.seal(in.Plaintext, in.EncryptionContext)
		if err != nil {
			return nil, err
		}
		return &floorOut{KeyId: k.arn, CiphertextBlob: blob, EncryptionAlgorithm: specSymmetric}, nil
	case "GenerateDataKey":
		n := in.NumberOfBytes
		switch in.KeySpec {
		case "AES_256":
			n = 32
		case "AES_128":
			n = 16
		}
		if n < 1 || n > 1024 {
			return nil, awserr.New(awserr.Validation, "KeySpec or NumberOfBytes is required")
		}
		dk := make([]byte, n)
		rand.Read(dk)
		blob, err := k.seal(dk, in.EncryptionContext)
		if err != nil {
			return nil, err
		}
		return &floorOut{KeyId: k.arn, Plaintext: dk, CiphertextBlob: blob}, nil
	case "Sign", "Verify":
		if k.signer == nil || in.SigningAlgorithm != signingAlgorithms[k.spec] || in.MessageType != "RAW" {
			return nil, awserr.New(awserr.InvalidKeyUsage, "the floor signs RAW messages with the spec's first algorithm only")
		}
		if op == "Sign" {
			sig, err := k.sign(in.SigningAlgorithm, in.Message)
			if err != nil {
				return nil, err
			}
			return &floorOut{KeyId: k.arn, Signature: sig, SigningAlgorithm: in.SigningAlgorithm}, nil
		}
		if verifyLocally(k.signer.Public(), in.SigningAlgorithm, in.Message, in.Signature) != nil {
			return nil, awserr.New(awserr.KMSInvalidSignature, "")
		}
		return &floorOut{KeyId: k.arn, SignatureValid: true, SigningAlgorithm: in.SigningAlgorithm}, nil
	case "GenerateMac":
		if k.hmacKey == nil || in.MacAlgorithm != macAlgorithms[k.spec] {
			return nil, awserr.New(awserr.InvalidKeyUsage, "not an HMAC key of that algorithm")
		}
		m := hmac.New(hmacHash(k.spec), k.hmacKey)
		m.Write(in.Message)
		return &floorOut{KeyId: k.arn, Mac: m.Sum(nil), MacAlgorithm: in.MacAlgorithm}, nil
	}
	return nil, awserr.Newf(awserr.UnknownOperation, "the floor does not answer %q", op)
}

func hmacHash(spec string) func() hash.Hash {
	switch spec {
	case "HMAC_224":
		return sha256.New224
	case "HMAC_384":
		return sha512.New384
	case "HMAC_512":
		return sha512.New
	}
	return sha256.New
}

func (f *Floor) createKey(spec, usage string) (*floorKey, error) {
	if spec == "" {
		spec = specSymmetric
	}
	if usage == "" {
		usage = usageEncrypt
	}
	if usage != usageOf(spec) {
		return nil, awserr.Newf(awserr.Validation, "the floor makes %s keys for %s only", spec, usageOf(spec))
	}
	id := uuid.NewString()
	k := &floorKey{id: id, arn: awsarn.ARN(awsarn.PartitionOf(f.region), "kms", f.region, FloorAccount, "key/"+id), spec: spec, usage: usage, created: time.Now()}
	var err error
	switch spec {
	case specSymmetric:
		material := make([]byte, 32)
		rand.Read(material)
		var block cipher.Block
		if block, err = aes.NewCipher(material); err == nil {
			k.aead, err = cipher.NewGCM(block)
		}
	case "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512":
		k.hmacKey = make([]byte, hmacHash(spec)().Size())
		rand.Read(k.hmacKey)
	case "ECC_NIST_P256":
		k.signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ECC_NIST_P384":
		k.signer, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ECC_NIST_P521":
		k.signer, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ECC_NIST_EDWARDS25519":
		_, k.signer, err = ed25519.GenerateKey(rand.Reader)
	case "RSA_2048", "RSA_3072", "RSA_4096":
		bits, _ := strconv.Atoi(strings.TrimPrefix(spec, "RSA_"))
		k.signer, err = rsa.GenerateKey(rand.Reader, bits)
	default:
		return nil, awserr.Newf(awserr.UnsupportedOperation, "the floor has no %s keys", spec)
	}
	if err != nil {
		return nil, fmt.Errorf("floor: generating a %s key: %w", spec, err)
	}
	f.mu.Lock()
	f.keys[id] = k
	f.mu.Unlock()
	return k, nil
}

func (f *Floor) key(keyID string) (*floorKey, error) {
	id := keyID
	if rest, ok := strings.CutPrefix(keyID, awsarn.ARN(awsarn.PartitionOf(f.region), "kms", f.region, FloorAccount, "key/")); ok {
		id = rest
	}
	f.mu.RLock()
	k := f.keys[id]
	f.mu.RUnlock()
	if k == nil {
		return nil, awserr.Newf(awserr.NotFound, "Key '%s' does not exist", keyID)
	}
	return k, nil
}

func (k *floorKey) metadata(description string) *floorMetadata {
	m := &floorMetadata{
		AWSAccountId: FloorAccount, KeyId: k.id, Arn: k.arn, CreationDate: k.created.Unix(),
		Enabled: true, Description: description, KeyUsage: k.usage, KeyState: "Enabled",
		Origin: "AWS_KMS", KeyManager: "CUSTOMER", KeySpec: k.spec, CustomerMasterKeySpec: k.spec,
	}
	switch {
	case k.aead != nil:
		m.EncryptionAlgorithms = []string{specSymmetric}
	case k.hmacKey != nil:
		m.MacAlgorithms = []string{macAlgorithms[k.spec]}
	default:
		m.SigningAlgorithms = []string{signingAlgorithms[k.spec]}
	}
	return m
}

// The floor's ciphertext: format byte, the key id (16 bytes), the nonce,
// then the AES-256-GCM output; header and encryption context are the AAD.
const floorHeader = 1 + 16 + 12

func (k *floorKey) seal(plaintext []byte, encCtx map[string]string) ([]byte, error) {
	if k.aead == nil {
		return nil, awserr.New(awserr.InvalidKeyUsage, "not a symmetric encryption key")
	}
	id, err := uuid.Parse(k.id)
	if err != nil {
		return nil, err
	}
	out := make([]byte, floorHeader, floorHeader+len(plaintext)+16)
	out[0] = 1
	copy(out[1:17], id[:])
	rand.Read(out[17:floorHeader])
	return k.aead.Seal(out, out[17:floorHeader], plaintext, contextAAD(out[:floorHeader], encCtx)), nil
}

func (f *Floor) decrypt(in floorIn) (*floorOut, error) {
	blob := in.CiphertextBlob
	if len(blob) < floorHeader+16 || blob[0] != 1 {
		return nil, awserr.New(awserr.InvalidCiphertext, "")
	}
	id, _ := uuid.FromBytes(blob[1:17])
	k, err := f.key(id.String())
	if err != nil || k.aead == nil {
		return nil, awserr.New(awserr.InvalidCiphertext, "")
	}
	pt, err := k.aead.Open(nil, blob[17:floorHeader], blob[floorHeader:], contextAAD(blob[:floorHeader], in.EncryptionContext))
	if err != nil {
		return nil, awserr.New(awserr.InvalidCiphertext, "")
	}
	return &floorOut{KeyId: k.arn, Plaintext: pt, EncryptionAlgorithm: specSymmetric}, nil
}

// contextAAD is the header followed by the encryption context's pairs,
// sorted by key, each string length-prefixed.
func contextAAD(header []byte, encCtx map[string]string) []byte {
	aad := append([]byte(nil), header...)
	names := make([]string, 0, len(encCtx))
	for n := range encCtx {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		aad = binary.BigEndian.AppendUint32(aad, uint32(len(n)))
		aad = append(aad, n...)
		aad = binary.BigEndian.AppendUint32(aad, uint32(len(encCtx[n])))
		aad = append(aad, encCtx[n]...)
	}
	return aad
}

func (k *floorKey) sign(alg string, msg []byte) ([]byte, error) {
	switch s := k.signer.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(s, msg), nil
	case *ecdsa.PrivateKey:
		d, _ := digestFor(alg, msg)
		return ecdsa.SignASN1(rand.Reader, s, d)
	case *rsa.PrivateKey:
		d, h := digestFor(alg, msg)
		return rsa.SignPKCS1v15(nil, s, h, d)
	}
	return nil, awserr.New(awserr.InvalidKeyUsage, "not a signing key")
}
