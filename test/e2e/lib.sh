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
