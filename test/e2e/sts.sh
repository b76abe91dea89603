#!/usr/bin/env bash
# End-to-end STS scenario with the real AWS CLI v2:
#
#   bash test/e2e/sts.sh KMSD_BINARY [WORK_DIR]
#
# Starts kmsd with a configuration that declares a user "ci" (no identity
# policy of its own), a user "outsider" and a role "kms-user" whose trust
# policy names ci. The AWS CLI then uses a ~/.aws/config profile with
# role_arn + source_profile (the form SDK profiles and SOPS's
# "KEY_ARN+ROLE_ARN" use): the CLI calls AssumeRole on kmsd itself and signs
# KMS requests with the session's credentials. Checks GetCallerIdentity for
# the user and the session, encrypt/decrypt through the role, the trust
# policy's refusal, duration limits, the session name SOPS sends, a
# session policy that narrows, a tampered session token, and that the audit
# log records the session as AssumedRole without its secrets.
#
# Endpoints: the profile carries endpoint_url, which AWS CLI 2.13 and later
# read for every service, STS included. Debian's AWS CLI (2.9) ignores it,
# and its role provider's STS client cannot be given an endpoint otherwise,
# so the script also points botocore's STS endpoint rules at kmsd through
# AWS_DATA_PATH (an endpoint-rule-set file that answers kmsd's URL); KMS
# commands get --endpoint-url. Nothing can reach real AWS: the CLI runs
# under `env -i`, HOME is the run's own folder, and STS resolves to kmsd.
set -euo pipefail

if (($# < 1)); then
	echo "usage: $0 KMSD_BINARY [WORK_DIR]" >&2
	exit 2
fi
KMSD_BIN=$(realpath "$1")
AWS_BIN=/usr/bin/aws
REGION=us-east-1
ACCOUNT=111122223333
ROLE_ARN="arn:aws:iam::$ACCOUNT:role/kms-user"
BANNER_WAIT_TENTHS=300
STOP_WAIT_TENTHS=150

if [[ ! -x $AWS_BIN ]]; then
	echo "FAIL: $AWS_BIN not found (install awscli: apt-get install -y awscli)" >&2
	exit 1
fi

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_run sts "${2:-}"
CONFIG=$RUN/kmsd.yaml
BOTO_DATA=$RUN/botocore-data
KMSD_ARGS=(--config "$CONFIG" --log-level debug)

# aws_profile PROFILE ARGS...: the AWS CLI with ~/.aws/config's PROFILE.
aws_profile() {
	local profile=$1
	shift
	env -i PATH=/usr/bin:/bin HOME="$CLIENT_HOME" AWS_PROFILE="$profile" AWS_DATA_PATH="$BOTO_DATA" \
		AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" "$AWS_BIN" "$@"
}
# aws_creds NAME ARGS...: the AWS CLI with the credentials held in NAME_ID,
# NAME_SECRET and NAME_TOKEN. The command line, which the test log shows,
# names them instead of holding them: no secret in the log.
aws_creds() {
	local id_var=${1}_ID secret_var=${1}_SECRET token_var=${1}_TOKEN
	local id=${!id_var} secret=${!secret_var} token=${!token_var:-}
	shift
	env -i PATH=/usr/bin:/bin HOME="$CLIENT_HOME" AWS_ACCESS_KEY_ID="$id" AWS_SECRET_ACCESS_KEY="$secret" \
		AWS_SESSION_TOKEN="$token" AWS_DEFAULT_REGION="$REGION" AWS_DATA_PATH="$BOTO_DATA" \
		AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" "$AWS_BIN" "$@"
}

# create_access_key USER: sets KEY_ID and KEY_SECRET.
create_access_key() {
	check "$KMSD_BIN" iam create-access-key --user "$1" --config "$CONFIG" --data-dir "$DATA"
	KEY_ID=$(sed -n 's/^export AWS_ACCESS_KEY_ID=//p' <<<"$OUT")
	KEY_SECRET=$(sed -n 's/^export AWS_SECRET_ACCESS_KEY=//p' <<<"$OUT")
	expect_match "access key id of $1" '^AKIA[A-Z0-9]{16}$' "$KEY_ID"
}

trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

echo "kmsd binary: $KMSD_BIN"
echo "work dir:    $RUN"
"$AWS_BIN" --version

cat >"$CONFIG" <<EOF
iam:
  accounts:
    - id: "$ACCOUNT"
      users:
        - name: ci
        - name: outsider
          policies:
            - name: assume-anything
              document: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "sts:AssumeRole", Resource: "*"}]}
      roles:
        - name: kms-user
          max_session_duration: 7200
          assume_role_policy: |
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
              "Principal": {"AWS": "arn:aws:iam::$ACCOUNT:user/ci"}, "Action": "sts:AssumeRole"}]}
          policies:
            - name: use-keys
              document: |
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                  "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], "Resource": "*"}]}
EOF

step "start kmsd with a role"
check "$KMSD_BIN" iam check --config "$CONFIG"
start_kmsd first
ADMIN_ID=$(sed -n 's/^export AWS_ACCESS_KEY_ID=//p' "$KMSD_OUT")
ADMIN_SECRET=$(sed -n 's/^export AWS_SECRET_ACCESS_KEY=//p' "$KMSD_OUT")
create_access_key ci
CI_ID=$KEY_ID CI_SECRET=$KEY_SECRET
create_access_key outsider
OUT_ID=$KEY_ID OUT_SECRET=$KEY_SECRET

# botocore's STS endpoint rules, answering kmsd's URL whatever the Region.
mkdir -p "$BOTO_DATA/sts/2011-06-15"
cat >"$BOTO_DATA/sts/2011-06-15/endpoint-rule-set-1.json" <<EOF
{"version": "1.0",
 "parameters": {"Region": {"builtIn": "AWS::Region", "required": false, "type": "String", "documentation": "The Region."}},
 "rules": [{"conditions": [], "endpoint": {"url": "$ENDPOINT", "properties": {}, "headers": {}}, "type": "endpoint"}]}
EOF
mkdir -p "$CLIENT_HOME/.aws"
cat >"$CLIENT_HOME/.aws/credentials" <<EOF
[ci]
aws_access_key_id = $CI_ID
aws_secret_access_key = $CI_SECRET

[outsider]
aws_access_key_id = $OUT_ID
aws_secret_access_key = $OUT_SECRET
EOF
cat >"$CLIENT_HOME/.aws/config" <<EOF
[profile ci]
region = $REGION
endpoint_url = $ENDPOINT

[profile app]
role_arn = $ROLE_ARN
source_profile = ci
role_session_name = e2e-session
region = $REGION
endpoint_url = $ENDPOINT

[profile outsider-app]
role_arn = $ROLE_ARN
source_profile = outsider
region = $REGION
endpoint_url = $ENDPOINT
EOF
chmod 600 "$CLIENT_HOME/.aws/credentials"

step "admin creates a key (default key policy: IAM decides)"
check aws_creds ADMIN --endpoint-url "$ENDPOINT" kms create-key --query KeyMetadata.Arn --output text
KEY_ARN=$OUT
check aws_creds ADMIN --endpoint-url "$ENDPOINT" kms create-alias --alias-name alias/sts-e2e --target-key-id "$KEY_ARN"

step "GetCallerIdentity"
check aws_profile ci sts get-caller-identity --query '[Account,Arn]' --output text
expect_eq "ci's identity" "$ACCOUNT	arn:aws:iam::$ACCOUNT:user/ci" "$OUT"
check aws_profile app sts get-caller-identity --query '[Arn,UserId]' --output text
read -r arn userid <<<"$OUT"
expect_eq "the session's ARN" "arn:aws:sts::$ACCOUNT:assumed-role/kms-user/e2e-session" "$arn"
expect_match "the session's UserId" '^AROA[A-Z0-9]{17}:e2e-session$' "$userid"

step "the role profile encrypts and decrypts; ci alone may not"
head -c 64 /dev/urandom >"$F/pt.bin"
check aws_profile app --endpoint-url "$ENDPOINT" kms encrypt --key-id alias/sts-e2e --plaintext "fileb://$F/pt.bin" \
	--query CiphertextBlob --output text
base64 -d <<<"$OUT" >"$F/ct.bin"
check aws_profile app --endpoint-url "$ENDPOINT" kms decrypt --ciphertext-blob "fileb://$F/ct.bin" --query Plaintext --output text
base64 -d <<<"$OUT" >"$F/pt.out"
cmp -s "$F/pt.bin" "$F/pt.out" || fail "decrypt through the role returns the plaintext"
pass "decrypt through the role returns the plaintext"
expect_error AccessDeniedException aws_profile ci --endpoint-url "$ENDPOINT" kms encrypt --key-id alias/sts-e2e --plaintext "fileb://$F/pt.bin"
expect_error AccessDeniedException aws_profile app --endpoint-url "$ENDPOINT" kms create-key

step "the trust policy refuses outsider"
expect_error AccessDenied aws_profile outsider-app sts get-caller-identity
grep -qF "User: arn:aws:iam::$ACCOUNT:user/outsider is not authorized to perform: sts:AssumeRole on resource: $ROLE_ARN" "$F/stderr" ||
	fail "AccessDenied names outsider and the role" "$(cat "$F/stderr")"
pass "AccessDenied names outsider and the role"

step "AssumeRole parameters: durations, session names (SOPS's form), session policies"
# (The CLI itself refuses durations under 900 s before sending.)
expect_error ValidationError aws_profile ci sts assume-role --role-arn "$ROLE_ARN" --role-session-name s1 --duration-seconds 7201
expect_error ValidationError aws_profile ci sts assume-role --role-arn "$ROLE_ARN" --role-session-name 'a b'
expect_error MalformedPolicyDocument aws_profile ci sts assume-role --role-arn "$ROLE_ARN" --role-session-name s1 --policy '{"Statement": []}'
# SOPS assumes ROLE_ARN of "KEY_ARN+ROLE_ARN" with the session name
# "sops@" + the host name.
check aws_profile ci sts assume-role --role-arn "$ROLE_ARN" --role-session-name sops@build-host.example --duration-seconds 7200 \
	--policy '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]}' \
	--query '[Credentials.AccessKeyId,Credentials.SecretAccessKey,Credentials.SessionToken,AssumedRoleUser.Arn]' --output text
read -r sid ssecret stoken sarn <<<"$OUT"
SESSION_ID=$sid SESSION_SECRET=$ssecret SESSION_TOKEN=$stoken
expect_match "temporary access key id" '^ASIA[A-Z0-9]{16}$' "$sid"
expect_eq "assumed role ARN" "arn:aws:sts::$ACCOUNT:assumed-role/kms-user/sops@build-host.example" "$sarn"
check aws_creds SESSION --endpoint-url "$ENDPOINT" kms encrypt --key-id "$KEY_ARN" --plaintext "fileb://$F/pt.bin" \
	--query KeyId --output text
expect_eq "encrypt within the session policy" "$KEY_ARN" "$OUT"
expect_error AccessDeniedException aws_creds SESSION --endpoint-url "$ENDPOINT" kms decrypt --ciphertext-blob "fileb://$F/ct.bin"
tampered=${stoken%?}A
[[ $tampered == "$stoken" ]] && tampered=${stoken%?}B
TAMPERED_ID=$sid TAMPERED_SECRET=$ssecret TAMPERED_TOKEN=$tampered
NOTOKEN_ID=$sid NOTOKEN_SECRET=$ssecret NOTOKEN_TOKEN=
expect_error UnrecognizedClientException aws_creds TAMPERED --endpoint-url "$ENDPOINT" kms list-keys
expect_error UnrecognizedClientException aws_creds NOTOKEN --endpoint-url "$ENDPOINT" kms list-keys

step "the audit log: the session as AssumedRole, no secret"
stop_kmsd
KMSD_PID=""
# Every file of the log, in one: which file holds which record is the
# log's business (a first start's records, rotation).
AUDIT=$RUN/audit-all.jsonl
find "$DATA" -path '*audit*' -name 'audit-*.jsonl' -exec cat {} + >"$AUDIT"
grep -q '"eventName":"AssumeRole"' "$AUDIT" || fail "no audit log with an AssumeRole record under $DATA"
grep -q '"eventSource":"sts.amazonaws.com"' "$AUDIT" || fail "AssumeRole audited with eventSource sts.amazonaws.com"
pass "AssumeRole is audited with eventSource sts.amazonaws.com"
grep '"type":"AssumedRole"' "$AUDIT" | grep -q '"sessionIssuer":{"type":"Role"' ||
	fail "requests of the session are audited as AssumedRole with a sessionContext"
pass "requests of the session are audited as AssumedRole with a sessionContext"
if grep -qF "$ssecret" "$AUDIT" || grep -qF "$stoken" "$AUDIT"; then
	fail "the audit log holds a session's secret access key or token"
fi
pass "the audit log holds no session secret"

echo "$PASSED passed, 0 failed"
