package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIAMSection(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kmsd.yaml")
	yaml := `
iam:
  accounts:
    - id: "111122223333"
      users:
        - name: alice
          tags: {team: payments}
          policies:
            - name: json
              document: '{"Version": "2012-10-17", "Statement": []}'
            - name: yaml
              document:
                Version: 2012-10-17
                Statement:
                  - Effect: Allow
                    Action: [kms:Encrypt]
                    Resource: "*"
                    Condition: {NumericLessThan: {"kms:x": 30}, Bool: {"aws:SecureTransport": true}}
            - file: policies/p.json
      roles:
        - name: app
          path: /services/
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--config", file}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.IAM.BaseDir != dir || len(c.IAM.Accounts) != 1 {
		t.Fatalf("IAM = %+v", c.IAM)
	}
	a := c.IAM.Accounts[0]
	if a.ID != "111122223333" || len(a.Users) != 1 || len(a.Roles) != 1 || a.Roles[0].Path != "/services/" || a.Users[0].Tags["team"] != "payments" {
		t.Fatalf("account = %+v", a)
	}
	pols := a.Users[0].Policies
	if string(pols[0].Document) != `{"Version": "2012-10-17", "Statement": []}` || pols[2].File != "policies/p.json" {
		t.Fatalf("policies = %+v", pols)
	}
	// The YAML document became JSON, every scalar a string (the date-like
	// version included).
	var doc map[string]any
	if err := json.Unmarshal([]byte(pols[1].Document), &doc); err != nil {
		t.Fatalf("YAML document as JSON %q: %v", pols[1].Document, err)
	}
	want := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Encrypt"],"Resource":"*","Condition":{"NumericLessThan":{"kms:x":"30"},"Bool":{"aws:SecureTransport":"true"}}}]}`
	if string(pols[1].Document) != want {
		t.Fatalf("YAML document as JSON:\n got %s\nwant %s", pols[1].Document, want)
	}
}

func TestIAMRejects(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"accounts: [{id: 12345}]", "12-digit"},
		{`accounts: [{id: "111122223333"}, {id: "111122223333"}]`, "declared twice"},
		{`accounts: [{id: "111122223333", users: [{name: "bad name"}]}]`, "not a valid IAM name"},
		{`accounts: [{id: "111122223333", users: [{name: a}, {name: a}]}]`, "declared twice"},
		{`accounts: [{id: "111122223333", roles: [{name: r, path: nope}]}]`, "path"},
		{`accounts: [{id: "111122223333", users: [{name: a, policies: [{name: p}]}]}]`, "either document or file"},
		{`accounts: [{id: "111122223333", users: [{name: a, policies: [{document: "{}", file: x}]}]}]`, "either document or file"},
		{`accounts: [{id: "111122223333", users: [{name: a, assume_role_policy: "{}"}]}]`, "belong to roles"},
		{`accounts: [{id: "111122223333", users: [{name: a, max_session_duration: 3600}]}]`, "belong to roles"},
		{`accounts: [{id: "111122223333", roles: [{name: r, max_session_duration: 3599}]}]`, "3600 to 43200"},
		{`accounts: [{id: "111122223333", roles: [{name: r, max_session_duration: 43201}]}]`, "3600 to 43200"},
	} {
		dir := t.TempDir()
		file := filepath.Join(dir, "kmsd.yaml")
		body := "iam:\n  " + strings.ReplaceAll(tc.yaml, "\n", "\n  ") + "\n"
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load([]string{"--config", file}, env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
}

// TestIAMPolicyAliasBomb: a policy document in YAML whose anchors each list
// ten aliases of the one before expands tenfold per line. Before its size
// was bounded, these 650 bytes made a 47 MB document (in 2.6 s); three more
// lines, 47 GB: kmsd ran out of memory reading its configuration. (Six
// levels, so that the test fails rather than exhausts the machine if the
// bound goes.)
func TestIAMPolicyAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("iam:\n  accounts:\n    - id: \"111122223333\"\n      users:\n        - name: a\n          policies:\n            - name: p\n              document:\n")
	b.WriteString("                l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 6; i++ {
		p := fmt.Sprintf("*l%d", i-1)
		fmt.Fprintf(&b, "                l%d: &l%d [%s]\n", i, i, strings.Repeat(p+", ", 9)+p)
	}
	c := Defaults()
	err := decodeStrict([]byte(b.String()), &c)
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("decode: %v, want a document too long", err)
	}

	// A document within the bound still converts, aliases and all.
	small := "iam:\n  accounts:\n    - id: \"111122223333\"\n      users:\n        - name: a\n          policies:\n            - name: p\n              document:\n" +
		"                Version: \"2012-10-17\"\n                Statement:\n                  - &s {Effect: Allow, Action: \"kms:Encrypt\", Resource: \"*\"}\n                  - *s\n"
	c = Defaults()
	if err := decodeStrict([]byte(small), &c); err != nil {
		t.Fatal(err)
	}
	const want = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"},{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"}]}`
	if got := c.IAM.Accounts[0].Users[0].Policies[0].Document; string(got) != want {
		t.Fatalf("document %s, want %s", got, want)
	}
}
