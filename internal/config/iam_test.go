package config

import (
	"encoding/json"
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
