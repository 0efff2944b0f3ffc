# shellcheck shell=bash
# The rest of devstack that devstack/plugin.sh calls, for its tests. trueorfalse is devstack's
# own (functions-common, same commit as ini-config); the others record their call in
# $DEVSTACK_CALLS instead of installing packages or starting services.

function trueorfalse {
    local xtrace
    xtrace=$(set +o | grep xtrace)
    set +o xtrace
    local default=$1
    if [ -z "$2" ]; then
        die $LINENO "variable to normalize required"
    fi
    local testval=${!2:-}
    case "$testval" in
        "1" | [yY]es | "YES" | [tT]rue | "TRUE" ) echo "True" ;;
        "0" | [nN]o | "NO" | [fF]alse | "FALSE" ) echo "False" ;;
        * )                                       echo "$default" ;;
    esac
    $xtrace
}

function die {
    local line=$1
    shift
    echo "ERROR (line $line): $*" >&2
    exit 1
}

function _record {
    printf '%s\n' "$*" >>"$DEVSTACK_CALLS"
}

function echo_summary { :; }
function enable_service { ENABLED_SERVICES+=",$1"; }
function is_service_enabled { [[ ",$ENABLED_SERVICES," == *",$1,"* ]]; }
function pip_install { _record pip_install "$@"; }
function install_package { _record install_package "$@"; }
function run_process { _record run_process "$@"; }
function stop_process { _record stop_process "$@"; }
# The tests run as root, where sudo changes nothing.
function sudo { "$@"; }
