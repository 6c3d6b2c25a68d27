# shellcheck shell=bash
# Sourced by scripts/release: `source_url [REMOTE]` prints the web address of the repository that
# git REMOTE (default origin) names, for the image's source label, or fails if it names none
# (no such remote, a local path). [USER@]HOST:OWNER/REPO(.git), ssh://[USER@]HOST[:PORT]/OWNER/REPO
# and http(s)://[CREDENTIALS@]HOST/OWNER/REPO all give https://HOST/OWNER/REPO: no user name,
# token or port ends up in a label.

source_url() {
    local url host path
    url=$(git remote get-url "${1:-origin}" 2>/dev/null) || return 1
    case $url in
        http://* | https://* | ssh://* | git+ssh://*)
            url=${url#*://}
            host=${url%%/*}
            path=${url#"$host"}
            host=${host##*@}
            host=${host%%:*}
            ;;
        *://*) return 1 ;; # file://, and schemes git has no web address for
        *:*)
            # scp-like [USER@]HOST:PATH (git: a colon before any slash); else a local path
            host=${url%%:*}
            [[ $host != */* ]] || return 1
            host=${host##*@}
            path=/${url#*:}
            ;;
        *) return 1 ;;
    esac
    path=${path%/}
    path=${path%.git}
    path=/${path#/}
    [[ -n $host && $path == /?*/?* ]] || return 1
    printf 'https://%s%s\n' "$host" "$path"
}
