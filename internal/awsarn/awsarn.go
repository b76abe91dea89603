// Package awsarn is kmsd's one source of AWS partitions and the builder of
// the ARNs every layer shows: kms's keys and aliases, iam's principals and
// sessions, the account roots of key policies and grants. It is a leaf.
//
// A Region's partition is derived from its name (PartitionOf). kmsd serves
// the Regions of one partition, Partition: keys do not record a partition,
// and a key's ARN is bound into its wrapped material, so a key's ARN must
// never change; config refuses Regions of any other partition. IAM
// principals, global within a partition, are in Partition too.
package awsarn

import "strings"

// Partition is the partition of every Region kmsd serves and of its IAM
// principals.
const Partition = "aws"

// partitions maps Region name prefixes to the partitions that are not
// "aws" (longest prefixes first where one is a prefix of another).
var partitions = []struct{ prefix, partition string }{
	{"cn-", "aws-cn"},
	{"us-gov-", "aws-us-gov"},
	{"us-isob-", "aws-iso-b"},
	{"us-isof-", "aws-iso-f"},
	{"us-iso-", "aws-iso"},
	{"eu-isoe-", "aws-iso-e"},
	{"eusc-", "aws-eusc"},
}

// PartitionOf returns the partition of region: "aws" for the commercial
// Regions (and any name no other partition claims).
func PartitionOf(region string) string {
	for _, p := range partitions {
		if strings.HasPrefix(region, p.prefix) {
			return p.partition
		}
	}
	return Partition
}

// ARN builds arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE.
func ARN(partition, service, region, account, resource string) string {
	return "arn:" + partition + ":" + service + ":" + region + ":" + account + ":" + resource
}

// Root is the ARN of the root principal of account, which stands for the
// whole account in policies and grants.
func Root(partition, account string) string {
	return ARN(partition, "iam", "", account, "root")
}

// IsRoot reports whether s is Root(partition, account), without building
// it (authorization calls it for every grant it checks).
func IsRoot(s, partition, account string) bool {
	rest, ok := strings.CutPrefix(s, "arn:")
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(rest, partition)
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(rest, ":iam::")
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(rest, account)
	return ok && rest == ":root"
}

// IAM is the ARN of an IAM principal of account: kind "user" or "role",
// path "" or "/…/", name.
func IAM(partition, account, kind, path, name string) string {
	if path == "" {
		path = "/"
	}
	return ARN(partition, "iam", "", account, kind+path+name)
}

// AssumedRole is the ARN of session of role roleName in account.
func AssumedRole(partition, account, roleName, session string) string {
	return ARN(partition, "sts", "", account, "assumed-role/"+roleName+"/"+session)
}

// ParseAssumedRole splits an AssumedRole ARN of partition.
func ParseAssumedRole(s, partition string) (account, roleName, session string, ok bool) {
	rest, found := strings.CutPrefix(s, "arn:"+partition+":sts::")
	if !found {
		return "", "", "", false
	}
	account, rest, found = strings.Cut(rest, ":assumed-role/")
	if !found {
		return "", "", "", false
	}
	roleName, session, found = strings.Cut(rest, "/")
	if !found || roleName == "" || session == "" || strings.Contains(session, "/") {
		return "", "", "", false
	}
	return account, roleName, session, true
}
