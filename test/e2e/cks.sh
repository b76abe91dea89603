#!/usr/bin/env bash
# End-to-end custom key store scenario with the real AWS CLI v2 and SoftHSM2:
#
#   bash test/e2e/cks.sh KMSD_BINARY [WORK_DIR]
#
# Makes a fresh SoftHSM token (its own SOFTHSM2_CONF), starts kmsd with an
# hsm_clusters entry naming it, and runs the custom key store lifecycle with
# the CLI: create (and its errors), a connection that fails on a wrong
# password, update, connect, a key created in the HSM, encrypt / decrypt /
# re-encrypt / generate-data-key / generate-random in the HSM, disconnect
# (key Unavailable, KMSInvalidStateException), a restart that reconnects,
# and deletion. Prints one line per check and ends with "N passed, 0
# failed"; on the first failed check it prints what failed and exits 1.
set -euo pipefail

if (($# < 1)); then
	echo "usage: $0 KMSD_BINARY [WORK_DIR]" >&2
	exit 2
fi
KMSD_BIN=$(realpath "$1")
AWS_BIN=/usr/bin/aws
MODULE=/usr/lib/softhsm/libsofthsm2.so
REGION=us-east-1
BANNER_WAIT_TENTHS=300
CLUSTER=cluster-kmsdsofthsm2
PIN=40417293

for need in "$AWS_BIN" "$MODULE" /usr/bin/softhsm2-util /usr/bin/openssl /usr/bin/pkcs11-tool; do
	if [[ ! -e $need ]]; then
		echo "FAIL: $need not found (apt-get install -y awscli softhsm2 openssl opensc)" >&2
		exit 1
	fi
done

# The shared helpers: the work folder, checks (step, pass, fail, run,
# check, expect_*) and starting and stopping kmsd.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_run cks "${2:-}"
CONFIG=$RUN/kmsd.yaml
mkdir -p "$RUN/tokens"
KMSD_ARGS=(--config "$CONFIG" --log-level debug)

as_admin() {
	env -i PATH=/usr/bin:/bin HOME="$CLIENT_HOME" AWS_ACCESS_KEY_ID="$ADMIN_ID" AWS_SECRET_ACCESS_KEY="$ADMIN_SECRET" \
		AWS_DEFAULT_REGION="$REGION" AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" \
		"$AWS_BIN" --endpoint-url "$ENDPOINT" "$@"
}

# cks_field FIELD: one field of the store, from describe-custom-key-stores.
cks_field() {
	check as_admin kms describe-custom-key-stores --custom-key-store-id "$CKS" --query "CustomKeyStores[0].$1" --output text
}

trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# ================================================================ scenario

echo "kmsd binary: $KMSD_BIN"
echo "work dir:    $RUN"

step "a fresh SoftHSM token and a cluster CA certificate"
export SOFTHSM2_CONF=$RUN/softhsm2.conf
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$RUN/tokens" >"$SOFTHSM2_CONF"
check softhsm2-util --init-token --free --label kmsd-cks --so-pin 87654321 --pin "$PIN"
check openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=kmsd e2e cluster CA" \
	-days 1 -keyout "$RUN/ca.key" -out "$RUN/ca.pem"
check openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=someone else" \
	-days 1 -keyout "$RUN/other.key" -out "$RUN/other.pem"
cat >"$CONFIG" <<YAML
hsm_clusters:
  - id: $CLUSTER
    module: $MODULE
    token_label: kmsd-cks
    trust_anchor_file: ca.pem
    sessions: 4
YAML

step "start kmsd with the cluster declared"
start_kmsd first
ADMIN_ID=$(sed -n 's/^export AWS_ACCESS_KEY_ID=//p' "$KMSD_OUT")
ADMIN_SECRET=$(sed -n 's/^export AWS_SECRET_ACCESS_KEY=//p' "$KMSD_OUT")

step "create-custom-key-store and its errors"
expect_error CloudHsmClusterNotFoundException as_admin kms create-custom-key-store --custom-key-store-name hr \
	--cloud-hsm-cluster-id cluster-nosuchclusterz --key-store-password "$PIN" --trust-anchor-certificate "file://$RUN/ca.pem"
expect_error IncorrectTrustAnchorException as_admin kms create-custom-key-store --custom-key-store-name hr \
	--cloud-hsm-cluster-id "$CLUSTER" --key-store-password "$PIN" --trust-anchor-certificate "file://$RUN/other.pem"
expect_error UnsupportedOperationException as_admin kms create-custom-key-store --custom-key-store-name xks \
	--custom-key-store-type EXTERNAL_KEY_STORE
check as_admin kms create-custom-key-store --custom-key-store-name hr --cloud-hsm-cluster-id "$CLUSTER" \
	--key-store-password wrong-password --trust-anchor-certificate "file://$RUN/ca.pem" --query CustomKeyStoreId --output text
CKS=$OUT
expect_match "custom key store id" '^cks-[0-9a-f]{17}$' "$CKS"
expect_error CustomKeyStoreNameInUseException as_admin kms create-custom-key-store --custom-key-store-name hr \
	--cloud-hsm-cluster-id "$CLUSTER" --key-store-password "$PIN" --trust-anchor-certificate "file://$RUN/ca.pem"
cks_field ConnectionState
expect_eq "state of the new store" DISCONNECTED "$OUT"
expect_error CustomKeyStoreInvalidStateException as_admin kms create-key --origin AWS_CLOUDHSM --custom-key-store-id "$CKS"

step "a wrong password: FAILED with INVALID_CREDENTIALS"
check as_admin kms connect-custom-key-store --custom-key-store-id "$CKS"
cks_field ConnectionState
expect_eq "state after connecting with a wrong password" FAILED "$OUT"
cks_field ConnectionErrorCode
expect_eq "connection error code" INVALID_CREDENTIALS "$OUT"
expect_error CustomKeyStoreInvalidStateException as_admin kms connect-custom-key-store --custom-key-store-id "$CKS"
check as_admin kms disconnect-custom-key-store --custom-key-store-id "$CKS"
check as_admin kms update-custom-key-store --custom-key-store-id "$CKS" --key-store-password "$PIN" --new-custom-key-store-name payroll
[[ -d $DATA/audit ]] || fail "no audit folder in $DATA"
if grep -rqF -e "$PIN" -e wrong-password "$KMSD_ERR" "$KMSD_OUT" "$DATA/audit"; then
	fail "the key store password appears in kmsd's log or audit log"
fi
pass "the key store password is in neither kmsd's log nor its audit log"

step "connect, and a key inside the HSM"
check as_admin kms connect-custom-key-store --custom-key-store-id "$CKS"
cks_field ConnectionState
expect_eq "state after connecting" CONNECTED "$OUT"
cks_field CustomKeyStoreName
expect_eq "renamed store" payroll "$OUT"
check as_admin kms create-key --origin AWS_CLOUDHSM --custom-key-store-id "$CKS" --description "in the HSM" \
	--query 'KeyMetadata.[KeyId,Origin,CustomKeyStoreId,CloudHsmClusterId,KeyState]' --output text
read -r KEY ORIGIN KEY_CKS KEY_CLUSTER KEY_STATE <<<"$OUT"
expect_eq "origin" AWS_CLOUDHSM "$ORIGIN"
expect_eq "key's custom key store" "$CKS" "$KEY_CKS"
expect_eq "key's cluster" "$CLUSTER" "$KEY_CLUSTER"
expect_eq "key state" Enabled "$KEY_STATE"
check pkcs11-tool --module "$MODULE" --token-label kmsd-cks --login --pin "$PIN" --list-objects --type secrkey
grep -qF "kmsd-key/$KEY" <<<"$OUT" || fail "the token lists no object kmsd-key/$KEY" "$OUT"
pass "the key's material is an object in the token (pkcs11-tool)"

step "cryptography inside the HSM"
printf 'payroll for november' >"$F/plain"
check as_admin kms encrypt --key-id "$KEY" --plaintext "fileb://$F/plain" --encryption-context dept=payroll \
	--query CiphertextBlob --output text
base64 -d <<<"$OUT" >"$F/blob"
expect_eq "blob format version" 02 "$(head -c1 "$F/blob" | od -An -tx1 | tr -d ' ')"
check as_admin kms decrypt --ciphertext-blob "fileb://$F/blob" --encryption-context dept=payroll --query Plaintext --output text
expect_eq "decrypted" "payroll for november" "$(base64 -d <<<"$OUT")"
expect_error InvalidCiphertextException as_admin kms decrypt --ciphertext-blob "fileb://$F/blob" --encryption-context dept=hr
check as_admin kms generate-data-key --key-id "$KEY" --key-spec AES_256 --query '[Plaintext,CiphertextBlob]' --output text
read -r DK_PLAIN DK_BLOB <<<"$OUT"
base64 -d <<<"$DK_BLOB" >"$F/dk"
check as_admin kms decrypt --ciphertext-blob "fileb://$F/dk" --query Plaintext --output text
expect_eq "data key decrypts to its plaintext" "$DK_PLAIN" "$OUT"
check as_admin kms create-key --description software --query KeyMetadata.KeyId --output text
SOFT=$OUT
check as_admin kms re-encrypt --ciphertext-blob "fileb://$F/blob" --source-encryption-context dept=payroll \
	--destination-key-id "$SOFT" --query CiphertextBlob --output text
base64 -d <<<"$OUT" >"$F/soft"
check as_admin kms decrypt --ciphertext-blob "fileb://$F/soft" --query Plaintext --output text
expect_eq "re-encrypted out of the HSM" "payroll for november" "$(base64 -d <<<"$OUT")"
check as_admin kms generate-random --custom-key-store-id "$CKS" --number-of-bytes 32 --query Plaintext --output text
expect_eq "random bytes from the HSM" 32 "$(base64 -d <<<"$OUT" | wc -c | tr -d ' ')"

step "disconnected: the key is Unavailable"
check as_admin kms disconnect-custom-key-store --custom-key-store-id "$CKS"
check as_admin kms describe-key --key-id "$KEY" --query KeyMetadata.KeyState --output text
expect_eq "key state" Unavailable "$OUT"
expect_error KMSInvalidStateException as_admin kms encrypt --key-id "$KEY" --plaintext "fileb://$F/plain"
expect_error KMSInvalidStateException as_admin kms decrypt --ciphertext-blob "fileb://$F/blob" --encryption-context dept=payroll
expect_error CustomKeyStoreHasCMKsException as_admin kms delete-custom-key-store --custom-key-store-id "$CKS"

step "a restart reconnects the store"
check as_admin kms connect-custom-key-store --custom-key-store-id "$CKS"
stop_kmsd
start_kmsd second
cks_field ConnectionState
expect_eq "state after restart" CONNECTED "$OUT"
check as_admin kms decrypt --ciphertext-blob "fileb://$F/blob" --encryption-context dept=payroll --query Plaintext --output text
expect_eq "decrypted after restart" "payroll for november" "$(base64 -d <<<"$OUT")"

step "deletion"
check as_admin kms schedule-key-deletion --key-id "$KEY" --pending-window-in-days 7
check as_admin kms describe-key --key-id "$KEY" --query KeyMetadata.KeyState --output text
expect_eq "key state" PendingDeletion "$OUT"
expect_error CustomKeyStoreInvalidStateException as_admin kms delete-custom-key-store --custom-key-store-id "$CKS"
check as_admin kms disconnect-custom-key-store --custom-key-store-id "$CKS"
expect_error CustomKeyStoreHasCMKsException as_admin kms delete-custom-key-store --custom-key-store-id "$CKS"
check as_admin kms describe-custom-key-stores --query 'length(CustomKeyStores)' --output text
expect_eq "stores listed" 1 "$OUT"

echo "$PASSED passed, 0 failed"
