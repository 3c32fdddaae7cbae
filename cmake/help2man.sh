#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Writes a tool's man page from its own --help and --version, so the two cannot drift (run by
# the build for every tool in cmd/; the page is regenerated whenever the tool is rebuilt).
#   help2man.sh TOOL OUT.1
# What --help must look like (cmd/common.h "Help text"): "Usage: NAME ..." lines, a one-line
# description, then paragraphs; "Heading:" lines start a subsection; option lines are
# "  -x, --long ARG   text" (tag, two or more spaces, text) with deeper-indented continuations;
# a paragraph starting "Exit status:" becomes the EXIT STATUS section.
set -eu
tool=$1
out=$2
name=$(basename "$tool")
version=$("$tool" --version | head -n 1 | awk '{print $2}')
"$tool" --help >"$out.help"
awk -v name="$name" -v version="$version" '
function esc(s) {
    gsub(/\\/, "\\e", s)
    gsub(/-/, "\\-", s)
    if (s ~ /^[.'"'"']/) s = "\\&" s
    return s
}
# Plain lines keep the layout --help gives them (no fill); option items are filled.
function fill() { if (nofill) { print ".fi"; nofill = 0 } }
function plain(s) { if (!nofill) { print ".nf"; nofill = 1 } print s }
function flush_text() { if (para != "") { print para; para = "" } }
BEGIN { state = "usage"; section = "" }
NR == 1 || (state == "usage" && $0 ~ "^ +" name "( |$)") {
    sub(/^Usage: +/, ""); sub(/^ +/, "")
    syn[++nsyn] = $0
    next
}
state == "usage" {
    desc = $0; sub(/\.$/, "", desc)
    printf ".TH %s 1 \"\" \"mcl %s\" \"mcl manual\"\n", toupper(name), version
    print ".SH NAME"
    printf "%s \\- %s\n", name, esc(tolower(substr(desc, 1, 1)) substr(desc, 2))
    print ".SH SYNOPSIS"
    for (i = 1; i <= nsyn; i++) {
        s = syn[i]; rest = substr(s, length(name) + 2)
        printf ".B %s\n%s\n", name, esc(rest)
        if (i < nsyn) print ".br"
    }
    print ".SH DESCRIPTION"
    plain(esc($0))
    state = "body"
    next
}
/^$/ { flush_text(); fill(); intag = 0; print ".PP"; next }
/^Exit status:/ {
    flush_text(); fill(); intag = 0
    print ".SH EXIT STATUS"
    s = $0; sub(/^Exit status: */, "", s)
    if (s != "") print esc(s)
    next
}
/^[^ ].*:$/ && length($0) < 60 {
    flush_text(); fill(); intag = 0
    printf ".SS %s\n", esc(substr($0, 1, length($0) - 1))
    next
}
{ indent = match($0, /[^ ]/) - 1 }
# A continuation of the text of an option: deeper than its tag, and not the next option.
intag && indent > tagindent && !(indent <= 6 && substr($0, indent + 1, 1) == "-") {
    s = $0; sub(/^ +/, "", s); print esc(s); next
}
indent >= 1 && indent <= 6 && $0 ~ /[^ ]  +[^ ]/ || indent >= 1 && indent <= 6 && $0 ~ /^ +-[^ ]*$/ {
    # An option line: the tag ends at the first run of two or more spaces.
    line = $0; sub(/^ +/, "", line)
    if (match(line, /  +/)) {
        tag = substr(line, 1, RSTART - 1); text = substr(line, RSTART + RLENGTH)
    } else {
        tag = line; text = ""
    }
    flush_text(); fill()
    printf ".TP\n.B %s\n", esc(tag)
    if (text != "") print esc(text)
    intag = 1; tagindent = indent
    next
}
{ intag = 0; plain(esc($0)) }
END {
    flush_text(); fill()
    print ".SH SEE ALSO"
    n = split("mcl-pub mcl-dump mcl-stat mcl-sim mcl-log mcl-replay mcl-bridge mcl-keygen mcl-call mcl-broker", all, " ")
    sep = ""
    for (i = 1; i <= n; i++) if (all[i] != name) { printf "%s\\fB%s\\fR(1)", sep, all[i]; sep = ",\n" }
    print ""
    print ".SH COPYRIGHT"
    print "BSD\\-3\\-Clause; see the LICENSE file of the mcl sources."
}' "$out.help" >"$out.tmp"
rm -f "$out.help"
mv "$out.tmp" "$out"
