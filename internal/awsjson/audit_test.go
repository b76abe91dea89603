package awsjson

import (
	"encoding/json"
	"reflect"
	"testing"
)

// reflectMembers is how the audited members were picked before the scan
// (one encoding/json decoding into a struct of json.RawMessage fields):
// the reference the scan must agree with.
func reflectMembers(names []string, body []byte) map[string]any {
	fields := make([]reflect.StructField, len(names))
	for i, n := range names {
		fields[i] = reflect.StructField{Name: n, Type: reflect.TypeFor[json.RawMessage](), Tag: reflect.StructTag(`json:"` + n + `"`)}
	}
	v := reflect.New(reflect.StructOf(fields))
	if json.Unmarshal(body, v.Interface()) != nil {
		return nil
	}
	var out map[string]any
	for i, n := range names {
		raw := v.Elem().Field(i).Interface().(json.RawMessage)
		if raw == nil {
			continue
		}
		if out == nil {
			out = map[string]any{}
		}
		out[lowerFirst(n)] = raw
	}
	return out
}

// sameMembers compares two results as the audit record writes them.
func sameMembers(t *testing.T, got, want map[string]any) {
	t.Helper()
	g, err1 := json.Marshal(got)
	w, err2 := json.Marshal(want)
	if err1 != nil || err2 != nil || string(g) != string(w) {
		t.Fatalf("members:\n got %s (%v)\nwant %s (%v)", g, err1, w, err2)
	}
}

var auditTestNames = []string{"KeyId", "EncryptionContext", "NumberOfBytes", "DryRun", "GrantTokens"}

func TestAuditedMembersScan(t *testing.T) {
	tests := []struct{ name, body string }{
		{"encrypt", `{"KeyId":"alias/x","Plaintext":"c2VjcmV0","EncryptionContext":{"a":"b","c":{"d":[1,"}"]}}}`},
		{"spaces", " \n{ \"KeyId\" : \"k\" ,\t\"NumberOfBytes\" :\r 32 , \"DryRun\" : true } \n"},
		{"case and duplicates", `{"keyid":"first","KEYID":"second","dryrun":false}`},
		{"escaped names", `{"Key\u0049d":"k","\u0044ryRun":null}`},
		{"kelvin sign", "{\"\u212Aeyid\":\"k\"}"},
		{"strings with quotes and brackets", `{"GrantTokens":["a\"]}","\\"],"KeyId":"x\\\"y"}`},
		{"numbers and literals", `{"NumberOfBytes":-1.5e3,"DryRun":null,"Other":[true,false,null]}`},
		{"no listed member", `{"Plaintext":"eA=="}`},
		{"empty object", `{}`},
		{"null", `null`},
		{"array", `[{"KeyId":"k"}]`},
		{"string", `"KeyId"`},
		{"invalid", `{"KeyId":"k",}`},
		{"truncated", `{"KeyId":"k"`},
		{"trailing data", `{"KeyId":"k"} x`},
		{"empty", ``},
		{"invalid UTF-8 name", "{\"Key\xffId\":\"k\",\"KeyId\":\"\xff\"}"},
	}
	m := newMembers(auditTestNames)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sameMembers(t, m.of([]byte(tc.body)), reflectMembers(auditTestNames, []byte(tc.body)))
		})
	}
	if got := (members{}).of([]byte(`{"KeyId":"k"}`)); got != nil {
		t.Errorf("no allow-list: %v, want nil", got)
	}
}

func FuzzAuditedMembers(f *testing.F) {
	f.Add([]byte(`{"KeyId":"alias/x","Plaintext":"c2VjcmV0","EncryptionContext":{"a":"b"}}`))
	f.Add([]byte(`{"keyid":"a","KEYID":"b","\u0044ryRun":true}`))
	m := newMembers(auditTestNames)
	f.Fuzz(func(t *testing.T, body []byte) {
		sameMembers(t, m.of(body), reflectMembers(auditTestNames, body))
	})
}

// BenchmarkAuditedMembers measures picking an Encrypt request's audited
// members from its body.
func BenchmarkAuditedMembers(b *testing.B) {
	m := newMembers([]string{"KeyId", "EncryptionContext", "EncryptionAlgorithm", "DryRun"})
	body := []byte(`{"EncryptionContext":{"tenant":"t1"},"KeyId":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab","Plaintext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`)
	b.ReportAllocs()
	for b.Loop() {
		if m.of(body) == nil {
			b.Fatal("no members")
		}
	}
}
