# Helpers shared by the end-to-end scenario scripts. A script sources this
# file after setting RUN (its work folder), F (files and command output),
# PASSED=0, STEP and KMSD_ERR (kmsd's log, or empty). Every check prints
# "ok N - what"; the first failure prints what failed and exits 1, and a
# successful script ends with "N passed, 0 failed".

step() {
	STEP=$1
	echo "== $STEP"
}

pass() {
	PASSED=$((PASSED + 1))
	echo "ok $PASSED - $1"
}

# fail WHAT [DETAIL...]: report the failed check and stop.
fail() {
	echo "FAIL: [$STEP] $1"
	shift
	local line
	for line in "$@"; do echo "    $line"; done
	if [[ -s $F/stdout ]]; then
		echo "--- stdout of the last command:"
		head -c 4000 "$F/stdout"
		echo
	fi
	if [[ -s $F/stderr ]]; then
		echo "--- stderr of the last command:"
		head -c 4000 "$F/stderr"
		echo
	fi
	if [[ -n $KMSD_ERR && -s $KMSD_ERR ]]; then
		echo "--- last lines of kmsd's log ($KMSD_ERR):"
		tail -n 30 "$KMSD_ERR"
	fi
	echo "$PASSED passed, 1 failed"
	exit 1
}

# describe CMD...: a short label for a command line.
describe() {
	local s="$*"
	s=${s//$F\//}
	((${#s} > 110)) && s="${s:0:107}..."
	echo "$s"
}

# run CMD...: runs a command, keeping its stdout in OUT (and $F/stdout), its
# stderr in $F/stderr and its exit code in RC.
run() {
	RC=0
	"$@" >"$F/stdout" 2>"$F/stderr" || RC=$?
	OUT=$(cat "$F/stdout")
}

# check CMD...: the command must succeed.
check() {
	run "$@"
	((RC == 0)) || fail "$(describe "$@")" "exit code $RC, want 0"
	pass "$(describe "$@")"
}

# expect_error CODE CMD...: the command must fail the way the AWS CLI v2
# reports a service error: exit code 254 and "An error occurred (CODE)".
expect_error() {
	local code=$1
	shift
	run "$@"
	((RC == 254)) || fail "$(describe "$@") -> $code" "exit code $RC, want 254"
	grep -qF "An error occurred ($code)" "$F/stderr" ||
		fail "$(describe "$@") -> $code" "stderr does not contain \"An error occurred ($code)\""
	pass "$(describe "$@") -> $code"
}

# expect_eq WHAT WANT GOT
expect_eq() {
	[[ $3 == "$2" ]] || fail "$1" "want: $2" "got:  $3"
	pass "$1 = $2"
}

# expect_match WHAT REGEX GOT
expect_match() {
	[[ $3 =~ $2 ]] || fail "$1" "want a match for: $2" "got: $3"
	pass "$1 ~ $2"
}

# make_run NAME [WORK_DIR]: the scenario's work folder RUN, made under
# WORK_DIR (kept, for the Go test to show) or under $TMPDIR (removed after
# a successful run, see cleanup), with DATA (kmsd's data folder, which
# kmsd creates itself so that the mode checks test kmsd, not mktemp),
# CLIENT_HOME (the AWS CLI's home) and F (files and command output). It
# unsets the caller's KMSD_* variables, so that kmsd picks up no config
# file, log format or data folder from the environment, and resets the
# counters.
make_run() {
	if [[ -n ${2:-} ]]; then
		mkdir -p "$2"
		RUN=$(mktemp -d "$(realpath "$2")/$1.XXXXXX")
		REMOVE_RUN=false
	else
		RUN=$(mktemp -d "${TMPDIR:-/tmp}/kmsd-$1.XXXXXX")
		REMOVE_RUN=true
	fi
	DATA=$RUN/data
	CLIENT_HOME=$RUN/home
	F=$RUN/files
	mkdir -p "$CLIENT_HOME" "$F"
	local v
	while read -r v; do unset "$v"; done < <(compgen -e | grep '^KMSD_' || true)
	PASSED=0
	STEP=""
	KMSD_PID=""
	KMSD_OUT=""
	KMSD_ERR=""
	ENDPOINT=""
}

# ---------------------------------------------------------------- kmsd
# A script sets KMSD_BIN, DATA, RUN, REMOVE_RUN, BANNER_WAIT_TENTHS and,
# optionally, KMSD_ARGS (more flags for kmsd serve, e.g. --config).

# alive PID: the process exists and is neither a zombie nor dead. One read
# of /proc/PID/stat decides: bash reaps its children between commands, so
# a test of the file's existence followed by a read of it can see a live
# process vanish in between (and a failed read must mean "gone", never
# "alive").
alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) } # the state follows the command name, which may hold spaces
	[[ -n $st && ${st:0:1} != Z && ${st:0:1} != X ]]
}

# start_kmsd NAME: starts kmsd on DATA and waits for its banner. Sets
# KMSD_PID, ENDPOINT, and KMSD_OUT/KMSD_ERR (its stdout and stderr).
start_kmsd() {
	KMSD_OUT=$RUN/kmsd-$1.out
	KMSD_ERR=$RUN/kmsd-$1.err
	"$KMSD_BIN" serve --data-dir "$DATA" --listen 127.0.0.1:0 "${KMSD_ARGS[@]}" >"$KMSD_OUT" 2>"$KMSD_ERR" &
	KMSD_PID=$!
	local i
	for ((i = 0; i < BANNER_WAIT_TENTHS; i++)); do
		# The endpoint line comes first and AWS_ENDPOINT_URL_KMS last in the
		# banner, so once this line is there the credentials are too.
		grep -q '^export AWS_ENDPOINT_URL_KMS=' "$KMSD_OUT" && break
		alive "$KMSD_PID" || fail "kmsd ($1 start) exited before printing its banner" "$(cat "$KMSD_ERR")"
		sleep 0.1
	done
	grep -q '^export AWS_ENDPOINT_URL_KMS=' "$KMSD_OUT" ||
		fail "kmsd ($1 start) printed no banner within $((BANNER_WAIT_TENTHS / 10)) s" "stdout: $(cat "$KMSD_OUT")" "stderr: $(cat "$KMSD_ERR")"
	ENDPOINT=$(sed -n 's/^kmsd is serving the AWS KMS API at \(http:\/\/127\.0\.0\.1:[0-9]*\) .*/\1/p' "$KMSD_OUT")
	[[ -n $ENDPOINT ]] || fail "no endpoint in kmsd's banner" "$(cat "$KMSD_OUT")"
	pass "kmsd ($1 start, pid $KMSD_PID) serves at $ENDPOINT"
}

# stop_kmsd: SIGTERM, and wait (STOP_WAIT_TENTHS, default 60 s: a clean
# stop flushes the audit log and checkpoints SQLite, fsyncs that a busy
# disk can delay) for a clean exit.
stop_kmsd() {
	kill -TERM "$KMSD_PID"
	local i limit=${STOP_WAIT_TENTHS:-600}
	for ((i = 0; i < limit; i++)); do
		alive "$KMSD_PID" || break
		sleep 0.1
	done
	alive "$KMSD_PID" && stuck_kmsd "kmsd still runs $((limit / 10)) s after SIGTERM"
	wait "$KMSD_PID" 2>/dev/null || true
	pass "kmsd stopped on SIGTERM"
}

# stuck_kmsd WHAT: kmsd did not stop. SIGQUIT makes the Go runtime write
# every goroutine's stack to kmsd's stderr, which fail then shows: where
# it hangs is the one thing worth knowing.
stuck_kmsd() {
	kill -QUIT "$KMSD_PID" 2>/dev/null || true
	sleep 1
	fail "$1" "goroutine dump (SIGQUIT) of kmsd:" "$(grep -A12 '^goroutine ' "$KMSD_ERR" | head -n 300)"
}

# cleanup (the EXIT trap): whatever happens, leave no kmsd behind.
cleanup() {
	local rc=$?
	if [[ -n $KMSD_PID ]] && alive "$KMSD_PID"; then
		kill -9 "$KMSD_PID" 2>/dev/null || true
		wait "$KMSD_PID" 2>/dev/null || true
	fi
	if ((rc == 0)) && $REMOVE_RUN; then rm -rf "$RUN"; fi
	exit "$rc"
}
