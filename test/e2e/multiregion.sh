#!/usr/bin/env bash
# End-to-end multi-Region scenario with the real AWS CLI v2:
#
#   bash test/e2e/multiregion.sh KMSD_BINARY [WORK_DIR]
#
# Starts kmsd serving three Regions (--regions), creates a multi-Region key
# in us-east-1, replicates it into eu-west-3, encrypts in one Region and
# decrypts in the other (and the reverse, with a data key), signs in one
# and verifies in the other, checks the replica's own tags and state, the
# errors of replicate-key (a Region kmsd does not serve, an existing
# replica, the primary's own Region), rotation managed on the primary,
# update-primary-region, and the deletion of a primary with a replica
# (PendingReplicaDeletion). Prints one line per check and ends with
# "N passed, 0 failed"; on the first failed check it prints what failed and
# exits 1.
#
# The AWS CLI runs under `env -i` with only the variables it needs, so
# nothing from the caller's environment or ~/.aws can reach real AWS.
set -euo pipefail

if (($# < 1)); then
	echo "usage: $0 KMSD_BINARY [WORK_DIR]" >&2
	exit 2
fi
KMSD_BIN=$(realpath "$1")
AWS_BIN=/usr/bin/aws
ACCOUNT=111122223333
BANNER_WAIT_TENTHS=300

if [[ ! -x $AWS_BIN ]]; then
	echo "FAIL: $AWS_BIN not found (install awscli: apt-get install -y awscli)" >&2
	exit 1
fi

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_run multiregion "${2:-}"
KMSD_ARGS=(--regions us-east-1,eu-west-3,ap-northeast-1)

# aws_in REGION ARGS...: the AWS CLI as the admin, configured for REGION.
aws_in() {
	local region=$1
	shift
	env -i PATH=/usr/bin:/bin HOME="$CLIENT_HOME" AWS_ACCESS_KEY_ID="$ADMIN_ID" AWS_SECRET_ACCESS_KEY="$ADMIN_SECRET" \
		AWS_DEFAULT_REGION="$region" AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" \
		"$AWS_BIN" --endpoint-url "$ENDPOINT" "$@"
}

trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

echo "kmsd binary: $KMSD_BIN"
echo "work dir:    $RUN"
"$AWS_BIN" --version

step "start kmsd serving three Regions"
start_kmsd first
ADMIN_ID=$(sed -n 's/^export AWS_ACCESS_KEY_ID=//p' "$KMSD_OUT")
ADMIN_SECRET=$(sed -n 's/^export AWS_SECRET_ACCESS_KEY=//p' "$KMSD_OUT")
expect_match "admin access key id from the banner" '^AKIA[A-Z0-9]{16}$' "$ADMIN_ID"
grep -q '^Regions served: us-east-1 eu-west-3 ap-northeast-1$' "$KMSD_OUT" || fail "the banner lists the served Regions" "$(cat "$KMSD_OUT")"
pass "the banner lists the served Regions"

step "a multi-Region key in us-east-1, replicated into eu-west-3"
check aws_in us-east-1 kms create-key --multi-region --description primary --tags TagKey=site,TagValue=east \
	--query '[KeyMetadata.KeyId,KeyMetadata.MultiRegion,KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType]' --output text
read -r KEY multi type <<<"$OUT"
expect_match "multi-Region key id" '^mrk-[0-9a-f]{32}$' "$KEY"
expect_eq "MultiRegion" True "$multi"
expect_eq "MultiRegionKeyType" PRIMARY "$type"
PRIMARY_ARN="arn:aws:kms:us-east-1:$ACCOUNT:key/$KEY"
REPLICA_ARN="arn:aws:kms:eu-west-3:$ACCOUNT:key/$KEY"
check aws_in us-east-1 kms replicate-key --key-id "$KEY" --replica-region eu-west-3 --description "replica in Paris" \
	--tags TagKey=site,TagValue=paris --query '[ReplicaKeyMetadata.Arn,ReplicaKeyMetadata.KeyState,ReplicaTags[0].TagValue]' --output text
read -r arn state site <<<"$OUT"
expect_eq "replica ARN" "$REPLICA_ARN" "$arn"
expect_eq "replica state" Enabled "$state"
expect_eq "ReplicaTags" paris "$site"
check aws_in eu-west-3 kms describe-key --key-id "$KEY" \
	--query '[KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType,KeyMetadata.MultiRegionConfiguration.PrimaryKey.Arn,KeyMetadata.Description]' --output text
expect_eq "the replica's DescribeKey" "REPLICA	$PRIMARY_ARN	replica in Paris" "$OUT"
check aws_in us-east-1 kms describe-key --key-id "$KEY" --query 'KeyMetadata.MultiRegionConfiguration.ReplicaKeys[].Region' --output text
expect_eq "the primary's replicas" eu-west-3 "$OUT"
check aws_in eu-west-3 kms list-resource-tags --key-id "$KEY" --query 'Tags[].TagValue' --output text
expect_eq "the replica's own tags" paris "$OUT"

step "encrypt in one Region, decrypt in the other"
head -c 200 /dev/urandom >"$F/pt.bin"
check aws_in us-east-1 kms encrypt --key-id "$KEY" --plaintext "fileb://$F/pt.bin" --encryption-context app=e2e \
	--query CiphertextBlob --output text
base64 -d <<<"$OUT" >"$F/ct.bin"
check aws_in eu-west-3 kms decrypt --ciphertext-blob "fileb://$F/ct.bin" --encryption-context app=e2e --query '[Plaintext,KeyId]' --output text
read -r pt keyid <<<"$OUT"
base64 -d <<<"$pt" >"$F/pt.out"
cmp -s "$F/pt.bin" "$F/pt.out" || fail "eu-west-3 decrypts what us-east-1 encrypted"
pass "eu-west-3 decrypts what us-east-1 encrypted"
expect_eq "decrypt KeyId" "$REPLICA_ARN" "$keyid"
check aws_in eu-west-3 kms generate-data-key --key-id "$KEY" --key-spec AES_256 --query '[Plaintext,CiphertextBlob]' --output text
read -r dk dkct <<<"$OUT"
base64 -d <<<"$dkct" >"$F/dk.ct"
check aws_in us-east-1 kms decrypt --ciphertext-blob "fileb://$F/dk.ct" --query Plaintext --output text
expect_eq "us-east-1 decrypts a data key made in eu-west-3" "$dk" "$OUT"
# No replica in ap-northeast-1: AWS answers a Decrypt without KeyId with AccessDeniedException.
expect_error AccessDeniedException aws_in ap-northeast-1 kms decrypt --ciphertext-blob "fileb://$F/ct.bin" --encryption-context app=e2e

step "a signature made in one Region verifies in the other"
check aws_in us-east-1 kms create-key --multi-region --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY --query KeyMetadata.KeyId --output text
SIGN_KEY=$OUT
check aws_in us-east-1 kms replicate-key --key-id "$SIGN_KEY" --replica-region eu-west-3 --query ReplicaKeyMetadata.KeyId --output text
printf 'signed in us-east-1' >"$F/msg"
check aws_in us-east-1 kms sign --key-id "$SIGN_KEY" --message "fileb://$F/msg" --signing-algorithm ECDSA_SHA_256 --query Signature --output text
base64 -d <<<"$OUT" >"$F/sig"
check aws_in eu-west-3 kms verify --key-id "$SIGN_KEY" --message "fileb://$F/msg" --signature "fileb://$F/sig" \
	--signing-algorithm ECDSA_SHA_256 --query SignatureValid --output text
expect_eq "SignatureValid in eu-west-3" True "$OUT"

step "each related key has its own state"
check aws_in eu-west-3 kms disable-key --key-id "$KEY"
expect_error DisabledException aws_in eu-west-3 kms encrypt --key-id "$KEY" --plaintext "fileb://$F/pt.bin"
check aws_in us-east-1 kms encrypt --key-id "$KEY" --plaintext "fileb://$F/pt.bin" --query KeyId --output text
expect_eq "the primary still encrypts" "$PRIMARY_ARN" "$OUT"
check aws_in eu-west-3 kms enable-key --key-id "$KEY"

step "replicate-key refuses what it must, and creates nothing"
expect_error UnsupportedOperationException aws_in us-east-1 kms replicate-key --key-id "$KEY" --replica-region sa-east-1
grep -qF "this kmsd serves us-east-1, eu-west-3, ap-northeast-1" "$F/stderr" || fail "the message names the served Regions" "$(cat "$F/stderr")"
pass "the message names the served Regions"
expect_error AlreadyExistsException aws_in us-east-1 kms replicate-key --key-id "$KEY" --replica-region eu-west-3
expect_error ValidationException aws_in us-east-1 kms replicate-key --key-id "$KEY" --replica-region us-east-1
expect_error UnsupportedOperationException aws_in eu-west-3 kms replicate-key --key-id "$KEY" --replica-region ap-northeast-1
check aws_in ap-northeast-1 kms list-keys --query 'length(Keys)' --output text
expect_eq "keys in ap-northeast-1" 0 "$OUT"

step "rotation is managed on the primary"
expect_error UnsupportedOperationException aws_in eu-west-3 kms enable-key-rotation --key-id "$KEY"
# (CLI 2.9 predates RotationPeriodInDays: the default period, 365 days.)
check aws_in us-east-1 kms enable-key-rotation --key-id "$KEY"
check aws_in eu-west-3 kms get-key-rotation-status --key-id "$KEY" --query KeyRotationEnabled --output text
expect_eq "the replica's rotation status" True "$OUT"

step "update-primary-region"
check aws_in us-east-1 kms update-primary-region --key-id "$KEY" --primary-region eu-west-3
check aws_in eu-west-3 kms describe-key --key-id "$KEY" --query KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType --output text
expect_eq "eu-west-3 is the primary" PRIMARY "$OUT"
check aws_in us-east-1 kms describe-key --key-id "$KEY" --query KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType --output text
expect_eq "us-east-1 is a replica" REPLICA "$OUT"
expect_error UnsupportedOperationException aws_in us-east-1 kms update-primary-region --key-id "$KEY" --primary-region ap-northeast-1

step "a primary with a replica is deleted last"
check aws_in eu-west-3 kms schedule-key-deletion --key-id "$KEY" --pending-window-in-days 7 --output json
state=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["KeyState"], "DeletionDate" in d, d["PendingWindowInDays"])' <"$F/stdout")
expect_eq "schedule-key-deletion of the primary" "PendingReplicaDeletion False 7" "$state"
expect_error KMSInvalidStateException aws_in eu-west-3 kms encrypt --key-id "$KEY" --plaintext "fileb://$F/pt.bin"
check aws_in us-east-1 kms decrypt --ciphertext-blob "fileb://$F/ct.bin" --encryption-context app=e2e --query KeyId --output text
expect_eq "the replica still decrypts" "$PRIMARY_ARN" "$OUT"
check aws_in eu-west-3 kms cancel-key-deletion --key-id "$KEY"
check aws_in eu-west-3 kms describe-key --key-id "$KEY" --query KeyMetadata.KeyState --output text
expect_eq "state after cancel-key-deletion" Disabled "$OUT"

stop_kmsd
KMSD_PID=""
echo "$PASSED passed, 0 failed"
