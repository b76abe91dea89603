package kms

// Key usage: GetKeyLastUsage reports the last successful cryptographic
// operation of a key: its operation, time, request id and the eventID of
// its audit record, the data kmsd records of every request anyway.
//
// The hot path does no I/O (DESIGN, decision 7): an operation notes its use
// in memory (noteUse), and FlushKeyUsage writes the latest use of each key
// to the store in one transaction, every second (RunKeyUsageRecorder) and
// when kmsd stops. The store keeps the later of two uses, so nodes may
// flush in any order. A node answers GetKeyLastUsage from the store and its
// own unflushed uses; another node's uses reach it within a flush interval.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsd/kmsd/internal/logging"
	"github.com/kmsd/kmsd/internal/store"
)

// DefaultUsageFlushInterval is how often RunKeyUsageRecorder writes the
// uses noted since its last write.
const DefaultUsageFlushInterval = time.Second

// The operations GetKeyLastUsage reports (KeyLastUsageTrackingOperation).
const (
	useEncrypt                             = "Encrypt"
	useDecrypt                             = "Decrypt"
	useReEncrypt                           = "ReEncrypt"
	useGenerateDataKey                     = "GenerateDataKey"
	useGenerateDataKeyWithoutPlaintext     = "GenerateDataKeyWithoutPlaintext"
	useGenerateDataKeyPair                 = "GenerateDataKeyPair"
	useGenerateDataKeyPairWithoutPlaintext = "GenerateDataKeyPairWithoutPlaintext"
	useSign                                = "Sign"
	useVerify                              = "Verify"
	useGenerateMac                         = "GenerateMac"
	useVerifyMac                           = "VerifyMac"
	useDeriveSharedSecret                  = "DeriveSharedSecret"
	useEncapsulate                         = "Encapsulate"
	useDecapsulate                         = "Decapsulate"
)

// usageState holds the uses noted since the last flush. The zero value is
// ready to use.
type usageState struct {
	mu      sync.Mutex
	pending map[string]*store.KeyUse // by key ID: the latest use not yet written
	// since is the store's KeyUsageSince, read once: it never changes.
	since atomic.Pointer[time.Time]
}

// noteUse records that operation op just used key k successfully. In a
// request (a RequestInfo in ctx), the use is only noted there: the server
// records it (RequestInfo.CommitUses) once the request's audit record is
// durable, so that GetKeyLastUsage never names an eventID that has no
// record. Outside a request it is recorded at once.
func (s *Service) noteUse(ctx context.Context, k *store.Key, op string) {
	u := &store.KeyUse{KeyID: k.ID, Operation: op, Time: s.now().UTC(), RequestID: logging.RequestID(ctx)}
	if ri := requestInfoOf(ctx); ri != nil {
		ri.deferUse(s, u)
		return
	}
	s.recordUse(u)
}

// recordUse keeps u as its key's latest use, to be flushed.
func (s *Service) recordUse(u *store.KeyUse) {
	s.usage.mu.Lock()
	defer s.usage.mu.Unlock()
	if s.usage.pending == nil {
		s.usage.pending = make(map[string]*store.KeyUse)
	}
	if p := s.usage.pending[u.KeyID]; p == nil || !u.Time.Before(p.Time) {
		s.usage.pending[u.KeyID] = u
	}
}

// pendingUse returns the unwritten use of key id, or nil.
func (s *Service) pendingUse(id string) *store.KeyUse {
	s.usage.mu.Lock()
	defer s.usage.mu.Unlock()
	if u := s.usage.pending[id]; u != nil {
		c := *u
		return &c
	}
	return nil
}

// FlushKeyUsage writes the uses noted since the last flush to the store.
// Uses it could not write are kept for the next flush.
func (s *Service) FlushKeyUsage(ctx context.Context) error {
	s.usage.mu.Lock()
	pending := s.usage.pending
	s.usage.pending = nil
	s.usage.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	uses := make([]*store.KeyUse, 0, len(pending))
	for _, u := range pending {
		uses = append(uses, u)
	}
	err := s.store.RecordKeyUsage(ctx, uses)
	if err == nil {
		return nil
	}
	// Put them back, unless a later use of the same key came meanwhile.
	s.usage.mu.Lock()
	defer s.usage.mu.Unlock()
	if s.usage.pending == nil {
		s.usage.pending = make(map[string]*store.KeyUse, len(pending))
	}
	for id, u := range pending {
		if p := s.usage.pending[id]; p == nil || p.Time.Before(u.Time) {
			s.usage.pending[id] = u
		}
	}
	return fmt.Errorf("record key usage: %w", err)
}

// RunKeyUsageRecorder calls FlushKeyUsage every interval until ctx ends.
// The caller flushes once more after it returns (kmsd serve does, before it
// closes the store).
func (s *Service) RunKeyUsageRecorder(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultUsageFlushInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.FlushKeyUsage(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "recording key usage failed; retrying at the next flush", "err", err)
		}
	}
}

// usageSince returns when the store began recording key usage.
func (s *Service) usageSince(ctx context.Context) (time.Time, error) {
	if t := s.usage.since.Load(); t != nil {
		return *t, nil
	}
	t, err := s.store.KeyUsageSince(ctx)
	if err != nil {
		return time.Time{}, internal("key usage tracking start", err)
	}
	s.usage.since.Store(&t)
	return t, nil
}

// lastUse returns the last use of key k (nil when none was recorded) and
// the date from which kmsd records its uses: its creation or the start of
// tracking, whichever is later.
func (s *Service) lastUse(ctx context.Context, k *store.Key) (*store.KeyUse, time.Time, error) {
	since, err := s.usageSince(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	tracking := since
	if k.Created.After(tracking) {
		tracking = k.Created
	}
	u, err := s.store.GetKeyUsage(ctx, k.ID)
	if errors.Is(err, store.ErrNotFound) {
		u, err = nil, nil
	}
	if err != nil {
		return nil, time.Time{}, internal("get key usage", err)
	}
	if p := s.pendingUse(k.ID); p != nil && (u == nil || p.Time.After(u.Time)) {
		u = p
	}
	return u, tracking, nil
}

// trailingDaysWithoutUse is kms:TrailingDaysWithoutKeyUsage: whole days
// since the last use of k, or since tracking began when it was never used.
func (s *Service) trailingDaysWithoutUse(ctx context.Context, k *store.Key) (int64, error) {
	u, tracking, err := s.lastUse(ctx, k)
	if err != nil {
		return 0, err
	}
	last := tracking
	if u != nil && u.Time.After(last) {
		last = u.Time
	}
	d := s.now().Sub(last)
	if d < 0 {
		return 0, nil
	}
	return int64(d / day), nil
}

// GetKeyLastUsageInput is the GetKeyLastUsage request.
type GetKeyLastUsageInput struct {
	KeyId string
}

// KeyLastUsageData is the last successful cryptographic operation of a key.
type KeyLastUsageData struct {
	Operation         string
	Timestamp         time.Time
	KmsRequestId      string
	CloudTrailEventId string
}

// GetKeyLastUsageOutput is the GetKeyLastUsage response.
type GetKeyLastUsageOutput struct {
	KeyId             string // bare key id
	KeyCreationDate   time.Time
	TrackingStartDate time.Time
	KeyLastUsage      *KeyLastUsageData // nil when the key was not used since TrackingStartDate
}

// GetKeyLastUsage reports the last successful cryptographic operation of a
// key of the caller's account, in any state.
func (s *Service) GetKeyLastUsage(ctx context.Context, c Caller, in *GetKeyLastUsageInput) (*GetKeyLastUsageOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	u, tracking, err := s.lastUse(ctx, k)
	if err != nil {
		return nil, err
	}
	out := &GetKeyLastUsageOutput{KeyId: keyIDOf(k), KeyCreationDate: k.Created, TrackingStartDate: tracking}
	if u != nil {
		out.KeyLastUsage = &KeyLastUsageData{Operation: u.Operation, Timestamp: u.Time, KmsRequestId: u.RequestID, CloudTrailEventId: u.EventID}
	}
	return out, nil
}
