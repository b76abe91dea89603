package kms

import (
	"errors"
	"strings"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/keys"
	"github.com/kmsd/kmsd/internal/store"
)

// Scope is where a request acts: the partition and Region its credentials
// are scoped to (SigV4's credential scope) and the account of its
// principal. The service serves every Region its store holds keys of; a
// request sees the keys, aliases and custom key stores of its own scope's
// Region (and, by ARN, other accounts' keys there).
type Scope struct {
	Partition string // e.g. "aws"
	Region    string // e.g. "us-east-1"
	Account   string // 12-digit account id
}

// check refuses an incomplete scope before anything is created in it: a
// Caller built without one (by code that does not come through the
// server) would otherwise store a key or custom key store in no Region.
func (sc Scope) check() error {
	if sc.Partition == "" || sc.Region == "" || sc.Account == "" {
		return errors.New("the caller's scope lacks a partition, Region or account")
	}
	return nil
}

// ScopeOf is the scope of a request signed for region by a principal of
// account: its partition is region's.
func ScopeOf(region, account string) Scope {
	return Scope{Partition: awsarn.PartitionOf(region), Region: region, Account: account}
}

// A key's partition is its Region's (awsarn.PartitionOf): keys do not
// record one, and a key's ARN is bound into its wrapped material
// (materialAAD), so a key's ARN must never change.

// kmsARN is the ARN of a KMS resource ("key/ID" or "alias/NAME"). Every
// KMS ARN the service shows is built here.
func kmsARN(partition, region, account, resource string) string {
	return awsarn.ARN(partition, "kms", region, account, resource)
}

// regionARN is the ARN of a KMS resource in region, in region's partition.
func regionARN(region, account, resource string) string {
	return kmsARN(awsarn.PartitionOf(region), region, account, resource)
}

// keyARN is the ARN of key id in the scope's account and Region.
func (sc Scope) keyARN(id string) string {
	return kmsARN(sc.Partition, sc.Region, sc.Account, "key/"+id)
}

// aliasARN is the ARN of alias name ("alias/…") in the scope's account and
// Region.
func (sc Scope) aliasARN(name string) string {
	return kmsARN(sc.Partition, sc.Region, sc.Account, name)
}

// arnOf is the ARN of key k, in its own account and Region.
func arnOf(k *store.Key) string {
	return regionARN(k.Region, k.Account, "key/"+keyIDOf(k))
}

// keyIDOf is the key id of k as clients see it: its ID, or for a key of a
// multi-Region key the id the related keys share.
func keyIDOf(k *store.Key) string { return keyIDFromRecord(k.ID) }

// A key's record (store.Key.ID) is its key id, except for the keys of a
// multi-Region key: they share their key id ("mrk-…"), one key per Region,
// so each record is named "<key id>/<Region>". Only the service makes or
// reads these names; clients never see them. Deriving the record from the
// key id and the request's Region needs no lookup, and the key id from the
// record needs no key (rewrapping builds a key's ARN from its record alone).

// recordID names the record of key id in region.
func recordID(region, id string) string {
	if keys.IsMultiRegionKeyID(id) {
		return id + "/" + region
	}
	return id
}

// keyIDFromRecord is the key id of the key whose record is rid.
func keyIDFromRecord(rid string) string {
	if i := strings.IndexByte(rid, '/'); i >= 0 {
		return rid[:i]
	}
	return rid
}

// aliasARNOf is the ARN of alias a, in its own account and Region.
func aliasARNOf(a *store.Alias) string {
	return regionARN(a.Region, a.Account, a.Name)
}
