# shellcheck shell=bash
# Sourced by scripts that need Debian's archive: `debian_mirror` and `debian_security_mirror`
# print the URIs this machine's apt already uses for Debian itself (deb822 `*.sources` or one-line
# `*.list`), unless DEBIAN_MIRROR / SECURITY_MIRROR name others. No host name is written down here.
#
# Debian's entry is the first (in apt's order) of type deb, over http(s), with the component main
# and the suite of this machine's release (VERSION_CODENAME of /etc/os-release), or that suite's
# -security for the security archive: a third-party source (its own suites, or no main) never wins.
# A machine that is not Debian has no such entry: set both variables there.
# DEBIAN_MIRROR_APT_DIR and DEBIAN_MIRROR_OS_RELEASE point at other files (for tests).

# _apt_entries: "URI<TAB> SUITE... <TAB> COMPONENT... " (space-padded lists) for every enabled deb
# entry: sources.list, then sources.list.d/ in name order, as apt reads them.
_apt_entries() {
    local dir=${DEBIAN_MIRROR_APT_DIR:-/etc/apt} file
    for file in "$dir/sources.list" "$dir"/sources.list.d/*; do
        [[ -f $file ]] || continue
        case $file in
            *.sources)
                # deb822: paragraphs of "Field: value" (names case-insensitive, values may go on
                # over indented lines); several URIs: the first.
                awk '
                    function flush() {
                        if ((f["types"] " ") ~ / deb / && tolower(f["enabled"]) !~ /^ *no *$/ && f["uris"] != "") {
                            split(f["uris"], uris, " ")
                            printf "%s\t%s \t%s \n", uris[1], f["suites"], f["components"]
                        }
                        delete f
                        key = ""
                    }
                    /^#/ { next }
                    /^[[:space:]]*$/ { flush(); next }
                    /^[ \t]/ { if (key != "") { f[key] = f[key] " " $0; gsub(/[[:space:]]+/, " ", f[key]) } next }
                    {
                        key = tolower(substr($0, 1, index($0, ":") - 1))
                        f[key] = " " substr($0, index($0, ":") + 1)
                        gsub(/[[:space:]]+/, " ", f[key])
                    }
                    END { flush() }
                ' "$file"
                ;;
            *.list)
                # deb [OPTIONS] URI SUITE COMPONENT...
                awk '
                    { sub(/#.*/, "") }
                    $1 == "deb" {
                        i = 2
                        if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                        components = ""
                        for (j = i + 2; j <= NF; j++) components = components " " $j
                        printf "%s\t %s \t%s \n", $i, $(i + 1), components
                    }
                ' "$file"
                ;;
        esac
    done
}

# _debian_uri SUITE: the URI of the first deb entry over http(s) with SUITE and main.
_debian_uri() {
    local suite=$1 uri suites components
    while IFS=$'\t' read -r uri suites components; do
        if [[ $uri =~ ^https?:// && $suites == *" $suite "* && $components == *" main "* ]]; then
            printf '%s\n' "${uri%/}"
            return 0
        fi
    done < <(_apt_entries)
    echo "error: no Debian archive for '$suite' (component main) in this machine's apt sources; set DEBIAN_MIRROR and SECURITY_MIRROR" >&2
    return 1
}

# _debian_codename: VERSION_CODENAME of this machine, which must be Debian.
_debian_codename() {
    local release=${DEBIAN_MIRROR_OS_RELEASE:-/etc/os-release} id codename
    read -r id codename < <(
        # shellcheck source=/dev/null
        . "$release" && printf '%s %s\n' "${ID:-unknown}" "${VERSION_CODENAME:-}"
    ) || true
    if [[ ${id:-} != debian || -z ${codename:-} ]]; then
        echo "error: this machine is not a Debian release with a codename (${release}: ID=${id:-?}); set DEBIAN_MIRROR and SECURITY_MIRROR" >&2
        return 1
    fi
    printf '%s\n' "$codename"
}

debian_mirror() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then
        printf '%s\n' "${DEBIAN_MIRROR%/}"
        return
    fi
    local codename
    codename=$(_debian_codename) || return 1
    _debian_uri "$codename"
}

debian_security_mirror() {
    if [[ -n ${SECURITY_MIRROR:-} ]]; then
        printf '%s\n' "${SECURITY_MIRROR%/}"
        return
    fi
    local codename
    codename=$(_debian_codename) || return 1
    _debian_uri "$codename-security"
}
