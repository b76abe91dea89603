#!/usr/bin/env bash
# End-to-end scenario: drive a real kmsd with the real AWS CLI v2 (and boto3).
#
#   bash test/e2e/awscli.sh KMSD_BINARY [WORK_DIR]
#
# Starts kmsd on 127.0.0.1:0 with a fresh data folder, runs the KMS
# operations kmsd implements through /usr/bin/aws, kills kmsd with SIGKILL,
# restarts it on the same data folder, checks that everything made earlier
# still decrypts, and stops kmsd with SIGTERM. Prints one line per check and
# ends with "N passed, 0 failed"; on the first failed check it prints what
# failed and exits 1.
#
# The AWS clients run under `env -i` with only the variables they need, so
# nothing from the caller's environment or ~/.aws can send a request to real
# AWS. Set CI=true to turn a missing boto3 into a failure instead of a skip.
set -euo pipefail

if (($# < 1)); then
	echo "usage: $0 KMSD_BINARY [WORK_DIR]" >&2
	exit 2
fi
KMSD_BIN=$(realpath "$1")
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AWS_BIN=/usr/bin/aws           # Debian's AWS CLI v2; a v1 CLI may come first on PATH
PYTHON_BIN=/usr/bin/python3    # Debian's python3-boto3 lives here
REGION=us-east-1
BANNER_WAIT_TENTHS=300         # wait up to 30 s for kmsd's banner
STOP_WAIT_TENTHS=600 # a clean stop flushes the audit log and checkpoints SQLite: fsyncs that a busy disk can delay

if [[ ! -x $AWS_BIN ]]; then
	echo "FAIL: $AWS_BIN not found (install awscli: apt-get install -y awscli)" >&2
	exit 1
fi

# Everything this run writes lives in RUN; kmsd creates DATA itself, so the
# mode checks below test kmsd and not mktemp.
# The shared helpers: the work folder, checks (step, pass, fail, run,
# check, expect_*) and starting and stopping kmsd.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_run awscli "${2:-}"

# E2E_ROOT=pkcs11 runs the whole scenario with the root of trust in a
# fresh SoftHSM2 token (its own SOFTHSM2_CONF) instead of root.key.
KMSD_ARGS=()
ROOT_KIND=${E2E_ROOT:-file}
case $ROOT_KIND in
file) ;;
pkcs11)
	export SOFTHSM2_CONF=$RUN/softhsm2.conf E2E_HSM_PIN=40417293
	mkdir -p "$RUN/tokens"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$RUN/tokens" >"$SOFTHSM2_CONF"
	softhsm2-util --init-token --free --label kmsd-e2e-root --so-pin 87654321 --pin "$E2E_HSM_PIN" >/dev/null
	cat >"$RUN/kmsd.yaml" <<YAML
keystore:
  type: pkcs11
  pkcs11:
    module: /usr/lib/softhsm/libsofthsm2.so
    token_label: kmsd-e2e-root
    key_label: kmsd-root
    pin_env: E2E_HSM_PIN
YAML
	KMSD_ARGS=(--config "$RUN/kmsd.yaml")
	;;
*)
	echo "FAIL: E2E_ROOT=$ROOT_KIND is not file or pkcs11" >&2
	exit 1
	;;
esac

# expect_same_file WHAT WANT_FILE GOT_FILE: byte-for-byte comparison.
expect_same_file() {
	cmp -s "$2" "$3" || fail "$1" "$(basename "$3") differs from $(basename "$2")" \
		"want $(od -An -tx1 -N16 "$2" | tr -s ' ')... ($(stat -c %s "$2") bytes)" \
		"got  $(od -An -tx1 -N16 "$3" | tr -s ' ')... ($(stat -c %s "$3") bytes)"
	pass "$1"
}

# ---------------------------------------------------------------- clients

AWS_ACCESS_KEY_ID=""
AWS_SECRET_ACCESS_KEY=""
ENDPOINT=""

# aws ARGS...: the AWS CLI v2 with a clean environment. CLI 2.9 ignores
# AWS_ENDPOINT_URL, so the endpoint goes on the command line.
aws() {
	env -i \
		PATH=/usr/bin:/bin \
		HOME="$CLIENT_HOME" \
		AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
		AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
		AWS_DEFAULT_REGION="$REGION" \
		AWS_EC2_METADATA_DISABLED=true \
		AWS_PAGER="" \
		"$AWS_BIN" --endpoint-url "$ENDPOINT" "$@"
}

# b64file FILE: decode OUT (base64 from --output text) into FILE.
b64file() {
	base64 -d <<<"$OUT" >"$1" || fail "decode base64 into $(basename "$1")" "got: $OUT"
}

# Ciphertexts to decrypt again after the restart: parallel lists of
# ciphertext file, expected plaintext file and encryption context.
SAVED_CT=()
SAVED_PT=()
SAVED_EC=()
remember() {
	SAVED_CT+=("$1")
	SAVED_PT+=("$2")
	SAVED_EC+=("${3:-}")
}

# decrypt_args CT_FILE CONTEXT: the arguments of a decrypt call.
decrypt_args() {
	DECRYPT_ARGS=(kms decrypt --ciphertext-blob "fileb://$1" --query Plaintext --output text)
	if [[ -n $2 ]]; then DECRYPT_ARGS+=(--encryption-context "$2"); fi
}

# ---------------------------------------------------------------- kmsd

trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# check_modes: the data folder holds the root key (or, with a PKCS#11
# root, secrets wrapped by it), so it must be private.
check_modes() {
	expect_eq "mode of the data folder" 700 "$(stat -c %a "$DATA")"
	if [[ $ROOT_KIND == pkcs11 ]]; then
		[[ ! -e $DATA/root.key ]] || fail "a root.key file exists although the root of trust is in the HSM"
		pass "no root.key: the root key lives in the HSM"
	else
		expect_eq "mode of root.key" 600 "$(stat -c %a "$DATA/root.key")"
	fi
	expect_eq "mode of kmsd.db" 600 "$(stat -c %a "$DATA/kmsd.db")"
}

# ================================================================ scenario

echo "kmsd binary: $KMSD_BIN"
echo "work dir:    $RUN"
echo "root of trust: $ROOT_KIND"
"$AWS_BIN" --version

step "first start of kmsd on a fresh data folder"
start_kmsd first
AWS_ACCESS_KEY_ID=$(sed -n 's/^export AWS_ACCESS_KEY_ID=//p' "$KMSD_OUT")
AWS_SECRET_ACCESS_KEY=$(sed -n 's/^export AWS_SECRET_ACCESS_KEY=//p' "$KMSD_OUT")
expect_match "access key id from the banner" '^AKIA[A-Z0-9]{16}$' "$AWS_ACCESS_KEY_ID"
expect_match "secret access key from the banner" '^[A-Za-z0-9/+]{40}$' "$AWS_SECRET_ACCESS_KEY"
check_modes

step "create-key with a description and tags"
check aws kms create-key --description "e2e key one" --tags TagKey=env,TagValue=e2e TagKey=owner,TagValue=awscli \
	--query '[KeyMetadata.KeyId,KeyMetadata.Arn,KeyMetadata.KeyState,KeyMetadata.KeySpec,KeyMetadata.KeyUsage]' --output text
read -r K1 K1_ARN state spec usage <<<"$OUT"
expect_match "KeyId of the new key" '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' "$K1"
expect_eq "Arn of the new key" "arn:aws:kms:$REGION:111122223333:key/$K1" "$K1_ARN"
expect_eq "KeyState of the new key" Enabled "$state"
expect_eq "KeySpec of the new key" SYMMETRIC_DEFAULT "$spec"
expect_eq "KeyUsage of the new key" ENCRYPT_DECRYPT "$usage"
check aws kms create-key --description "e2e key two" --query KeyMetadata.Arn --output text
K2_ARN=$OUT
K2=${K2_ARN##*/}

step "describe-key"
check aws kms describe-key --key-id "$K1" \
	--query '[KeyMetadata.Description,KeyMetadata.Enabled,KeyMetadata.KeyManager,KeyMetadata.Origin]' --output text
expect_eq "describe-key (by id) Description/Enabled/KeyManager/Origin" $'e2e key one\tTrue\tCUSTOMER\tAWS_KMS' "$OUT"
check aws kms describe-key --key-id "$K1_ARN" --query KeyMetadata.KeyId --output text
expect_eq "describe-key (by ARN) KeyId" "$K1" "$OUT"

step "list-keys"
check aws kms list-keys --query 'Keys[].KeyId' --output text
expect_eq "list-keys KeyIds" "$(printf '%s\n' "$K1" "$K2" | sort | xargs)" "$(xargs -n1 <<<"$OUT" | sort | xargs)"
check aws kms list-keys --page-size 1 --query 'Keys[].KeyArn' --output text
expect_eq "list-keys with pages of one key" "$(printf '%s\n' "$K1_ARN" "$K2_ARN" | sort | xargs)" "$(xargs -n1 <<<"$OUT" | sort | xargs)"

step "encrypt and decrypt binary data with an encryption context"
EC="tenant=t1,purpose=e2e"
head -c 200 /dev/urandom >"$F/pt1.bin"
printf '\x00\xff\x00 binary\n' >>"$F/pt1.bin"
check aws kms encrypt --key-id "$K1" --plaintext "fileb://$F/pt1.bin" --encryption-context "$EC" \
	--query '[CiphertextBlob,KeyId,EncryptionAlgorithm]' --output text
read -r ct keyid alg <<<"$OUT"
expect_eq "encrypt KeyId" "$K1_ARN" "$keyid"
expect_eq "encrypt EncryptionAlgorithm" SYMMETRIC_DEFAULT "$alg"
OUT=$ct b64file "$F/ct1.bin"
remember "$F/ct1.bin" "$F/pt1.bin" "$EC"
check aws kms decrypt --ciphertext-blob "fileb://$F/ct1.bin" --encryption-context "$EC" \
	--query '[Plaintext,KeyId]' --output text
read -r pt keyid <<<"$OUT"
OUT=$pt b64file "$F/pt1.out"
expect_same_file "decrypt without --key-id returns the plaintext" "$F/pt1.bin" "$F/pt1.out"
expect_eq "decrypt KeyId" "$K1_ARN" "$keyid"
check aws kms decrypt --key-id "$K1" --ciphertext-blob "fileb://$F/ct1.bin" --encryption-context "$EC" \
	--query Plaintext --output text
b64file "$F/pt1.out2"
expect_same_file "decrypt with --key-id returns the plaintext" "$F/pt1.bin" "$F/pt1.out2"
# Context order does not matter, values do.
check aws kms decrypt --ciphertext-blob "fileb://$F/ct1.bin" --encryption-context purpose=e2e,tenant=t1 --query Plaintext --output text
expect_eq "decrypt with the context pairs in another order" "$(base64 -w0 "$F/pt1.bin")" "$OUT"
expect_error InvalidCiphertextException aws kms decrypt --ciphertext-blob "fileb://$F/ct1.bin" --encryption-context tenant=t2,purpose=e2e
expect_error InvalidCiphertextException aws kms decrypt --ciphertext-blob "fileb://$F/ct1.bin"
expect_error IncorrectKeyException aws kms decrypt --key-id "$K2" --ciphertext-blob "fileb://$F/ct1.bin" --encryption-context "$EC"

step "generate-data-key"
check aws kms generate-data-key --key-id "$K1" --key-spec AES_256 --encryption-context "$EC" \
	--query '[Plaintext,CiphertextBlob,KeyId]' --output text
read -r pt ct keyid <<<"$OUT"
OUT=$pt b64file "$F/dk256.bin"
OUT=$ct b64file "$F/dk256.ct"
expect_eq "AES_256 data key length" 32 "$(stat -c %s "$F/dk256.bin")"
expect_eq "generate-data-key KeyId" "$K1_ARN" "$keyid"
decrypt_args "$F/dk256.ct" "$EC"
check aws "${DECRYPT_ARGS[@]}"
b64file "$F/dk256.out"
expect_same_file "decrypted CiphertextBlob equals Plaintext (AES_256)" "$F/dk256.bin" "$F/dk256.out"
remember "$F/dk256.ct" "$F/dk256.bin" "$EC"
check aws kms generate-data-key --key-id "$K2" --number-of-bytes 64 --query '[Plaintext,CiphertextBlob]' --output text
read -r pt ct <<<"$OUT"
OUT=$pt b64file "$F/dk64.bin"
OUT=$ct b64file "$F/dk64.ct"
expect_eq "--number-of-bytes 64 data key length" 64 "$(stat -c %s "$F/dk64.bin")"
decrypt_args "$F/dk64.ct" ""
check aws "${DECRYPT_ARGS[@]}"
b64file "$F/dk64.out"
expect_same_file "decrypted CiphertextBlob equals Plaintext (64 bytes)" "$F/dk64.bin" "$F/dk64.out"
remember "$F/dk64.ct" "$F/dk64.bin" ""
expect_error ValidationException aws kms generate-data-key --key-id "$K1" --key-spec AES_256 --number-of-bytes 32

step "generate-data-key-without-plaintext"
check aws kms generate-data-key-without-plaintext --key-id "$K1" --key-spec AES_128 \
	--query "[CiphertextBlob,contains(keys(@),'Plaintext')]" --output text
read -r ct has_plaintext <<<"$OUT"
expect_eq "generate-data-key-without-plaintext returns a Plaintext field" False "$has_plaintext"
OUT=$ct b64file "$F/dknp.ct"
decrypt_args "$F/dknp.ct" ""
check aws "${DECRYPT_ARGS[@]}"
b64file "$F/dknp.bin"
expect_eq "decrypted AES_128 data key length" 16 "$(stat -c %s "$F/dknp.bin")"
remember "$F/dknp.ct" "$F/dknp.bin" ""

step "generate-random"
check aws kms generate-random --number-of-bytes 48 --query Plaintext --output text
b64file "$F/rand1.bin"
expect_eq "generate-random length" 48 "$(stat -c %s "$F/rand1.bin")"
check aws kms generate-random --number-of-bytes 48 --query Plaintext --output text
b64file "$F/rand2.bin"
cmp -s "$F/rand1.bin" "$F/rand2.bin" && fail "two generate-random calls returned the same bytes"
pass "two generate-random calls differ"

step "re-encrypt to a second key"
check aws kms re-encrypt --ciphertext-blob "fileb://$F/ct1.bin" --source-encryption-context "$EC" \
	--destination-key-id "$K2" --destination-encryption-context tenant=t1,purpose=moved \
	--query '[CiphertextBlob,SourceKeyId,KeyId]' --output text
read -r ct src dst <<<"$OUT"
expect_eq "re-encrypt SourceKeyId" "$K1_ARN" "$src"
expect_eq "re-encrypt KeyId" "$K2_ARN" "$dst"
OUT=$ct b64file "$F/ct1-k2.bin"
check aws kms decrypt --ciphertext-blob "fileb://$F/ct1-k2.bin" --encryption-context tenant=t1,purpose=moved \
	--query '[Plaintext,KeyId]' --output text
read -r pt keyid <<<"$OUT"
OUT=$pt b64file "$F/ct1-k2.out"
expect_same_file "re-encrypted ciphertext decrypts to the original plaintext" "$F/pt1.bin" "$F/ct1-k2.out"
expect_eq "decrypt of the re-encrypted ciphertext KeyId" "$K2_ARN" "$keyid"
expect_error InvalidCiphertextException aws kms decrypt --ciphertext-blob "fileb://$F/ct1-k2.bin" --encryption-context "$EC"
remember "$F/ct1-k2.bin" "$F/pt1.bin" "tenant=t1,purpose=moved"

step "aliases"
ALIAS=alias/e2e-test
check aws kms create-alias --alias-name "$ALIAS" --target-key-id "$K1"
expect_error AlreadyExistsException aws kms create-alias --alias-name "$ALIAS" --target-key-id "$K2"
check aws kms list-aliases --query "Aliases[?AliasName=='$ALIAS'].[AliasArn,TargetKeyId]" --output text
expect_eq "list-aliases entry" $'arn:aws:kms:'"$REGION"$':111122223333:'"$ALIAS"$'\t'"$K1" "$OUT"
check aws kms list-aliases --key-id "$K1" --query 'Aliases[].AliasName' --output text
expect_eq "list-aliases --key-id" "$ALIAS" "$OUT"
check aws kms describe-key --key-id "$ALIAS" --query KeyMetadata.KeyId --output text
expect_eq "describe-key via alias" "$K1" "$OUT"
printf 'encrypted via an alias' >"$F/pt-alias.bin"
check aws kms encrypt --key-id "$ALIAS" --plaintext "fileb://$F/pt-alias.bin" --query '[CiphertextBlob,KeyId]' --output text
read -r ct keyid <<<"$OUT"
expect_eq "encrypt via alias uses key one" "$K1_ARN" "$keyid"
OUT=$ct b64file "$F/ct-alias1.bin"
remember "$F/ct-alias1.bin" "$F/pt-alias.bin" ""
check aws kms decrypt --key-id "$ALIAS" --ciphertext-blob "fileb://$F/ct-alias1.bin" --query Plaintext --output text
expect_eq "decrypt with --key-id alias" "$(base64 -w0 "$F/pt-alias.bin")" "$OUT"
check aws kms update-alias --alias-name "$ALIAS" --target-key-id "$K2"
check aws kms encrypt --key-id "$ALIAS" --plaintext "fileb://$F/pt-alias.bin" --query '[CiphertextBlob,KeyId]' --output text
read -r ct keyid <<<"$OUT"
expect_eq "encrypt via the updated alias uses key two" "$K2_ARN" "$keyid"
OUT=$ct b64file "$F/ct-alias2.bin"
remember "$F/ct-alias2.bin" "$F/pt-alias.bin" ""
check aws kms delete-alias --alias-name "$ALIAS"
expect_error NotFoundException aws kms encrypt --key-id "$ALIAS" --plaintext "fileb://$F/pt-alias.bin"
check aws kms list-aliases --query "length(Aliases[?AliasName=='$ALIAS'])" --output text
expect_eq "deleted alias is no longer listed" 0 "$OUT"
expect_error NotFoundException aws kms delete-alias --alias-name "$ALIAS"

step "tags"
check aws kms tag-resource --key-id "$K1" --tags TagKey=team,TagValue=security TagKey=env,TagValue=e2e-changed
check aws kms list-resource-tags --key-id "$K1" --query 'Tags[].[TagKey,TagValue]' --output text
expect_eq "list-resource-tags after tag-resource" "env=e2e-changed owner=awscli team=security" \
	"$(awk '{print $1 "=" $2}' <<<"$OUT" | sort | xargs)"
check aws kms untag-resource --key-id "$K1" --tag-keys team owner
check aws kms list-resource-tags --key-id "$K1" --query 'Tags[].[TagKey,TagValue]' --output text
expect_eq "list-resource-tags after untag-resource" "env=e2e-changed" "$(awk '{print $1 "=" $2}' <<<"$OUT" | sort | xargs)"

step "update-key-description"
check aws kms update-key-description --key-id "$K1" --description "e2e key one, renamed"
check aws kms describe-key --key-id "$K1" --query KeyMetadata.Description --output text
expect_eq "Description after update" "e2e key one, renamed" "$OUT"

step "disable-key and enable-key"
check aws kms disable-key --key-id "$K1"
check aws kms describe-key --key-id "$K1" --query '[KeyMetadata.KeyState,KeyMetadata.Enabled]' --output text
expect_eq "KeyState/Enabled after disable-key" $'Disabled\tFalse' "$OUT"
expect_error DisabledException aws kms encrypt --key-id "$K1" --plaintext "fileb://$F/pt1.bin"
expect_error DisabledException aws kms decrypt --ciphertext-blob "fileb://$F/ct1.bin" --encryption-context "$EC"
check aws kms enable-key --key-id "$K1"
check aws kms encrypt --key-id "$K1" --plaintext "fileb://$F/pt1.bin" --query KeyId --output text
expect_eq "encrypt after enable-key" "$K1_ARN" "$OUT"

step "missing keys"
expect_error NotFoundException aws kms describe-key --key-id 00000000-1111-2222-3333-444444444444
expect_error NotFoundException aws kms describe-key --key-id alias/no-such-alias
expect_error NotFoundException aws kms encrypt --key-id 00000000-1111-2222-3333-444444444444 --plaintext "fileb://$F/pt1.bin"

step "schedule-key-deletion and cancel-key-deletion"
check aws kms create-key --description "e2e key three (deletion)" --query KeyMetadata.KeyId --output text
K3=$OUT
printf 'made before deletion was scheduled' >"$F/pt3.bin"
check aws kms encrypt --key-id "$K3" --plaintext "fileb://$F/pt3.bin" --query CiphertextBlob --output text
b64file "$F/ct3.bin"
remember "$F/ct3.bin" "$F/pt3.bin" ""
check aws kms schedule-key-deletion --key-id "$K3" --pending-window-in-days 7 \
	--query '[KeyState,PendingWindowInDays,DeletionDate]' --output text
read -r state days when <<<"$OUT"
expect_eq "schedule-key-deletion KeyState" PendingDeletion "$state"
expect_eq "schedule-key-deletion PendingWindowInDays" 7 "$days"
delta=$(($(date -d "$when" +%s) - $(date +%s)))
((delta > 6 * 86400 && delta <= 8 * 86400)) || fail "DeletionDate $when is not about 7 days from now"
pass "DeletionDate is about 7 days from now ($when)"
check aws kms describe-key --key-id "$K3" --query '[KeyMetadata.KeyState,KeyMetadata.Enabled]' --output text
expect_eq "describe-key of a key pending deletion" $'PendingDeletion\tFalse' "$OUT"
expect_error KMSInvalidStateException aws kms encrypt --key-id "$K3" --plaintext "fileb://$F/pt3.bin"
expect_error KMSInvalidStateException aws kms decrypt --ciphertext-blob "fileb://$F/ct3.bin"
check aws kms cancel-key-deletion --key-id "$K3" --query KeyId --output text
expect_eq "cancel-key-deletion KeyId" "arn:aws:kms:$REGION:111122223333:key/$K3" "$OUT"
check aws kms describe-key --key-id "$K3" --query KeyMetadata.KeyState --output text
expect_eq "KeyState after cancel-key-deletion" Disabled "$OUT"
expect_error DisabledException aws kms encrypt --key-id "$K3" --plaintext "fileb://$F/pt3.bin"
expect_error ValidationException aws kms schedule-key-deletion --key-id "$K3" --pending-window-in-days 6
expect_error ValidationException aws kms schedule-key-deletion --key-id "$K3" --pending-window-in-days 31
check aws kms describe-key --key-id "$K3" --query KeyMetadata.KeyState --output text
expect_eq "KeyState after the refused schedule-key-deletion" Disabled "$OUT"
check aws kms enable-key --key-id "$K3"

step "boto3"
if /usr/bin/env -i PATH=/usr/bin:/bin "$PYTHON_BIN" -c 'import boto3' >/dev/null 2>&1; then
	check env -i PATH=/usr/bin:/bin HOME="$CLIENT_HOME" AWS_EC2_METADATA_DISABLED=true \
		"$PYTHON_BIN" "$SCRIPT_DIR/boto3_smoke.py" "$ENDPOINT" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$REGION"
	expect_eq "boto3_smoke.py output (last line)" "boto3 ok" "$(tail -n1 <<<"$OUT")"
elif [[ ${CI:-} == true ]]; then
	fail "boto3 is not importable by $PYTHON_BIN (install it: apt-get install -y python3-boto3)"
else
	echo "SKIP: boto3 is not importable by $PYTHON_BIN (apt-get install -y python3-boto3); set CI=true to make this a failure"
fi

step "asymmetric keys: sign and verify with RSA and ECC"
# One RSA key (RAW message, RSASSA-PSS) and one ECC key (DIGEST message,
# ECDSA); each signature is checked by kmsd's verify, refused for another
# message, and, when openssl is installed, verified by OpenSSL against the
# public key from get-public-key.
printf 'signed by kmsd, checked by the AWS CLI and OpenSSL\n' >"$F/msg.txt"
printf 'not the message that was signed\n' >"$F/other.txt"
check aws kms create-key --key-spec RSA_2048 --key-usage SIGN_VERIFY --description "e2e RSA signing key" \
	--query '[KeyMetadata.KeyId,KeyMetadata.KeySpec,KeyMetadata.KeyUsage]' --output text
read -r KR spec usage <<<"$OUT"
expect_eq "KeySpec/KeyUsage of the RSA key" "RSA_2048 SIGN_VERIFY" "$spec $usage"
check aws kms describe-key --key-id "$KR" --query 'KeyMetadata.SigningAlgorithms' --output text
expect_eq "SigningAlgorithms of the RSA key" "RSASSA_PKCS1_V1_5_SHA_256 RSASSA_PKCS1_V1_5_SHA_384 RSASSA_PKCS1_V1_5_SHA_512 RSASSA_PSS_SHA_256 RSASSA_PSS_SHA_384 RSASSA_PSS_SHA_512" "$(xargs <<<"$OUT")"
check aws kms sign --key-id "$KR" --message "fileb://$F/msg.txt" --message-type RAW --signing-algorithm RSASSA_PSS_SHA_256 \
	--query '[Signature,KeyId,SigningAlgorithm]' --output text
read -r sig keyid alg <<<"$OUT"
expect_eq "sign KeyId" "arn:aws:kms:$REGION:111122223333:key/$KR" "$keyid"
expect_eq "sign SigningAlgorithm" RSASSA_PSS_SHA_256 "$alg"
OUT=$sig b64file "$F/rsa.sig"
check aws kms verify --key-id "$KR" --message "fileb://$F/msg.txt" --message-type RAW --signing-algorithm RSASSA_PSS_SHA_256 \
	--signature "fileb://$F/rsa.sig" --query SignatureValid --output text
expect_eq "verify of the RSA signature" True "$OUT"
expect_error KMSInvalidSignatureException aws kms verify --key-id "$KR" --message "fileb://$F/other.txt" \
	--signing-algorithm RSASSA_PSS_SHA_256 --signature "fileb://$F/rsa.sig"
expect_error InvalidKeyUsageException aws kms sign --key-id "$KR" --message "fileb://$F/msg.txt" --signing-algorithm ECDSA_SHA_256
check aws kms get-public-key --key-id "$KR" --query PublicKey --output text
b64file "$F/rsa-pub.der"

check aws kms create-key --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY --description "e2e ECC signing key" \
	--query '[KeyMetadata.KeyId,join(`,`,KeyMetadata.SigningAlgorithms)]' --output text
read -r KE algs <<<"$OUT"
expect_eq "SigningAlgorithms of the ECC key" ECDSA_SHA_256 "$algs"
"$PYTHON_BIN" -c 'import hashlib, sys; sys.stdout.buffer.write(hashlib.sha256(open(sys.argv[1], "rb").read()).digest())' \
	"$F/msg.txt" >"$F/msg.sha256"
check aws kms sign --key-id "$KE" --message "fileb://$F/msg.sha256" --message-type DIGEST --signing-algorithm ECDSA_SHA_256 \
	--query Signature --output text
b64file "$F/ecc.sig"
check aws kms verify --key-id "$KE" --message "fileb://$F/msg.sha256" --message-type DIGEST --signing-algorithm ECDSA_SHA_256 \
	--signature "fileb://$F/ecc.sig" --query SignatureValid --output text
expect_eq "verify of the ECDSA signature of the digest" True "$OUT"
check aws kms verify --key-id "$KE" --message "fileb://$F/msg.txt" --message-type RAW --signing-algorithm ECDSA_SHA_256 \
	--signature "fileb://$F/ecc.sig" --query SignatureValid --output text
expect_eq "the same signature verifies against the RAW message" True "$OUT"
expect_error KMSInvalidSignatureException aws kms verify --key-id "$KE" --message "fileb://$F/other.txt" \
	--signing-algorithm ECDSA_SHA_256 --signature "fileb://$F/ecc.sig"
expect_error ValidationException aws kms sign --key-id "$KE" --message "fileb://$F/msg.txt" --message-type DIGEST \
	--signing-algorithm ECDSA_SHA_256
check aws kms get-public-key --key-id "$KE" --query '[PublicKey,KeySpec,KeyUsage]' --output text
read -r pub spec usage <<<"$OUT"
expect_eq "get-public-key KeySpec/KeyUsage" "ECC_NIST_P256 SIGN_VERIFY" "$spec $usage"
OUT=$pub b64file "$F/ecc-pub.der"
expect_error UnsupportedOperationException aws kms get-public-key --key-id "$K1"

if command -v openssl >/dev/null; then
	check openssl pkey -pubin -inform DER -in "$F/rsa-pub.der" -out "$F/rsa-pub.pem"
	check openssl dgst -sha256 -verify "$F/rsa-pub.pem" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
		-signature "$F/rsa.sig" "$F/msg.txt"
	check openssl pkey -pubin -inform DER -in "$F/ecc-pub.der" -out "$F/ecc-pub.pem"
	check openssl dgst -sha256 -verify "$F/ecc-pub.pem" -signature "$F/ecc.sig" "$F/msg.txt"
elif [[ ${CI:-} == true ]]; then
	fail "openssl is not installed (apt-get install -y openssl)"
else
	echo "SKIP: openssl is not installed; set CI=true to make this a failure"
fi

step "imported key material (BYOK): wrapped with OpenSSL as AWS documents, imported with the AWS CLI"
# import_material KEY ALG MATERIAL_FILE [ERROR_CODE]: GetParametersForImport,
# wrap the material with OpenSSL exactly as the AWS documentation describes
# for ALG, and ImportKeyMaterial, all with the AWS CLI; with ERROR_CODE the
# import must fail with that exception.
import_material() {
	local key=$1 alg=$2 material=$3 want_error=${4:-} md=sha256
	[[ $alg == *SHA_1 ]] && md=sha1
	check aws kms get-parameters-for-import --key-id "$key" --wrapping-algorithm "$alg" \
		--wrapping-key-spec RSA_3072 --query '[ImportToken,PublicKey]' --output text
	cut -f1 <<<"$OUT" | base64 -d >"$F/token.bin"
	cut -f2 <<<"$OUT" | base64 -d >"$F/wrapping-key.der"
	local oaep=(-inkey "$F/wrapping-key.der" -keyform DER -pubin -pkeyopt rsa_padding_mode:oaep
		-pkeyopt "rsa_oaep_md:$md" -pkeyopt "rsa_mgf1_md:$md")
	case $alg in
	RSAES_OAEP_*)
		check openssl pkeyutl -encrypt -in "$material" -out "$F/encrypted-material.bin" "${oaep[@]}"
		;;
	RSA_AES_KEY_WRAP_*)
		check openssl rand -out "$F/aes-key.bin" 32
		check openssl enc -id-aes256-wrap-pad -K "$(od -An -tx1 -v "$F/aes-key.bin" | tr -d ' \n')" -iv A65959A6 \
			-in "$material" -out "$F/material-wrapped.bin"
		check openssl pkeyutl -encrypt -in "$F/aes-key.bin" -out "$F/aes-key-wrapped.bin" "${oaep[@]}"
		cat "$F/aes-key-wrapped.bin" "$F/material-wrapped.bin" >"$F/encrypted-material.bin"
		;;
	esac
	local import=(aws kms import-key-material --key-id "$key" --encrypted-key-material "fileb://$F/encrypted-material.bin"
		--import-token "fileb://$F/token.bin" --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE)
	if [[ -n $want_error ]]; then
		expect_error "$want_error" "${import[@]}"
	else
		check "${import[@]}"
	fi
}
if command -v openssl >/dev/null; then
	for alg in RSAES_OAEP_SHA_1 RSAES_OAEP_SHA_256 RSA_AES_KEY_WRAP_SHA_1 RSA_AES_KEY_WRAP_SHA_256; do
		check aws kms create-key --origin EXTERNAL --description "e2e imported ($alg)" --query KeyMetadata.KeyId --output text
		KI=$OUT
		check aws kms describe-key --key-id "$KI" --query KeyMetadata.KeyState --output text
		expect_eq "state of a new EXTERNAL key" PendingImport "$OUT"
		check openssl rand -out "$F/material-$alg.bin" 32
		import_material "$KI" "$alg" "$F/material-$alg.bin"
		printf 'under imported material (%s)' "$alg" >"$F/pt-import.bin"
		check aws kms encrypt --key-id "$KI" --plaintext "fileb://$F/pt-import.bin" --query CiphertextBlob --output text
		b64file "$F/ct-import.bin"
		check aws kms decrypt --ciphertext-blob "fileb://$F/ct-import.bin" --query Plaintext --output text
		b64file "$F/pt-import.out"
		expect_same_file "round trip under material imported with $alg" "$F/pt-import.bin" "$F/pt-import.out"
	done
	# Different material into the same key is refused.
	check openssl rand -out "$F/other-material.bin" 32
	import_material "$KI" RSAES_OAEP_SHA_256 "$F/other-material.bin" IncorrectKeyMaterialException

	# An imported P-256 private key: kmsd's signature verifies with OpenSSL
	# against the public half of the key that was imported.
	check aws kms create-key --origin EXTERNAL --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY \
		--description "e2e imported ECC key" --query KeyMetadata.KeyId --output text
	KIE=$OUT
	check openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$F/imported-ec.pem"
	check openssl pkcs8 -topk8 -nocrypt -in "$F/imported-ec.pem" -outform DER -out "$F/imported-ec.der"
	check openssl pkey -in "$F/imported-ec.pem" -pubout -out "$F/imported-ec-pub.pem"
	import_material "$KIE" RSA_AES_KEY_WRAP_SHA_256 "$F/imported-ec.der"
	printf 'signed with an imported key' >"$F/msg-import.txt"
	check aws kms sign --key-id "$KIE" --message "fileb://$F/msg-import.txt" --message-type RAW \
		--signing-algorithm ECDSA_SHA_256 --query Signature --output text
	b64file "$F/import.sig"
	check openssl dgst -sha256 -verify "$F/imported-ec-pub.pem" -signature "$F/import.sig" "$F/msg-import.txt"
elif [[ ${CI:-} == true ]]; then
	fail "openssl is not installed (apt-get install -y openssl)"
else
	echo "SKIP: openssl is not installed; set CI=true to make this a failure"
fi

step "durability: kill -9 right after a reply, then restart"
# The last writes before the kill: a new key, an alias to it, and a
# ciphertext under it. SIGKILL gives kmsd no chance to flush anything.
check aws kms create-key --description "e2e key four (made just before kill -9)" --query KeyMetadata.KeyId --output text
K4=$OUT
check aws kms create-alias --alias-name alias/e2e-before-kill --target-key-id "$K4"
printf 'encrypted right before kill -9' >"$F/pt4.bin"
check aws kms encrypt --key-id "$K4" --plaintext "fileb://$F/pt4.bin" --encryption-context "$EC" --query CiphertextBlob --output text
rc=0
# (stderr to /dev/null: bash would report the job as "Killed")
{ kill -9 "$KMSD_PID" && wait "$KMSD_PID"; } 2>/dev/null || rc=$?
expect_eq "exit status of kmsd after kill -9" 137 "$rc"
KMSD_PID=""
b64file "$F/ct4.bin"
remember "$F/ct4.bin" "$F/pt4.bin" "$EC"

start_kmsd second
if grep -q 'AWS_SECRET_ACCESS_KEY' "$KMSD_OUT"; then fail "the second start printed AWS_SECRET_ACCESS_KEY again" "$(cat "$KMSD_OUT")"; fi
pass "the second start prints no AWS_SECRET_ACCESS_KEY"
check_modes
for i in "${!SAVED_CT[@]}"; do
	decrypt_args "${SAVED_CT[$i]}" "${SAVED_EC[$i]}"
	check aws "${DECRYPT_ARGS[@]}"
	b64file "$F/after-restart-$i.out"
	expect_same_file "after the restart, $(basename "${SAVED_CT[$i]}") decrypts to $(basename "${SAVED_PT[$i]}")" \
		"${SAVED_PT[$i]}" "$F/after-restart-$i.out"
done
check aws kms describe-key --key-id alias/e2e-before-kill --query KeyMetadata.KeyId --output text
expect_eq "alias made just before kill -9 survives" "$K4" "$OUT"
check aws kms describe-key --key-id "$K1" --query '[KeyMetadata.KeyState,KeyMetadata.Description]' --output text
expect_eq "key one survives with its state and description" $'Enabled\te2e key one, renamed' "$OUT"
check aws kms list-resource-tags --key-id "$K1" --query 'Tags[].[TagKey,TagValue]' --output text
expect_eq "tags survive" "env=e2e-changed" "$(awk '{print $1 "=" $2}' <<<"$OUT" | sort | xargs)"
check aws kms encrypt --key-id "$K4" --plaintext "fileb://$F/pt4.bin" --query KeyId --output text
expect_eq "encrypt after the restart" "arn:aws:kms:$REGION:111122223333:key/$K4" "$OUT"

step "SIGTERM stops kmsd cleanly"
kill -TERM "$KMSD_PID"
for ((i = 0; i < STOP_WAIT_TENTHS; i++)); do
	alive "$KMSD_PID" || break
	sleep 0.1
done
alive "$KMSD_PID" && stuck_kmsd "kmsd still runs $((STOP_WAIT_TENTHS / 10)) s after SIGTERM"
rc=0
wait "$KMSD_PID" || rc=$?
KMSD_PID=""
expect_eq "exit status of kmsd after SIGTERM" 0 "$rc"
expect_match "kmsd's last log line" 'kmsd stopped' "$(tail -n1 "$KMSD_ERR")"

step "the audit log holds every request of this scenario and verifies"
AUDIT=$(ls "$DATA"/audit/*.jsonl)
check "$KMSD_BIN" audit verify --data-dir "$DATA"
expect_match "audit verify" 'OK: [0-9]+ records' "$OUT"
RECORDS=$(grep -c '"eventName"' $AUDIT)
((RECORDS > 100)) || fail "only $RECORDS audit records for this scenario"
pass "$RECORDS audit records"
check grep -c '"errorCode":"AccessDeniedException"\|"errorCode":"DisabledException"' $AUDIT
for f in "$F"/pt*.bin; do
	if grep -qF "$(base64 -w0 "$f")" $AUDIT; then fail "the audit log holds the plaintext of $(basename "$f")"; fi
done
pass "no plaintext of this scenario is in the audit log"
for f in "$F"/pt*.bin; do
	for log in "$RUN"/kmsd-*.err "$RUN"/kmsd-*.out; do
		if grep -qF "$(base64 -w0 "$f")" "$log" || grep -qF "$(cat "$f")" "$log"; then
			fail "kmsd's output $(basename "$log") holds the plaintext of $(basename "$f")"
		fi
	done
done
pass "no plaintext of this scenario is in kmsd's logs"

# Each kind of tampering is caught and the first bad record named. The
# scenario's log spans one file: work on copies of it.
tamper() { # tamper WHAT EXPECTED-PATTERN SED-OR-AWK-PROGRAM...
	local what=$1 want=$2
	shift 2
	rm -rf "$RUN/tampered" && mkdir -p "$RUN/tampered"
	"$@" <"$AUDIT" >"$RUN/tampered/$(basename "$AUDIT")"
	run "$KMSD_BIN" audit verify --dir "$RUN/tampered" --public-key "$DATA/audit-signing.pub"
	((RC != 0)) || fail "audit verify accepted a log with $what"
	expect_match "audit verify of a log with $what" "$want" "$OUT $(cat "$F/stderr")"
}
tamper "one byte altered in record 5" 'sequence 5' sed '5s/"eventName":"/"eventName":"X/'
tamper "record 7 deleted" 'sequence [78]' sed '7d'
tamper "records 9 and 10 swapped" 'sequence (9|10)' sed -n '9{h;n;p;g;p;b};p'
tamper "the file truncated" 'unsigned|truncat|clos' head -n 20

echo "$PASSED passed, 0 failed"
