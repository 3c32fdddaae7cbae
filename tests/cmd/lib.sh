# Helpers the tool test scripts source: counted checks and bounded waits.
#   . "$(dirname "$0")/lib.sh"
pass=0
fail=0
check() { # check NAME CONDITION...: counts CONDITION's outcome, says which failed
    local name=$1
    shift
    if "$@"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $name" >&2
    fi
}
wait_for() { # wait_for FILE TEXT SECONDS: bounded wait until FILE contains TEXT
    local i
    for i in $(seq $(($3 * 40))); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.025
    done
    echo "  '$2' never appeared in $1:" >&2
    cat "$1" >&2
    return 1
}
has() { # has FILE TEXT: FILE contains TEXT (else shows FILE)
    grep -q -- "$2" "$1" || { echo "  '$2' not in $1:" >&2; cat "$1" >&2; return 1; }
}
