package kms

import "github.com/kmsd/kmsd/internal/store"

// What an authorization resolved, for the operation that follows it.
//
// An operation's Rule finds the keys a request acts on (a key named by
// alias, the key a ciphertext names, an alias's current target) and decides
// on those very key snapshots. Were the operation to resolve them again, an
// alias moved in between would make it act on a key that was never
// authorized. So Rule.Check returns the Caller annotated with what it
// resolved, and the operation's lookups (resolve, blobKey, the alias
// operations) take those first. A Caller that did not come from Rule.Check
// (tests, tools calling Service methods directly) has no annotation, and
// lookups resolve as usual.

// resolvedBy says how a request named a key.
type resolvedBy uint8

const (
	byName  resolvedBy = iota // a KeyId member, in one resolveForm
	byBlob                    // the key id in a ciphertext blob
	byAlias                   // the current target of the alias an alias operation names
)

type resolvedKey struct {
	by   resolvedBy
	form resolveForm // for byName
	name string      // the KeyId as the request named it, the blob's key id, or the alias name
	key  *store.Key
}

// authorized is the annotation. Requests resolve at most three keys
// (UpdateAlias: the alias's target and the new target; ReEncrypt: source
// and destination), so a slice scan is all the lookup needs.
type authorized struct {
	keys []resolvedKey
	buf  [3]resolvedKey
}

func (au *authorized) add(by resolvedBy, form resolveForm, name string, k *store.Key) {
	if au.keys == nil {
		au.keys = au.buf[:0]
	}
	au.keys = append(au.keys, resolvedKey{by, form, name, k})
}

// find returns the key the authorization resolved for (by, form, name), or
// nil. au may be nil.
func (au *authorized) find(by resolvedBy, form resolveForm, name string) *store.Key {
	if au == nil {
		return nil
	}
	for i := range au.keys {
		if e := &au.keys[i]; e.by == by && e.form == form && e.name == name {
			return e.key
		}
	}
	return nil
}

// resolve resolves a key for authorization and records it for the
// operation.
func (a *authzCall) resolve(keyID string, form resolveForm) (*store.Key, error) {
	k, err := a.s.resolve(a.ctx, *a.c, keyID, form)
	if err != nil {
		return nil, err
	}
	a.resolved.add(byName, form, keyID, k)
	return k, nil
}

// blobKey finds the key a ciphertext names and records it for the
// operation.
func (a *authzCall) blobKey(id string) (*store.Key, error) {
	k, err := a.s.blobKey(a.ctx, *a.c, id)
	if err != nil {
		return nil, err
	}
	a.resolved.add(byBlob, 0, id, k)
	return k, nil
}

// authorizedAliasTarget returns the key alias name pointed at when the
// request was authorized, or nil when c was not authorized by a rule that
// looked it up.
func authorizedAliasTarget(c Caller, name string) *store.Key {
	return c.authorized.find(byAlias, 0, name)
}
