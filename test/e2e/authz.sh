#!/usr/bin/env bash
# End-to-end authorization scenario with the real AWS CLI v2:
#
#   bash test/e2e/authz.sh KMSD_BINARY [WORK_DIR]
#
# Starts kmsd with a configuration that declares a non-admin IAM user
# (app-user, with no identity policy), creates its access key with
# `kmsd iam create-access-key` while kmsd runs, creates a key as admin whose
# key policy names app-user, and runs encrypt/decrypt as app-user; checks
# the operations the policy does not allow (AccessDeniedException with AWS's
# message), a grant that allows and is then revoked, the key policy
# operations and the lockout safety check, and a SIGHUP that declares a new
# user and removes app-user. Prints one line per check and ends with
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
REGION=us-east-1
ACCOUNT=111122223333
BANNER_WAIT_TENTHS=300
STOP_WAIT_TENTHS=150

if [[ ! -x $AWS_BIN ]]; then
	echo "FAIL: $AWS_BIN not found (install awscli: apt-get install -y awscli)" >&2
	exit 1
fi

# The shared helpers: the work folder, checks (step, pass, fail, run,
# check, expect_*) and starting and stopping kmsd.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_run authz "${2:-}"
CONFIG=$RUN/kmsd.yaml

KMSD_ARGS=(--config "$CONFIG" --log-level debug)

# expect_denied ACTION RESOURCE WHY CMD...: AccessDeniedException with AWS's
# message for the caller in $WHO.
expect_denied() {
	local action=$1 resource=$2 why=$3
	shift 3
	expect_error AccessDeniedException "$@"
	local want="User: $WHO is not authorized to perform: $action on resource: $resource $why"
	grep -qF "$want" "$F/stderr" || fail "AccessDeniedException message" "want: $want" "got:  $(cat "$F/stderr")"
	pass "message: ...$action on resource: ${resource##*/} $why"
}

# ---------------------------------------------------------------- clients

ENDPOINT=""
ADMIN_ID=""
ADMIN_SECRET=""
USER_ID=""
USER_SECRET=""
LATE_ID=""
LATE_SECRET=""

# aws_with ID SECRET ARGS...: the AWS CLI with one principal's credentials;
# as_admin, as_user and as_late ARGS... name the principal.
aws_with() {
	local id=$1 secret=$2
	shift 2
	env -i PATH=/usr/bin:/bin HOME="$CLIENT_HOME" AWS_ACCESS_KEY_ID="$id" AWS_SECRET_ACCESS_KEY="$secret" \
		AWS_DEFAULT_REGION="$REGION" AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" \
		"$AWS_BIN" --endpoint-url "$ENDPOINT" "$@"
}
as_admin() { aws_with "$ADMIN_ID" "$ADMIN_SECRET" "$@"; }
as_user() { aws_with "$USER_ID" "$USER_SECRET" "$@"; }
as_late() { aws_with "$LATE_ID" "$LATE_SECRET" "$@"; }

b64file() {
	base64 -d <<<"$OUT" >"$1" || fail "decode base64 into $(basename "$1")" "got: $OUT"
}

# create_access_key USER: `kmsd iam create-access-key` (a second process
# next to the running kmsd); sets KEY_ID and KEY_SECRET.
create_access_key() {
	check "$KMSD_BIN" iam create-access-key --user "$1" --config "$CONFIG" --data-dir "$DATA"
	KEY_ID=$(sed -n 's/^export AWS_ACCESS_KEY_ID=//p' <<<"$OUT")
	KEY_SECRET=$(sed -n 's/^export AWS_SECRET_ACCESS_KEY=//p' <<<"$OUT")
	expect_match "access key id of $1" '^AKIA[A-Z0-9]{16}$' "$KEY_ID"
	expect_match "secret access key of $1" '^[A-Za-z0-9/+]{40}$' "$KEY_SECRET"
	grep -qF "arn:aws:iam::$ACCOUNT:user/$1" <<<"$OUT" || fail "create-access-key names arn:aws:iam::$ACCOUNT:user/$1" "$OUT"
}

# ---------------------------------------------------------------- kmsd

trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# write_config USERS...: the configuration, declaring the given users. The
# user "late" gets an identity policy; the others have none.
write_config() {
	{
		echo "iam:"
		echo "  accounts:"
		echo "    - id: \"$ACCOUNT\""
		echo "      users:"
		local u
		for u in "$@"; do
			echo "        - name: $u"
			if [[ $u == late ]]; then
				echo "          policies:"
				echo "            - name: encrypt-anything"
				echo "              document: {Version: 2012-10-17, Statement: [{Effect: Allow, Action: \"kms:Encrypt\", Resource: \"*\"}]}"
			fi
		done
	} >"$CONFIG"
}

# ================================================================ scenario

echo "kmsd binary: $KMSD_BIN"
echo "work dir:    $RUN"
"$AWS_BIN" --version

step "start kmsd with a configuration that declares app-user"
write_config app-user
check "$KMSD_BIN" iam check --config "$CONFIG"
start_kmsd first
ADMIN_ID=$(sed -n 's/^export AWS_ACCESS_KEY_ID=//p' "$KMSD_OUT")
ADMIN_SECRET=$(sed -n 's/^export AWS_SECRET_ACCESS_KEY=//p' "$KMSD_OUT")
expect_match "admin access key id from the banner" '^AKIA[A-Z0-9]{16}$' "$ADMIN_ID"

step "kmsd iam create-access-key while kmsd runs"
run "$KMSD_BIN" iam create-access-key --user app-user --config "$CONFIG" --data-dir "$DATA"
if grep -q 'unknown command "iam"' "$F/stderr"; then
	fail "this kmsd has no iam command: cmd/kmsd/main.go must dispatch \"iam\" to iamMain"
fi
create_access_key app-user
USER_ID=$KEY_ID
USER_SECRET=$KEY_SECRET
run "$KMSD_BIN" iam create-access-key --user nobody --config "$CONFIG" --data-dir "$DATA"
((RC != 0)) || fail "create-access-key for an undeclared user succeeded"
grep -q 'not declared' "$F/stderr" || fail "create-access-key for an undeclared user: message" "$(cat "$F/stderr")"
pass "create-access-key refuses an undeclared user"
check "$KMSD_BIN" iam list-access-keys --config "$CONFIG" --data-dir "$DATA"
grep -qF "$USER_ID" <<<"$OUT" || fail "list-access-keys lists app-user's key"
grep -q 'SECRET\|[A-Za-z0-9/+]\{40\}' <<<"$OUT" && fail "list-access-keys prints a secret"
pass "list-access-keys lists the key, without secrets"

step "admin creates a key whose policy names app-user"
USER_ARN="arn:aws:iam::$ACCOUNT:user/app-user"
cat >"$F/policy.json" <<EOF
{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::$ACCOUNT:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "app-user encrypts and decrypts", "Effect": "Allow", "Principal": {"AWS": "$USER_ARN"},
     "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}
  ]
}
EOF
check as_admin kms create-key --description "app-user's key" --policy "file://$F/policy.json" --query KeyMetadata.Arn --output text
KEY_ARN=$OUT
KEY=${KEY_ARN##*/}
check as_admin kms get-key-policy --key-id "$KEY" --policy-name default --query Policy --output text
cmp -s <(printf '%s\n' "$OUT") "$F/policy.json" || fail "get-key-policy returns the policy as stored" "$OUT"
pass "get-key-policy returns the policy as stored"
check as_admin kms list-key-policies --key-id "$KEY" --query PolicyNames --output text
expect_eq "list-key-policies" default "$OUT"
check as_admin kms create-key --description "default policy" --query KeyMetadata.Arn --output text
OTHER_ARN=$OUT
OTHER=${OTHER_ARN##*/}

step "app-user encrypts and decrypts through the key policy"
WHO=$USER_ARN
head -c 100 /dev/urandom >"$F/pt.bin"
check as_user kms encrypt --key-id "$KEY" --plaintext "fileb://$F/pt.bin" --encryption-context purpose=e2e \
	--query CiphertextBlob --output text
b64file "$F/ct.bin"
check as_user kms decrypt --ciphertext-blob "fileb://$F/ct.bin" --encryption-context purpose=e2e --query '[Plaintext,KeyId]' --output text
read -r pt keyid <<<"$OUT"
OUT=$pt b64file "$F/pt.out"
cmp -s "$F/pt.bin" "$F/pt.out" || fail "decrypt as app-user returns the plaintext"
pass "decrypt as app-user returns the plaintext"
expect_eq "decrypt KeyId" "$KEY_ARN" "$keyid"
check as_user kms describe-key --key-id "$KEY_ARN" --query KeyMetadata.KeyId --output text
expect_eq "describe-key as app-user" "$KEY" "$OUT"

step "what the key policy does not allow app-user"
NO_IDENTITY="because no identity-based policy allows the"
expect_denied kms:GenerateDataKey "$KEY_ARN" "$NO_IDENTITY kms:GenerateDataKey action" \
	as_user kms generate-data-key --key-id "$KEY" --key-spec AES_256
expect_denied kms:ScheduleKeyDeletion "$KEY_ARN" "$NO_IDENTITY kms:ScheduleKeyDeletion action" \
	as_user kms schedule-key-deletion --key-id "$KEY"
expect_denied kms:Encrypt "$OTHER_ARN" "$NO_IDENTITY kms:Encrypt action" \
	as_user kms encrypt --key-id "$OTHER" --plaintext "fileb://$F/pt.bin"
expect_denied kms:CreateKey "*" "$NO_IDENTITY kms:CreateKey action" as_user kms create-key
expect_denied kms:ListKeys "*" "$NO_IDENTITY kms:ListKeys action" as_user kms list-keys
check as_admin kms describe-key --key-id "$KEY" --query KeyMetadata.KeyState --output text
expect_eq "the key is still enabled" Enabled "$OUT"

step "a grant allows app-user, then is revoked"
check as_admin kms create-grant --key-id "$OTHER" --grantee-principal "$USER_ARN" --operations GenerateDataKey Decrypt \
	--constraints EncryptionContextSubset={tenant=t1} --name e2e-grant --query '[GrantId,GrantToken]' --output text
read -r GRANT_ID GRANT_TOKEN <<<"$OUT"
expect_match "grant id" '^[0-9a-f]{64}$' "$GRANT_ID"
check as_user kms generate-data-key --key-id "$OTHER" --key-spec AES_256 --encryption-context tenant=t1 \
	--grant-tokens "$GRANT_TOKEN" --query CiphertextBlob --output text
b64file "$F/dk.ct"
check as_user kms decrypt --ciphertext-blob "fileb://$F/dk.ct" --encryption-context tenant=t1 --query KeyId --output text
expect_eq "decrypt through the grant" "$OTHER_ARN" "$OUT"
expect_error AccessDeniedException as_user kms generate-data-key --key-id "$OTHER" --key-spec AES_256 --encryption-context tenant=t2
check as_admin kms list-grants --key-id "$OTHER" --query 'Grants[].[GrantId,Name,GranteePrincipal]' --output text
expect_eq "list-grants" "$GRANT_ID	e2e-grant	$USER_ARN" "$OUT"
expect_error InvalidGrantTokenException as_user kms generate-data-key --key-id "$OTHER" --key-spec AES_256 \
	--encryption-context tenant=t1 --grant-tokens not-a-grant-token
check as_admin kms revoke-grant --key-id "$OTHER" --grant-id "$GRANT_ID"
expect_denied kms:GenerateDataKey "$OTHER_ARN" "$NO_IDENTITY kms:GenerateDataKey action" \
	as_user kms generate-data-key --key-id "$OTHER" --key-spec AES_256 --encryption-context tenant=t1

step "key policy changes and the lockout safety check"
cat >"$F/locked.json" <<EOF
{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "$USER_ARN"}, "Action": "kms:*", "Resource": "*"}]}
EOF
expect_error MalformedPolicyDocumentException as_admin kms put-key-policy --key-id "$OTHER" --policy-name default --policy "file://$F/locked.json"
grep -qF "will not allow you to update the key policy in the future" "$F/stderr" || fail "lockout message" "$(cat "$F/stderr")"
pass "lockout message"
cat >"$F/bad.json" <<EOF
{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::$ACCOUNT:group/admins"}, "Action": "kms:*", "Resource": "*"}]}
EOF
expect_error MalformedPolicyDocumentException as_admin kms put-key-policy --key-id "$OTHER" --policy-name default --policy "file://$F/bad.json"
grep -qF "IAM groups cannot be principals" "$F/stderr" || fail "malformed policy message" "$(cat "$F/stderr")"
pass "malformed policy message names the problem"
check as_admin kms put-key-policy --key-id "$OTHER" --policy-name default --policy "file://$F/policy.json"
check as_user kms encrypt --key-id "$OTHER" --plaintext "fileb://$F/pt.bin" --query KeyId --output text
expect_eq "encrypt after put-key-policy named app-user" "$OTHER_ARN" "$OUT"

step "SIGHUP reloads the declared principals"
write_config late
kill -HUP "$KMSD_PID"
for ((i = 0; i < 50; i++)); do
	grep -q 'SIGHUP: iam identities reloaded' "$KMSD_ERR" && break
	sleep 0.1
done
grep -q 'SIGHUP: iam identities reloaded' "$KMSD_ERR" || fail "kmsd logged no identity reload after SIGHUP"
pass "kmsd reloaded its identities"
expect_error UnrecognizedClientException as_user kms encrypt --key-id "$KEY" --plaintext "fileb://$F/pt.bin"
create_access_key late
LATE_ID=$KEY_ID
LATE_SECRET=$KEY_SECRET
check as_late kms encrypt --key-id "$OTHER" --plaintext "fileb://$F/pt.bin" --query KeyId --output text
expect_eq "encrypt as late (IAM delegation)" "$OTHER_ARN" "$OUT"
WHO="arn:aws:iam::$ACCOUNT:user/late"
expect_denied kms:Decrypt "$OTHER_ARN" "$NO_IDENTITY kms:Decrypt action" \
	as_late kms decrypt --ciphertext-blob "fileb://$F/dk.ct" --encryption-context tenant=t1
check as_admin kms list-keys --query 'length(Keys)' --output text
expect_eq "admin still lists the keys" 2 "$OUT"

step "SIGTERM stops kmsd"
kill -TERM "$KMSD_PID"
for ((i = 0; i < STOP_WAIT_TENTHS; i++)); do
	alive "$KMSD_PID" || break
	sleep 0.1
done
alive "$KMSD_PID" && stuck_kmsd "kmsd still runs after SIGTERM"
rc=0
wait "$KMSD_PID" || rc=$?
KMSD_PID=""
expect_eq "exit status of kmsd after SIGTERM" 0 "$rc"

echo "$PASSED passed, 0 failed"
