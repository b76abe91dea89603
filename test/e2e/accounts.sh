#!/usr/bin/env bash
# End-to-end cross-account scenario with the real AWS CLI v2:
#
#   bash test/e2e/accounts.sh KMSD_BINARY [WORK_DIR]
#
# Starts kmsd with a configuration that declares two accounts: alice in the
# owner account (an identity policy allowing kms:*) and bob in a partner
# account (an identity policy allowing some operations on the owner's keys).
# alice creates a key whose policy allows bob; bob encrypts and decrypts
# with it by key ARN and alias ARN, as AWS allows across accounts. Checks
# each rule: a bare key id or alias name names bob's own account
# (NotFoundException); a request refused when the key policy does not allow
# it, when bob's identity policy does not, and for an operation AWS never
# allows across accounts (AccessDeniedException with AWS's message); a
# grant allows without an identity policy; each account lists its own
# keys. Prints one line per check and ends with "N passed, 0 failed"; on
# the first failed check it prints what failed and exits 1.
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
REGION=eu-central-1
OWNER=111122223333
PARTNER=444455556666
BANNER_WAIT_TENTHS=300

if [[ ! -x $AWS_BIN ]]; then
	echo "FAIL: $AWS_BIN not found (install awscli: apt-get install -y awscli)" >&2
	exit 1
fi

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_run accounts "${2:-}"
CONFIG=$RUN/kmsd.yaml
KMSD_ARGS=(--config "$CONFIG")

ALICE_ARN="arn:aws:iam::$OWNER:user/alice"
BOB_ARN="arn:aws:iam::$PARTNER:user/bob"

# aws_with ID SECRET ARGS...: the AWS CLI with one principal's credentials.
aws_with() {
	local id=$1 secret=$2
	shift 2
	env -i PATH=/usr/bin:/bin HOME="$CLIENT_HOME" AWS_ACCESS_KEY_ID="$id" AWS_SECRET_ACCESS_KEY="$secret" \
		AWS_DEFAULT_REGION="$REGION" AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" \
		"$AWS_BIN" --endpoint-url "$ENDPOINT" "$@"
}
as_alice() { aws_with "$ALICE_ID" "$ALICE_SECRET" "$@"; }
as_bob() { aws_with "$BOB_ID" "$BOB_SECRET" "$@"; }

# expect_denied ACTION RESOURCE WHY CMD...: AccessDeniedException with AWS's
# message, for bob.
expect_denied() {
	local action=$1 resource=$2 why=$3
	shift 3
	expect_error AccessDeniedException "$@"
	local want="User: $BOB_ARN is not authorized to perform: $action on resource: $resource $why"
	grep -qF "$want" "$F/stderr" || fail "AccessDeniedException message" "want: $want" "got:  $(cat "$F/stderr")"
	pass "message: ...$action on resource: ${resource##*/} $why"
}

# create_access_key ACCOUNT USER: `kmsd iam create-access-key`; sets KEY_ID
# and KEY_SECRET.
create_access_key() {
	check "$KMSD_BIN" iam create-access-key --account "$1" --user "$2" --config "$CONFIG" --data-dir "$DATA"
	KEY_ID=$(sed -n 's/^export AWS_ACCESS_KEY_ID=//p' <<<"$OUT")
	KEY_SECRET=$(sed -n 's/^export AWS_SECRET_ACCESS_KEY=//p' <<<"$OUT")
	expect_match "access key id of $2" '^AKIA[A-Z0-9]{16}$' "$KEY_ID"
	grep -qF "arn:aws:iam::$1:user/$2" <<<"$OUT" || fail "create-access-key names arn:aws:iam::$1:user/$2" "$OUT"
}

trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

cat >"$CONFIG" <<EOF
regions: [eu-central-1, us-west-2]
iam:
  accounts:
    - id: "$OWNER"
      users:
        - name: alice
          policies:
            - name: everything
              document: {Version: 2012-10-17, Statement: [{Effect: Allow, Action: "kms:*", Resource: "*"}]}
    - id: "$PARTNER"
      users:
        - name: bob
          policies:
            - name: use-owner-keys
              document:
                Version: 2012-10-17
                Statement:
                  - Effect: Allow
                    Action: [kms:Encrypt, kms:Decrypt, kms:DescribeKey, kms:DisableKey]
                    Resource: "arn:aws:kms:*:$OWNER:key/*"
                  - Effect: Allow
                    Action: [kms:CreateKey, kms:ListKeys, kms:ListAliases]
                    Resource: "*"
EOF

echo "kmsd binary: $KMSD_BIN"
echo "work dir:    $RUN"
"$AWS_BIN" --version

step "start kmsd with two accounts"
check "$KMSD_BIN" iam check --config "$CONFIG"
start_kmsd first
grep -q '^Regions served: eu-central-1 us-west-2$' "$KMSD_OUT" || fail "the banner lists the served Regions" "$(cat "$KMSD_OUT")"
pass "the banner lists the served Regions"
create_access_key "$OWNER" alice
ALICE_ID=$KEY_ID
ALICE_SECRET=$KEY_SECRET
create_access_key "$PARTNER" bob
BOB_ID=$KEY_ID
BOB_SECRET=$KEY_SECRET

step "alice creates a key whose policy allows bob"
cat >"$F/policy.json" <<EOF
{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::$OWNER:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "bob of the partner account", "Effect": "Allow", "Principal": {"AWS": "$BOB_ARN"},
     "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey", "kms:DisableKey"], "Resource": "*"}
  ]
}
EOF
check as_alice kms create-key --description shared --policy "file://$F/policy.json" --query KeyMetadata.Arn --output text
KEY_ARN=$OUT
KEY=${KEY_ARN##*/}
expect_match "key ARN in the owner account and the request's Region" "^arn:aws:kms:$REGION:$OWNER:key/" "$KEY_ARN"
check as_alice kms create-alias --alias-name alias/shared --target-key-id "$KEY"
ALIAS_ARN="arn:aws:kms:$REGION:$OWNER:alias/shared"
check as_alice kms create-key --description private --query KeyMetadata.Arn --output text
PRIVATE_ARN=$OUT

step "bob encrypts and decrypts across accounts: both policies allow"
head -c 64 /dev/urandom >"$F/pt.bin"
check as_bob kms encrypt --key-id "$KEY_ARN" --plaintext "fileb://$F/pt.bin" --query CiphertextBlob --output text
base64 -d <<<"$OUT" >"$F/ct.bin"
check as_bob kms decrypt --ciphertext-blob "fileb://$F/ct.bin" --query '[Plaintext,KeyId]' --output text
read -r pt keyid <<<"$OUT"
base64 -d <<<"$pt" >"$F/pt.out"
cmp -s "$F/pt.bin" "$F/pt.out" || fail "bob's decrypt returns the plaintext"
pass "bob's decrypt returns the plaintext"
expect_eq "decrypt KeyId" "$KEY_ARN" "$keyid"
check as_bob kms encrypt --key-id "$ALIAS_ARN" --plaintext "fileb://$F/pt.bin" --query KeyId --output text
expect_eq "encrypt by alias ARN" "$KEY_ARN" "$OUT"
check as_bob kms describe-key --key-id "$KEY_ARN" --query KeyMetadata.AWSAccountId --output text
expect_eq "describe-key across accounts" "$OWNER" "$OUT"
check as_alice kms decrypt --ciphertext-blob "fileb://$F/ct.bin" --query KeyId --output text
expect_eq "alice decrypts bob's ciphertext" "$KEY_ARN" "$OUT"

step "a key id or an alias name names bob's own account"
expect_error NotFoundException as_bob kms encrypt --key-id "$KEY" --plaintext "fileb://$F/pt.bin"
grep -qF "arn:aws:kms:$REGION:$PARTNER:key/$KEY" "$F/stderr" || fail "the message names the key in bob's account" "$(cat "$F/stderr")"
pass "the message names the key in bob's account"
expect_error NotFoundException as_bob kms encrypt --key-id alias/shared --plaintext "fileb://$F/pt.bin"
expect_error NotFoundException as_bob kms encrypt --key-id "arn:aws:kms:us-west-2:$OWNER:key/$KEY" --plaintext "fileb://$F/pt.bin"

step "refused when either side does not allow it"
NO_IDENTITY="because no identity-based policy allows the"
NO_RESOURCE="because no resource-based policy allows the"
expect_denied kms:GenerateDataKey "$KEY_ARN" "$NO_IDENTITY kms:GenerateDataKey action" \
	as_bob kms generate-data-key --key-id "$KEY_ARN" --key-spec AES_256
expect_denied kms:Encrypt "$PRIVATE_ARN" "$NO_RESOURCE kms:Encrypt action" \
	as_bob kms encrypt --key-id "$PRIVATE_ARN" --plaintext "fileb://$F/pt.bin"

step "an operation AWS never allows across accounts is refused"
expect_denied kms:DisableKey "$KEY_ARN" "$NO_RESOURCE kms:DisableKey action" as_bob kms disable-key --key-id "$KEY_ARN"
check as_alice kms describe-key --key-id "$KEY" --query KeyMetadata.KeyState --output text
expect_eq "the key is still enabled" Enabled "$OUT"

step "a grant allows bob without an identity policy"
check as_alice kms create-grant --key-id "$KEY" --grantee-principal "$BOB_ARN" --operations GenerateDataKey --query GrantToken --output text
TOKEN=$OUT
check as_bob kms generate-data-key --key-id "$KEY_ARN" --key-spec AES_256 --grant-tokens "$TOKEN" --query KeyId --output text
expect_eq "generate-data-key through the grant" "$KEY_ARN" "$OUT"

step "each account lists its own keys"
check as_bob kms create-key --description "bob's own" --query KeyMetadata.Arn --output text
expect_match "bob's key is in the partner account" "^arn:aws:kms:$REGION:$PARTNER:key/" "$OUT"
check as_bob kms list-keys --query 'Keys[].KeyArn' --output text
expect_match "bob lists only his key" "^arn:aws:kms:$REGION:$PARTNER:key/[0-9a-f-]+$" "$OUT"
check as_alice kms list-keys --query 'length(Keys)' --output text
expect_eq "alice lists her two keys" 2 "$OUT"

step "a Region this kmsd does not serve"
expect_error InvalidSignatureException as_bob kms list-keys --region ap-south-1
grep -qF "this kmsd serves eu-central-1, us-west-2" "$F/stderr" || fail "the message names the served Regions" "$(cat "$F/stderr")"
pass "the message names the served Regions"

stop_kmsd
KMSD_PID=""
echo "$PASSED passed, 0 failed"
