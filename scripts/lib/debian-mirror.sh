# Sourced by scripts that need Debian's archive: `debian_mirror` and `debian_security_mirror`
# print the URIs this machine's apt already uses (deb822 `*.sources` or one-line `sources.list`),
# unless DEBIAN_MIRROR / SECURITY_MIRROR name others. No host name is written down here.

# _apt_uris: every "URI SUITE..." pair apt is configured with, one per line.
_apt_uris() {
    local file
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f $file ]] || continue
        awk '
            /^[[:space:]]*$/ { if (uri != "") print uri, suites; uri = ""; suites = ""; next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { suites = ""; for (i = 2; i <= NF; i++) suites = suites " " $i }
            END { if (uri != "") print uri, suites }
        ' "$file"
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $file ]] || continue
        # deb [options] URI SUITE COMPONENTS...
        sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) \([^ ]*\).*/\2 \3/p' "$file"
    done
}

_first_uri() {
    # $1: awk condition on the suites ($2...)
    local uri
    uri=$(_apt_uris | awk "$1 { print \$1; exit }")
    [[ -n $uri ]] || {
        echo "error: no Debian archive in this machine's apt sources; set DEBIAN_MIRROR and SECURITY_MIRROR" >&2
        return 1
    }
    printf '%s\n' "${uri%/}"
}

debian_mirror() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then
        printf '%s\n' "${DEBIAN_MIRROR%/}"
        return
    fi
    _first_uri '$0 !~ /-security/ && $1 ~ /^https?:/'
}

debian_security_mirror() {
    if [[ -n ${SECURITY_MIRROR:-} ]]; then
        printf '%s\n' "${SECURITY_MIRROR%/}"
        return
    fi
    _first_uri '$0 ~ /-security/ && $1 ~ /^https?:/'
}
