#!/usr/bin/env bash
# Cluster harness: three kmsd nodes on one PostgreSQL database, driven
# round-robin with the real AWS CLI v2.
#
#   go build -o /tmp/kmsd ./cmd/kmsd && bash test/cluster/run.sh /tmp/kmsd [WORK_DIR]
#
# Starts a private PostgreSQL (test/pg/start.sh; or uses the database
# KMSD_CLUSTER_DSN names, which must be empty), starts node 1 of the
# cluster on a fresh data folder (it creates the root key, the schema and
# the admin access key), gives nodes 2 and 3 a copy of node 1's root.key
# and nothing else (they join the store as new nodes), all on 127.0.0.1:0,
# and runs a KMS scenario whose every step goes to a different node than
# the step before: a change made on one node must hold on the others. It
# ends by stopping the nodes and verifying their three audit logs, each
# against its anchor in the store, with one kmsd audit verify.
#
# CLUSTER_BENCH=DURATION (e.g. 20s) measures instead of running the
# scenario: once the three nodes serve, one kmsd bench run drives encrypt
# on three targets, node 1 alone, nodes 1-2 and nodes 1-3 (requests
# round-robin over a target's nodes, --concurrency 16 per target), which
# it measures alternately round by round for DURATION each, and prints
# their throughputs as ratios to 1 node. Give a WORK_DIR to keep the
# report (bench.json).
#
# Prints one line per check and ends with "N passed, 0 failed"; on the
# first failed check it prints what failed and exits 1. The AWS CLI runs
# under env -i, so nothing from the caller's environment or ~/.aws can
# send a request to real AWS.
set -euo pipefail

if (($# < 1)); then
	echo "usage: $0 KMSD_BINARY [WORK_DIR]" >&2
	exit 2
fi
KMSD_BIN=$(realpath "$1")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
AWS_BIN=/usr/bin/aws # Debian's AWS CLI v2
REGION=us-east-1
ACCOUNT=111122223333
NODES=3
BANNER_WAIT_TENTHS=300

if [[ ! -x $AWS_BIN ]]; then
	echo "FAIL: $AWS_BIN not found (install awscli: apt-get install -y awscli)" >&2
	exit 1
fi

# step, pass, fail, run, check, expect_*, make_run, alive.
source "$REPO/test/e2e/lib.sh"
# make_run unsets the caller's KMSD_* variables; keep the DSN given.
CLUSTER_DSN=${KMSD_CLUSTER_DSN:-}
make_run cluster "${2:-}"

PIDS=()
ENDPOINTS=()
ERRS=()
PGDIR=""

cleanup_cluster() {
	local rc=$? pid
	for pid in "${PIDS[@]}"; do
		if alive "$pid"; then
			kill -9 "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	if [[ -n $PGDIR ]]; then "$REPO/test/pg/stop.sh" "$PGDIR" >/dev/null 2>&1 || true; fi
	if ((rc == 0)) && $REMOVE_RUN; then rm -rf "$RUN"; fi
	exit "$rc"
}
trap cleanup_cluster EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- PostgreSQL

step "PostgreSQL"
if [[ -z $CLUSTER_DSN ]]; then
	PGDIR=$(mktemp -d "${TMPDIR:-/tmp}/kmsd-cluster-pg.XXXXXX")
	run "$REPO/test/pg/start.sh" "$PGDIR"
	((RC == 0)) || fail "test/pg/start.sh $PGDIR" "exit code $RC"
	eval "$OUT"
	CLUSTER_DSN=$KMSD_TEST_POSTGRES_DSN
	unset KMSD_TEST_POSTGRES_DSN
	pass "private PostgreSQL in $PGDIR"
else
	pass "PostgreSQL database from KMSD_CLUSTER_DSN"
fi

# ---------------------------------------------------------------- nodes

# start_node N: starts node N on RUN/nodeN, with the shared store, and
# waits for its banner; sets PIDS[N], ENDPOINTS[N] and ERRS[N].
start_node() {
	local n=$1 out=$RUN/node$1.out i
	ERRS[n]=$RUN/node$1.err
	KMSD_ERR=${ERRS[n]}
	KMSD_STORE=postgres KMSD_STORE_DSN=$CLUSTER_DSN \
		"$KMSD_BIN" serve --data-dir "$RUN/node$n" --listen 127.0.0.1:0 >"$out" 2>"${ERRS[n]}" &
	PIDS[n]=$!
	for ((i = 0; i < BANNER_WAIT_TENTHS; i++)); do
		grep -q '^export AWS_ENDPOINT_URL_KMS=' "$out" && break
		alive "${PIDS[n]}" || fail "node $n exited before printing its banner" "$(cat "${ERRS[n]}")"
		sleep 0.1
	done
	grep -q '^export AWS_ENDPOINT_URL_KMS=' "$out" || fail "node $n printed no banner within $((BANNER_WAIT_TENTHS / 10)) s" "$(cat "${ERRS[n]}")"
	ENDPOINTS[n]=$(sed -n 's/^export AWS_ENDPOINT_URL_KMS=//p' "$out")
	pass "node $n (pid ${PIDS[n]}) serves at ${ENDPOINTS[n]}"
}

step "node 1 starts the cluster"
start_node 1
AWS_ACCESS_KEY_ID=$(sed -n 's/^export AWS_ACCESS_KEY_ID=//p' "$RUN/node1.out")
AWS_SECRET_ACCESS_KEY=$(sed -n 's/^export AWS_SECRET_ACCESS_KEY=//p' "$RUN/node1.out")
[[ -n $AWS_ACCESS_KEY_ID && -n $AWS_SECRET_ACCESS_KEY ]] || fail "node 1 printed no admin access key" "$(cat "$RUN/node1.out")"
pass "node 1 created the admin access key"

step "nodes 2 and 3 join with a copy of the root key"
for n in 2 3; do
	install -d -m 700 "$RUN/node$n"
	install -m 600 "$RUN/node1/root.key" "$RUN/node$n/root.key"
	start_node "$n"
	grep -q '^export AWS_ACCESS_KEY_ID=' "$RUN/node$n.out" && fail "node $n created another admin access key: it did not join"
	pass "node $n joined (no new access key)"
done

# ---------------------------------------------------------------- bench

if [[ -n ${CLUSTER_BENCH:-} ]]; then
	step "kmsd bench: encrypt on 1, 2 and 3 nodes, round-robin, measured alternately"
	KMSD_ERR=""
	(umask 077 && printf '%s' "$AWS_SECRET_ACCESS_KEY" >"$F/secret")
	targets=()
	for n in 1 2 3; do
		targets+=(--endpoint "$(IFS=,; echo "${ENDPOINTS[*]:1:n}")")
	done
	check "$KMSD_BIN" bench "${targets[@]}" --access-key-id "$AWS_ACCESS_KEY_ID" --secret-file "$F/secret" \
		--op encrypt --duration "$CLUSTER_BENCH" --quiet --json
	cp "$F/stdout" "$RUN/bench.json"
	python3 - "$RUN/bench.json" "$(nproc)" <<'PY' || fail "bench: errors, or no figures"
import json, sys
r = json.load(open(sys.argv[1]))["ops"][0]["targets"]
assert len(r) == 3 and all(t["errors"] == 0 and t["requests"] > 0 for t in r), r
print("nodes  encrypt ops/s  ratio to 1 node   (%s CPUs, shared by the nodes, PostgreSQL and kmsd bench)" % sys.argv[2])
for n, t in enumerate(r, 1):
    print("%5d  %13.0f  %15s" % (n, t["ops_per_sec"], "x%.2f" % (t["ops_per_sec"] / r[0]["ops_per_sec"])))
PY
	pass "kmsd bench measured 1, 2 and 3 nodes ($RUN/bench.json)"
	echo "$PASSED passed, 0 failed"
	exit 0
fi

# ---------------------------------------------------------------- clients

# aws N ARGS...: the AWS CLI against node N, with a clean environment.
aws() {
	local n=$1
	shift
	KMSD_ERR=${ERRS[n]}
	env -i PATH=/usr/bin:/bin HOME="$CLIENT_HOME" \
		AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
		AWS_DEFAULT_REGION="$REGION" AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" \
		"$AWS_BIN" --endpoint-url "${ENDPOINTS[n]}" "$@"
}

# ================================================================ scenario

step "create-key on node 1, create-alias on node 2, describe-key by alias on node 3"
check aws 1 kms create-key --description "cluster key" --query KeyMetadata.KeyId --output text
KEY=$OUT
check aws 2 kms create-alias --alias-name alias/cluster --target-key-id "$KEY"
check aws 3 kms describe-key --key-id alias/cluster --query KeyMetadata.KeyId --output text
expect_eq "node 3 resolves alias/cluster" "$KEY" "$OUT"

step "encrypt on node 1, decrypt on node 2"
printf 'a secret that crosses nodes' >"$F/pt"
check aws 1 kms encrypt --key-id alias/cluster --plaintext "fileb://$F/pt" --encryption-context app=cluster \
	--query CiphertextBlob --output text
base64 -d <<<"$OUT" >"$F/ct"
check aws 2 kms decrypt --ciphertext-blob "fileb://$F/ct" --encryption-context app=cluster --query Plaintext --output text
base64 -d <<<"$OUT" >"$F/pt2"
cmp -s "$F/pt" "$F/pt2" || fail "node 2 decrypts node 1's ciphertext to the plaintext"
pass "node 2 decrypts node 1's ciphertext to the plaintext"

step "disable-key on node 3: encrypt on node 1 is refused at once"
# Node 1 has the key cached from the encrypt above. The encrypt below is
# sent the moment disable-key returns (after the AWS CLI's own start,
# about half a second) and is not retried: node 1 must already refuse it.
# TestChangesReachEveryNode measures the bound itself.
check aws 3 kms disable-key --key-id "$KEY"
t0=$(date +%s%N)
expect_error DisabledException aws 1 kms encrypt --key-id alias/cluster --plaintext "fileb://$F/pt"
echo "   (node 1 answered $((($(date +%s%N) - t0) / 1000000)) ms after disable-key returned, the AWS CLI's start included)"
check aws 2 kms describe-key --key-id "$KEY" --query KeyMetadata.KeyState --output text
expect_eq "key state on node 2" Disabled "$OUT"
check aws 1 kms enable-key --key-id "$KEY"
check aws 3 kms encrypt --key-id "$KEY" --plaintext "fileb://$F/pt" --query KeyId --output text
expect_eq "node 3 encrypts after enable-key on node 1" "arn:aws:kms:$REGION:$ACCOUNT:key/$KEY" "$OUT"

step "put-key-policy on node 2 denies Encrypt on node 3; the default policy restores it"
cat >"$F/deny.json" <<JSON
{"Version":"2012-10-17","Statement":[
 {"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$ACCOUNT:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"NoEncrypt","Effect":"Deny","Principal":{"AWS":"*"},"Action":"kms:Encrypt","Resource":"*"}]}
JSON
cat >"$F/allow.json" <<JSON
{"Version":"2012-10-17","Statement":[
 {"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$ACCOUNT:root"},"Action":"kms:*","Resource":"*"}]}
JSON
check aws 2 kms put-key-policy --key-id "$KEY" --policy-name default --policy "file://$F/deny.json"
expect_error AccessDeniedException aws 3 kms encrypt --key-id "$KEY" --plaintext "fileb://$F/pt"
check aws 1 kms get-key-policy --key-id "$KEY" --policy-name default --query Policy --output text
expect_match "node 1 reads the policy node 2 put" '"NoEncrypt"' "$OUT"
check aws 2 kms put-key-policy --key-id "$KEY" --policy-name default --policy "file://$F/allow.json"
check aws 3 kms encrypt --key-id "$KEY" --plaintext "fileb://$F/pt" --query KeyId --output text

step "create-grant on node 1, list on node 2, revoke on node 3"
check aws 1 kms create-grant --key-id "$KEY" --grantee-principal "arn:aws:iam::$ACCOUNT:role/app" \
	--operations Decrypt Encrypt --name cluster-grant --query GrantId --output text
GRANT=$OUT
check aws 2 kms list-grants --key-id "$KEY" --query 'Grants[].GrantId' --output text
expect_eq "node 2 lists node 1's grant" "$GRANT" "$OUT"
check aws 3 kms revoke-grant --key-id "$KEY" --grant-id "$GRANT"
check aws 1 kms list-grants --key-id "$KEY" --query 'length(Grants)' --output text
expect_eq "grants on node 1 after the revoke on node 3" 0 "$OUT"

step "schedule-key-deletion on node 2, refused on node 3, cancelled on node 1"
check aws 2 kms schedule-key-deletion --key-id "$KEY" --pending-window-in-days 7 --query KeyState --output text
expect_eq "state after schedule-key-deletion" PendingDeletion "$OUT"
expect_error KMSInvalidStateException aws 3 kms encrypt --key-id "$KEY" --plaintext "fileb://$F/pt"
check aws 1 kms cancel-key-deletion --key-id "$KEY"
check aws 2 kms describe-key --key-id "$KEY" --query KeyMetadata.KeyState --output text
expect_eq "state on node 2 after cancel-key-deletion on node 1" Disabled "$OUT"
check aws 3 kms enable-key --key-id "$KEY"

step "generate-data-key on node 1, decrypt on node 2"
check aws 1 kms generate-data-key --key-id alias/cluster --key-spec AES_256 --output json
python3 -c 'import json,sys,base64; d=json.load(open(sys.argv[1])); open(sys.argv[2],"wb").write(base64.b64decode(d["Plaintext"])); open(sys.argv[3],"wb").write(base64.b64decode(d["CiphertextBlob"]))' \
	"$F/stdout" "$F/dk" "$F/dkct" || fail "parse generate-data-key's answer"
check aws 2 kms decrypt --ciphertext-blob "fileb://$F/dkct" --query Plaintext --output text
base64 -d <<<"$OUT" >"$F/dk2"
cmp -s "$F/dk" "$F/dk2" || fail "node 2 decrypts the data key node 1 made"
pass "node 2 decrypts the data key node 1 made"

step "sign on node 3, verify on node 1 and node 2 (ECC_NIST_P256)"
check aws 2 kms create-key --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY --query KeyMetadata.KeyId --output text
SKEY=$OUT
printf 'a message to sign' >"$F/msg"
check aws 3 kms sign --key-id "$SKEY" --message "fileb://$F/msg" --message-type RAW --signing-algorithm ECDSA_SHA_256 \
	--query Signature --output text
base64 -d <<<"$OUT" >"$F/sig"
check aws 1 kms verify --key-id "$SKEY" --message "fileb://$F/msg" --message-type RAW --signing-algorithm ECDSA_SHA_256 \
	--signature "fileb://$F/sig" --query SignatureValid --output text
expect_eq "node 1 verifies node 3's signature" True "$OUT"
printf 'another message' >"$F/msg2"
expect_error KMSInvalidSignatureException aws 2 kms verify --key-id "$SKEY" --message "fileb://$F/msg2" --message-type RAW \
	--signing-algorithm ECDSA_SHA_256 --signature "fileb://$F/sig"

step "every node lists both keys"
for n in 1 2 3; do
	check aws "$n" kms list-keys --query 'length(Keys)' --output text
	expect_eq "keys on node $n" 2 "$OUT"
done

# ---------------------------------------------------------------- shutdown

step "stop the nodes and verify their audit logs"
for n in 1 2 3; do
	kill -TERM "${PIDS[n]}"
done
for n in 1 2 3; do
	for ((i = 0; i < 600; i++)); do
		alive "${PIDS[n]}" || break
		sleep 0.1
	done
	alive "${PIDS[n]}" && fail "node $n still runs 60 s after SIGTERM"
	wait "${PIDS[n]}" 2>/dev/null || true
	pass "node $n stopped on SIGTERM"
done
KMSD_ERR=""
# The DSN goes in the environment, not on the command line the check
# prints: it may hold a password.
KMSD_STORE=postgres KMSD_STORE_DSN=$CLUSTER_DSN check "$KMSD_BIN" audit verify \
	--node "$RUN/node1" --node "$RUN/node2" --node "$RUN/node3"
echo "$OUT"
expect_match "kmsd audit verify checked three node logs" 'OK: 3 node logs' "$OUT"

echo "$PASSED passed, 0 failed"
