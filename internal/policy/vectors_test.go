package policy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The vectors in testdata/ come from the project's shared reference
// (../shared/testdata/policy); see testdata/README.md.

type vectorFile struct {
	Description string          `json:"description"`
	Policy      json.RawMessage `json:"policy"`
	Cases       []struct {
		Name      string            `json:"name"`
		Principal string            `json:"principal"`
		Action    string            `json:"action"`
		Resource  string            `json:"resource"`
		Context   map[string]string `json:"context"`
		Decision  string            `json:"decision"`
		Matched   []string          `json:"matched"`
	} `json:"cases"`
	Expect *struct {
		Rejected        bool   `json:"rejected"`
		MessageMentions string `json:"message_mentions"`
	} `json:"expect"`
}

func TestVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors in testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var v vectorFile
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			p, err := Parse(v.Policy, ResourcePolicy)
			if v.Expect != nil && v.Expect.Rejected {
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("Parse = %v, want a *SyntaxError", err)
				}
				if !strings.Contains(err.Error(), v.Expect.MessageMentions) {
					t.Errorf("error %q does not mention %q", err, v.Expect.MessageMentions)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(v.Cases) == 0 {
				t.Fatal("vector has no cases")
			}
			for _, c := range v.Cases {
				t.Run(c.Name, func(t *testing.T) {
					pr, err := NewPrincipal(c.Principal)
					if err != nil {
						t.Fatal(err)
					}
					ctx := NewContext(len(c.Context))
					for k, val := range c.Context {
						ctx.Set(k, val)
					}
					r := &Request{Principal: pr, Action: c.Action, Resource: c.Resource, Context: ctx}
					want := map[string]Decision{"Deny": Deny, "Allow": Allow, "NoMatch": NotApplicable}[c.Decision]
					if got := p.Evaluate(r); got != want {
						t.Errorf("Evaluate = %v, want %v (%s)", got, want, c.Decision)
					}
					if got := p.EvaluateDetailed(r).Decision; got != want {
						t.Errorf("EvaluateDetailed = %v, want %v", got, want)
					}
					var sids []string
					for _, m := range p.Matches(r) {
						sids = append(sids, m.Sid)
					}
					if !reflect.DeepEqual(sids, c.Matched) {
						t.Errorf("matched statements %q, want %q", sids, c.Matched)
					}
				})
			}
		})
	}
}
