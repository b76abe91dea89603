package awsarn

import "testing"

func TestPartitionOf(t *testing.T) {
	for _, tc := range []struct{ region, want string }{
		{"us-east-1", "aws"}, {"eu-west-3", "aws"}, {"il-central-1", "aws"}, {"mx-central-1", "aws"},
		{"cn-north-1", "aws-cn"}, {"cn-northwest-1", "aws-cn"},
		{"us-gov-west-1", "aws-us-gov"}, {"us-gov-east-1", "aws-us-gov"},
		{"us-iso-east-1", "aws-iso"}, {"us-isob-east-1", "aws-iso-b"}, {"us-isof-south-1", "aws-iso-f"},
		{"eu-isoe-west-1", "aws-iso-e"}, {"eusc-de-east-1", "aws-eusc"},
	} {
		if got := PartitionOf(tc.region); got != tc.want {
			t.Errorf("PartitionOf(%s) = %s, want %s", tc.region, got, tc.want)
		}
	}
}

func TestBuilders(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ARN("aws", "kms", "us-east-1", "111122223333", "key/k"), "arn:aws:kms:us-east-1:111122223333:key/k"},
		{Root("aws", "111122223333"), "arn:aws:iam::111122223333:root"},
		{Root("aws-cn", "111122223333"), "arn:aws-cn:iam::111122223333:root"},
		{IAM("aws", "111122223333", "user", "", "bob"), "arn:aws:iam::111122223333:user/bob"},
		{IAM("aws", "111122223333", "role", "/ops/", "r"), "arn:aws:iam::111122223333:role/ops/r"},
		{AssumedRole("aws", "111122223333", "r", "s"), "arn:aws:sts::111122223333:assumed-role/r/s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

func TestIsRoot(t *testing.T) {
	for _, tc := range []struct {
		s, partition, account string
		want                  bool
	}{
		{"arn:aws:iam::111122223333:root", "aws", "111122223333", true},
		{"arn:aws:iam::111122223333:root", "aws-cn", "111122223333", false},
		{"arn:aws:iam::111122223333:root", "aws", "444455556666", false},
		{"arn:aws:iam::111122223333:user/root", "aws", "111122223333", false},
		{"arn:aws:iam::111122223333:rootx", "aws", "111122223333", false},
		{"arn:aws:iam::1111222233334:root", "aws", "111122223333", false},
		{"", "aws", "111122223333", false},
	} {
		if got := IsRoot(tc.s, tc.partition, tc.account); got != tc.want {
			t.Errorf("IsRoot(%q, %s, %s) = %v", tc.s, tc.partition, tc.account, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { IsRoot("arn:aws:iam::111122223333:root", "aws", "111122223333") }); n != 0 {
		t.Errorf("IsRoot allocates %v times", n)
	}
}

func TestParseAssumedRole(t *testing.T) {
	a, r, s, ok := ParseAssumedRole(AssumedRole("aws", "111122223333", "role", "sess"), "aws")
	if !ok || a != "111122223333" || r != "role" || s != "sess" {
		t.Fatalf("round trip: %s %s %s %v", a, r, s, ok)
	}
	for _, bad := range []string{"arn:aws-cn:sts::111122223333:assumed-role/r/s", "arn:aws:sts::1:assumed-role/r", "arn:aws:sts::1:assumed-role//s", "arn:aws:sts::1:assumed-role/r/s/x"} {
		if _, _, _, ok := ParseAssumedRole(bad, "aws"); ok {
			t.Errorf("%s parsed", bad)
		}
	}
}
