package kms

import (
	"context"
	"sort"
	"strings"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/store"
)

// reservedTagKey reports whether a tag key is AWS's: it begins with
// "aws:", in any letter case ("AWS:", "Aws:" are AWS's too).
func reservedTagKey(k string) bool {
	return len(k) >= 4 && strings.EqualFold(k[:4], "aws:")
}

// mergeTags returns existing with add applied (a new value replaces the old
// one of the same key), checking AWS's tag rules: a reserved key is
// TagException; more than MaxTagsPerKey tags on the key is AWS's tag quota,
// LimitExceededException (the API reference's "a quota was exceeded").
func mergeTags(existing []store.Tag, add []Tag) ([]store.Tag, error) {
	out := append([]store.Tag(nil), existing...)
	seen := make(map[string]bool, len(add))
	for _, t := range add {
		if reservedTagKey(t.TagKey) {
			return nil, awserr.Newf(awserr.Tag, "Tag key '%s' is not valid: tag keys beginning with 'aws:' (in any letter case) are reserved.", t.TagKey)
		}
		if seen[t.TagKey] {
			return nil, awserr.Newf(awserr.Tag, "Duplicate tag key '%s' in the request.", t.TagKey)
		}
		seen[t.TagKey] = true
		replaced := false
		for i := range out {
			if out[i].Key == t.TagKey {
				out[i].Value = t.TagValue
				replaced = true
			}
		}
		if !replaced {
			out = append(out, store.Tag{Key: t.TagKey, Value: t.TagValue})
		}
	}
	if len(out) > MaxTagsPerKey {
		return nil, awserr.Newf(awserr.LimitExceeded, "A KMS key can have at most %d tags.", MaxTagsPerKey)
	}
	return out, nil
}

// TagResourceInput is the TagResource request.
type TagResourceInput struct {
	KeyId string
	Tags  []Tag
}

// TagResource adds or replaces tags of a key.
func (s *Service) TagResource(ctx context.Context, c Caller, in *TagResourceInput) error {
	_, err := s.manageKey(ctx, c, in.KeyId, func(k *store.Key) error {
		tags, err := mergeTags(k.Tags, in.Tags)
		if err != nil {
			return err
		}
		k.Tags = tags
		return nil
	})
	return err
}

// UntagResourceInput is the UntagResource request.
type UntagResourceInput struct {
	KeyId   string
	TagKeys []string
}

// UntagResource removes tags of a key; absent tag keys are ignored.
func (s *Service) UntagResource(ctx context.Context, c Caller, in *UntagResourceInput) error {
	_, err := s.manageKey(ctx, c, in.KeyId, func(k *store.Key) error {
		drop := make(map[string]bool, len(in.TagKeys))
		for _, tk := range in.TagKeys {
			if reservedTagKey(tk) {
				return awserr.Newf(awserr.Tag, "Tag key '%s' is not valid: tag keys beginning with 'aws:' (in any letter case) are reserved.", tk)
			}
			drop[tk] = true
		}
		kept := k.Tags[:0:0]
		for _, t := range k.Tags {
			if !drop[t.Key] {
				kept = append(kept, t)
			}
		}
		k.Tags = kept
		return nil
	})
	return err
}

// ListResourceTagsInput is the ListResourceTags request.
type ListResourceTagsInput struct {
	KeyId  string
	Limit  *int32
	Marker string
}

// ListResourceTagsOutput is the ListResourceTags response.
type ListResourceTagsOutput struct {
	Tags       []Tag
	NextMarker string
	Truncated  bool
}

// ListResourceTags lists a key's tags ordered by tag key; the marker is the
// last tag key returned.
func (s *Service) ListResourceTags(ctx context.Context, c Caller, in *ListResourceTagsInput) (*ListResourceTagsOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	tags := append([]store.Tag(nil), k.Tags...)
	sort.Slice(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
	start := 0
	if in.Marker != "" {
		start = sort.Search(len(tags), func(i int) bool { return tags[i].Key > in.Marker })
	}
	limit := limitOf(in.Limit, 50, 50)
	out := &ListResourceTagsOutput{Tags: []Tag{}}
	for _, t := range tags[start:] {
		if len(out.Tags) == limit {
			out.Truncated = true
			out.NextMarker = out.Tags[len(out.Tags)-1].TagKey
			break
		}
		out.Tags = append(out.Tags, Tag{TagKey: t.Key, TagValue: t.Value})
	}
	return out, nil
}
