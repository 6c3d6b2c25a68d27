# shellcheck shell=bash
# is_semver VERSION: whether VERSION is a SemVer version (1.2.3, 1.2.3-rc.1, 1.2.3+build.5), the
# one rule of what a release may be called (scripts/release and release.yml both ask it).
is_semver() {
    [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$ ]]
}
