#!/bin/sh
#  completion BUILD SOURCE: the bash completion the build generated from
#  ternctl's help parses, registers itself, and completes every command
#  `ternctl --help` lists, subcommands and options.
set -eu
build=$1
script=$build/share/bash-completion/completions/ternctl
ternctl=$build/bin/ternctl

[ -f "$script" ] || { echo "completion: no $script (build ternctl)" >&2; exit 1; }
bash -n "$script"
commands=$("$ternctl" --help | awk '/^[A-Z]/ { f = /^COMMANDS/; next }
                                    f && /^    [a-z]/ && !seen[$1]++ { print $1 }')
[ -n "$commands" ] || { echo "completion: no COMMANDS in ternctl --help" >&2; exit 1; }

#  The man page and the completion take each command's options from its help.
for command in $commands; do
    "$ternctl" "$command" --help > /dev/null ||
        { echo "completion: 'ternctl $command --help' fails" >&2; exit 1; }
done

#  In bash: s_expect EXPECTED WORD... checks what completing the last WORD offers.
bash -s "$script" $commands <<'EOF'
set -u
script=$1
shift
source "$script"
complete -p ternctl | grep -q -- '-F _ternctl' || { echo "completion: not registered" >&2; exit 1; }
failed=0
s_expect() { # EXPECTED WORD...: the completions of the last WORD include EXPECTED
    local expected=$1
    shift
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMPREPLY=()
    _ternctl
    local got=" ${COMPREPLY[*]-} "
    if [[ $got != *" $expected "* ]]; then
        echo "completion: '$*' offers [${got}], not $expected" >&2
        failed=1
    fi
}
for command in "$@"; do
    s_expect "$command" ternctl "$command"
    s_expect "$command" ternctl -s tcp://127.0.0.1:7600 --json "${command:0:2}"
done
s_expect create ternctl topic cr
s_expect purge ternctl --timeout 5s topic ""
s_expect replay ternctl dlq ""
s_expect show ternctl keys ""
s_expect pubsub ternctl bench ""
s_expect --producer ternctl pub --pro
s_expect --group ternctl sub orders --gr
s_expect --max-age ternctl topic create orders --max
s_expect --json ternctl --js
s_expect --version ternctl --vers
#  After an option's value, and after the subcommand, no subcommands.
COMP_WORDS=(ternctl topic create "")
COMP_CWORD=3
COMPREPLY=()
_ternctl
[[ ${#COMPREPLY[@]} -eq 0 ]] || { echo "completion: offers ${COMPREPLY[*]} after a subcommand" >&2; failed=1; }
exit $failed
EOF
echo "completion: $(echo $commands | wc -w) commands complete; bash -n and complete -p pass"
