package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// IAM declares kmsd's principals: per account, IAM users and roles with
// their identity policies and principal tags. Access keys are not declared
// here: `kmsd iam create-access-key` creates them (their secrets live only
// wrapped in the data folder). kmsd reloads this section on SIGHUP.
//
//	iam:
//	  accounts:
//	    - id: "111122223333"
//	      users:
//	        - name: alice
//	          tags: {team: payments}
//	          policies:
//	            - name: use-keys
//	              document: |
//	                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}]}
//	            - file: policies/describe.json
//	      roles:
//	        - name: app
//	          path: /services/
//	          max_session_duration: 7200
//	          assume_role_policy: |
//	            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
//	             "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "sts:AssumeRole"}]}
//	          policies:
//	            - name: inline-yaml
//	              document:
//	                Version: "2012-10-17"
//	                Statement:
//	                  - {Effect: Allow, Action: "kms:GenerateDataKey*", Resource: "*"}
//
// The built-in user admin of the default account (the one `kmsd serve`
// creates an access key for) has an implicit identity policy that allows
// everything, unless the configuration declares a user of that name there.
type IAM struct {
	Accounts []IAMAccount `yaml:"accounts"`
	// BaseDir is where relative policy files are: the configuration
	// file's folder.
	BaseDir string `yaml:"-"`
}

// IAMAccount declares the users and roles of one account.
type IAMAccount struct {
	ID    string         `yaml:"id"`
	Users []IAMPrincipal `yaml:"users"`
	Roles []IAMPrincipal `yaml:"roles"`
}

// IAMPrincipal is an IAM user or role.
type IAMPrincipal struct {
	Name     string            `yaml:"name"`
	Path     string            `yaml:"path"` // "/" when empty
	Tags     map[string]string `yaml:"tags"`
	Policies []IAMPolicy       `yaml:"policies"`
	// AssumeRolePolicy is a role's trust policy: who may call
	// sts:AssumeRole on it (roles only). A role without one cannot be
	// assumed through STS.
	AssumeRolePolicy PolicyDocument `yaml:"assume_role_policy"`
	// MaxSessionDuration bounds, in seconds, the sessions AssumeRole
	// issues for the role (roles only): 3600 to 43200, 3600 when 0.
	MaxSessionDuration int `yaml:"max_session_duration"`
}

// IAMPolicy is an identity policy: a document given inline (JSON text, or
// YAML that kmsd converts to JSON) or the path of a JSON file.
type IAMPolicy struct {
	Name     string         `yaml:"name"`
	Document PolicyDocument `yaml:"document"`
	File     string         `yaml:"file"`
}

// PolicyDocument is a policy document in JSON. In YAML it is either a
// string holding JSON or a YAML mapping; a mapping is converted to JSON
// with every scalar as a JSON string (so that "Version: 2012-10-17" stays
// the string "2012-10-17"; the policy language accepts strings wherever it
// accepts numbers and booleans).
type PolicyDocument string

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *PolicyDocument) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*d = PolicyDocument(n.Value)
		return nil
	}
	var b bytes.Buffer
	if err := yamlToJSON(&b, n, 0); err != nil {
		return fmt.Errorf("line %d: policy document: %w", n.Line, err)
	}
	*d = PolicyDocument(b.String())
	return nil
}

// maxPolicyDocument bounds a policy document converted from YAML: four
// times what a key policy may hold (AWS's identity policies are smaller
// still). Without a bound, YAML aliases make a tiny file a huge document:
// ten lines of anchors, each a list of ten aliases of the one before, are
// 10^10 scalars.
const maxPolicyDocument = 128 << 10

func yamlToJSON(b *bytes.Buffer, n *yaml.Node, depth int) error {
	if depth > 64 {
		return errors.New("nested too deeply")
	}
	// Every node writes at least one byte, so this bounds the work too.
	if b.Len() > maxPolicyDocument {
		return fmt.Errorf("longer than %d bytes in JSON (YAML aliases expand where they are used)", maxPolicyDocument)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return errors.New("empty document")
		}
		return yamlToJSON(b, n.Content[0], depth+1)
	case yaml.AliasNode:
		return yamlToJSON(b, n.Alias, depth+1)
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(n.Content[i].Value)
			b.Write(k)
			b.WriteByte(':')
			if err := yamlToJSON(b, n.Content[i+1], depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := yamlToJSON(b, c, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			b.WriteString("null")
			return nil
		}
		v, _ := json.Marshal(n.Value)
		b.Write(v)
	default:
		return fmt.Errorf("unsupported YAML node at line %d", n.Line)
	}
	return nil
}

var (
	// IAM user and role names, and paths, as IAM allows them.
	iamNameRE = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	iamPathRE = regexp.MustCompile(`^/([\x21-\x7e]+/)*$`)
)

// Validate checks the iam section's form; package iam compiles its
// policies (and reports those that do not parse).
func (c IAM) Validate() error {
	seen := map[string]bool{}
	for i, a := range c.Accounts {
		where := fmt.Sprintf("iam.accounts[%d]", i)
		if !accountRE.MatchString(a.ID) {
			return fmt.Errorf("%s: id %q is not a 12-digit account id (quote it in YAML)", where, a.ID)
		}
		if seen[a.ID] {
			return fmt.Errorf("%s: account %s is declared twice", where, a.ID)
		}
		seen[a.ID] = true
		if err := validatePrincipals(where+".users", a.Users, false); err != nil {
			return err
		}
		if err := validatePrincipals(where+".roles", a.Roles, true); err != nil {
			return err
		}
	}
	return nil
}

func validatePrincipals(where string, ps []IAMPrincipal, roles bool) error {
	names := map[string]bool{}
	for i, p := range ps {
		at := fmt.Sprintf("%s[%d]", where, i)
		if !iamNameRE.MatchString(p.Name) {
			return fmt.Errorf("%s: name %q is not a valid IAM name (1-64 of A-Z a-z 0-9 _+=,.@-)", at, p.Name)
		}
		at = fmt.Sprintf("%s (%s)", at, p.Name)
		if names[p.Name] {
			return fmt.Errorf("%s: declared twice", at)
		}
		names[p.Name] = true
		if p.Path != "" && (len(p.Path) > 512 || !iamPathRE.MatchString(p.Path)) {
			return fmt.Errorf("%s: path %q must start and end with / (like /division/team/)", at, p.Path)
		}
		if len(p.Tags) > 50 {
			return fmt.Errorf("%s: %d tags; at most 50", at, len(p.Tags))
		}
		for k, v := range p.Tags {
			if k == "" || len(k) > 128 || len(v) > 256 {
				return fmt.Errorf("%s: tag %q: keys have 1-128 characters, values up to 256", at, k)
			}
		}
		if !roles && (p.AssumeRolePolicy != "" || p.MaxSessionDuration != 0) {
			return fmt.Errorf("%s: assume_role_policy and max_session_duration belong to roles, not users", at)
		}
		if p.MaxSessionDuration != 0 && (p.MaxSessionDuration < 3600 || p.MaxSessionDuration > 43200) {
			return fmt.Errorf("%s: max_session_duration %d: use 3600 to 43200 seconds", at, p.MaxSessionDuration)
		}
		pnames := map[string]bool{}
		for j, pol := range p.Policies {
			pat := fmt.Sprintf("%s.policies[%d]", at, j)
			if (pol.Document == "") == (pol.File == "") {
				return fmt.Errorf("%s: give either document or file", pat)
			}
			if pol.Name != "" {
				if pnames[pol.Name] {
					return fmt.Errorf("%s: policy name %q used twice", pat, pol.Name)
				}
				pnames[pol.Name] = true
			}
		}
	}
	return nil
}
