#!/usr/bin/env bash
# The manual pages against the program they document (CTest: man/*):
#   - each page renders with no warning (groff -ww, and man -l as a reader runs it) and lexgrog
#     (mandb's parser) finds its NAME line;
#   - its footer carries the version `slirpnetd --version` prints;
#   - its OPTIONS section names exactly the options the --help it documents lists (short and long
#     names): an option added to one but not the other fails here, naming it.
# Usage: t_man.sh SLIRPNETD PAGE.gz [SUBCOMMAND]
#   e.g. t_man.sh build/slirpnetd build/man/slirpnetd-run.1.gz run
set -euo pipefail
bin=$1 page=$2
sub=("${@:3}")
name=$(basename "$page" .1.gz)
status=0
fail() {
  echo "FAIL [$name]: $*" >&2
  status=1
}
for tool in groff man lexgrog; do
  command -v "$tool" >/dev/null || { echo "FAIL [$name]: $tool missing (run scripts/deps.sh)" >&2; exit 1; }
done

# Warnings: groff's own (every category), then the whole man-db pipeline on the installed form.
warnings=$(zcat "$page" | groff -ww -man -z 2>&1) || fail "groff failed"
[[ -z $warnings ]] || fail "groff -ww warns:"$'\n'"$warnings"
warnings=$(MANWIDTH=80 man --warnings=w -l "$page" 2>&1 >/dev/null) || fail "man -l failed"
[[ -z $warnings ]] || fail "man -l warns:"$'\n'"$warnings"
whatis=$(lexgrog "$page") || fail "lexgrog cannot parse it: $whatis"
[[ $whatis == *"\"$name - "* ]] || fail "lexgrog's NAME line is not \"$name - ...\": $whatis"

# Rendered as plain ASCII, wide enough that no tag is broken or hyphenated.
text=$(zcat "$page" | groff -man -Tascii -P-cbou -rLL=250n -rHY=0 2>/dev/null)
version=$("$bin" --version | sed -n 's/^slirpnetd version //p')
[[ -n $version ]] || fail "no version in: $bin --version"
grep -q "slirpnetd $version " <<<"$text" || fail "the footer does not name version $version"

# The option names in "TAG  description" lines: the tag ends at two blanks or a tab; its names
# are its comma-separated words that start with '-', up to any '=' or '['.
names_of_tags() {
  sed -E 's/^ +//; s/(  |\t).*$//' | tr ',' '\n' | sed -nE 's/^ *(--?[A-Za-z0-9][A-Za-z0-9-]*).*$/\1/p' | sort -u
}
# --help's option lines start with '-' (after at most a small indent; continuations are indented more).
help_names=$("$bin" "${sub[@]}" --help | grep -E '^ {0,4}-' | names_of_tags)
# In the page: the tag lines of the OPTIONS section, at the section's indent (7 columns).
man_names=$(sed -n '/^OPTIONS$/,/^[A-Z]/p' <<<"$text" | grep -E '^ {7}-' | names_of_tags)
[[ -n $help_names ]] || fail "no options found in: $bin ${sub[*]} --help"
[[ -n $man_names ]] || fail "no options found in the OPTIONS section"
only_help=$(comm -23 <(echo "$help_names") <(echo "$man_names"))
only_man=$(comm -13 <(echo "$help_names") <(echo "$man_names"))
[[ -z $only_help ]] || fail "in '${sub[*]:+${sub[*]} }--help' but not in the page's OPTIONS (add a .Option line to man/$name.1.in): $(tr "\n" " " <<<"$only_help")"
[[ -z $only_man ]] || fail "in the page's OPTIONS but not in '${sub[*]:+${sub[*]} }--help': $(tr "\n" " " <<<"$only_man")"

if ((status == 0)); then
  echo "PASS [$name]: no warnings; $(wc -l <<<"$help_names") option names, the same in --help and the page"
fi
exit "$status"
