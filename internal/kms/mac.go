package kms

// GenerateMac and VerifyMac: HMAC keys (HMAC_224/256/384/512, usage
// GENERATE_VERIFY_MAC). Their material is the raw HMAC key, as long as the
// hash output, wrapped and cached like symmetric material.

import (
	"context"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keys"
)

// GenerateMacInput is the GenerateMac request.
type GenerateMacInput struct {
	KeyId        string
	Message      []byte
	MacAlgorithm string
	GrantTokens  []string
	DryRun       bool
}

// GenerateMacOutput is the GenerateMac response.
type GenerateMacOutput struct {
	KeyId        string // key ARN
	Mac          []byte
	MacAlgorithm string
}

// VerifyMacInput is the VerifyMac request.
type VerifyMacInput struct {
	KeyId        string
	Message      []byte
	Mac          []byte
	MacAlgorithm string
	GrantTokens  []string
	DryRun       bool
}

// VerifyMacOutput is the VerifyMac response; a MAC that does not verify is
// KMSInvalidMacException, never MacValid false.
type VerifyMacOutput struct {
	KeyId        string // key ARN
	MacValid     bool
	MacAlgorithm string
}

// GenerateMac computes the HMAC of a message.
func (s *Service) GenerateMac(ctx context.Context, c Caller, in *GenerateMacInput) (*GenerateMacOutput, error) {
	k, err := s.keyFor(ctx, c, in.KeyId, useMAC, in.MacAlgorithm)
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	m, err := s.secretMaterial(ctx, k)
	if err != nil {
		return nil, err
	}
	defer m.release()
	mac, err := keys.MAC(k.KeySpec, in.MacAlgorithm, m.key, in.Message)
	if err != nil {
		return nil, internal("generate MAC", err)
	}
	s.noteUse(ctx, k, useGenerateMac)
	return &GenerateMacOutput{KeyId: arnOf(k), Mac: mac, MacAlgorithm: in.MacAlgorithm}, nil
}

// VerifyMac checks an HMAC in constant time. A dry run verifies too.
func (s *Service) VerifyMac(ctx context.Context, c Caller, in *VerifyMacInput) (*VerifyMacOutput, error) {
	k, err := s.keyFor(ctx, c, in.KeyId, useMAC, in.MacAlgorithm)
	if err != nil {
		return nil, err
	}
	m, err := s.secretMaterial(ctx, k)
	if err != nil {
		return nil, err
	}
	defer m.release()
	ok, err := keys.VerifyMAC(k.KeySpec, in.MacAlgorithm, m.key, in.Message, in.Mac)
	if err != nil {
		return nil, internal("verify MAC", err)
	}
	if !ok {
		return nil, awserr.New(awserr.KMSInvalidMac, "The MAC is not valid for this message, key and MAC algorithm.")
	}
	if in.DryRun {
		return nil, errDryRun
	}
	s.noteUse(ctx, k, useVerifyMac)
	return &VerifyMacOutput{KeyId: arnOf(k), MacValid: true, MacAlgorithm: in.MacAlgorithm}, nil
}
