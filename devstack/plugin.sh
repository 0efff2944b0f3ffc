#!/bin/bash
#
# devstack plugin of datera-glance: the Datera EDF image store for glance.
#
#   stack install      install the package into glance's Python environment
#   stack post-config  write the backend into glance-api.conf, install the rootwrap filters
#                      and sudoers rule, start the simulator (DATERA_GLANCE_SIMULATOR=True)
#   unstack            stop the simulator
#   clean              remove the simulator's data
#
# Settings: devstack/settings. The functions take their paths from the variables devstack
# sets (GLANCE_API_CONF, GLANCE_CONF_DIR, GLANCE_BIN_DIR, STACK_USER).

_DATERA_GLANCE_XTRACE=$(set +o | grep xtrace)
set +o xtrace

function datera_glance_simulated {
    [[ "$(trueorfalse True DATERA_GLANCE_SIMULATOR)" == "True" ]]
}

# install_datera_glance: the package (compiled copier included) into the Python that runs
# glance-api; open-iscsi for a real cluster.
function install_datera_glance {
    pip_install "$DATERA_GLANCE_DIR"
    if ! datera_glance_simulated; then
        install_package open-iscsi
    fi
}

# datera_glance_enable_backend CONF BACKEND: add BACKEND:datera to [DEFAULT] enabled_backends,
# keeping the backends devstack configured, and make it the default backend if asked (or if
# there was none). Writes the reserved stores multistore needs when devstack did not.
function datera_glance_enable_backend {
    local conf=$1
    local backend=$2
    local backends store
    backends=$(iniget "$conf" DEFAULT enabled_backends)
    if [[ ",${backends// /}," != *",$backend:datera,"* ]]; then
        backends=${backends:+$backends,}$backend:datera
    fi
    iniset "$conf" DEFAULT enabled_backends "$backends"
    if [[ "$(trueorfalse True DATERA_GLANCE_DEFAULT_BACKEND)" == "True" ]] \
        || [[ -z "$(iniget "$conf" glance_store default_backend)" ]]; then
        iniset "$conf" glance_store default_backend "$backend"
    fi
    for store in os_glance_staging_store os_glance_tasks_store; do
        if [[ -z "$(iniget "$conf" "$store" filesystem_store_datadir)" ]]; then
            iniset "$conf" "$store" filesystem_store_datadir "$DATERA_GLANCE_STORES_DIR/$store/"
        fi
    done
}

# datera_glance_write_backend CONF BACKEND: the backend's section: the cluster (or the
# simulator), tenant, replicas, TLS, CHAP and the rootwrap configuration.
function datera_glance_write_backend {
    local xtrace
    xtrace=$(set +o | grep xtrace)
    set +o xtrace  # the password must not reach stack.sh's log
    local conf=$1
    local backend=$2
    local ip=$DATERA_SAN_IP
    local port=$DATERA_SAN_PORT
    if datera_glance_simulated; then
        ip=127.0.0.1
        port=$DATERA_GLANCE_SIM_PORT
    elif [[ -z "$ip" ]]; then
        die $LINENO "DATERA_SAN_IP is not set (or set DATERA_GLANCE_SIMULATOR=True)"
    fi
    iniset "$conf" "$backend" store_description "Images on the Datera EDF cluster"
    iniset "$conf" "$backend" datera_san_ip "$ip"
    iniset "$conf" "$backend" datera_san_port "$port"
    iniset "$conf" "$backend" datera_san_login "$DATERA_SAN_LOGIN"
    iniset "$conf" "$backend" datera_san_password "$DATERA_SAN_PASSWORD"
    iniset "$conf" "$backend" datera_tenant_id "$DATERA_TENANT_ID"
    iniset "$conf" "$backend" datera_rootwrap_config "$GLANCE_CONF_DIR/rootwrap.conf"
    if datera_glance_simulated; then
        iniset "$conf" "$backend" datera_ssl False
        iniset "$conf" "$backend" datera_connector local
        iniset "$conf" "$backend" datera_initiator_name "$DATERA_GLANCE_SIM_INITIATOR"
        iniset "$conf" "$backend" datera_replica_count 1
    else
        iniset "$conf" "$backend" datera_connector iscsi
        iniset "$conf" "$backend" datera_replica_count "$DATERA_REPLICA_COUNT"
        iniset "$conf" "$backend" datera_use_chap "$(trueorfalse False DATERA_USE_CHAP)"
        iniset "$conf" "$backend" datera_use_multipath \
            "$(trueorfalse False DATERA_USE_MULTIPATH)"
        if [[ "$(trueorfalse False DATERA_USE_CHAP)" == "True" ]]; then
            # Every glance-api host of the cluster needs the same key: set DATERA_CHAP_KEY
            # for more than one; a single host gets a random one.
            iniset "$conf" "$backend" datera_chap_key \
                "${DATERA_CHAP_KEY:-$(openssl rand -base64 24)}"
        fi
        if [[ -n "$DATERA_SSL_CA_FILE" ]]; then
            iniset "$conf" "$backend" datera_ssl_ca_file "$DATERA_SSL_CA_FILE"
        fi
    fi
    $xtrace
}

# datera_glance_install_rootwrap CONF_DIR: rootwrap.conf if glance has none yet, this
# package's filters (privsep-helper for os-brick and for datera_glance.privileged), and
# the sudoers rule that lets glance's user run glance-rootwrap.
function datera_glance_install_rootwrap {
    local conf_dir=$1
    local src=$DATERA_GLANCE_DIR/etc/glance
    local rule tmp
    sudo install -d -o root -g root -m 755 "$conf_dir/rootwrap.d"
    if [[ ! -f "$conf_dir/rootwrap.conf" ]]; then
        sudo install -o root -g root -m 644 "$src/rootwrap.conf" "$conf_dir/rootwrap.conf"
        sudo sed -i -e "s|^filters_path=.*|filters_path=$conf_dir/rootwrap.d|" \
            "$conf_dir/rootwrap.conf"
    fi
    sudo install -o root -g root -m 644 "$src/rootwrap.d/images.filters" \
        "$conf_dir/rootwrap.d/datera-glance.filters"
    rule="$STACK_USER ALL=(root) NOPASSWD: $GLANCE_BIN_DIR/glance-rootwrap"
    rule+=" $conf_dir/rootwrap.conf *"
    tmp=$(mktemp)
    echo "$rule" >"$tmp"
    chmod 0440 "$tmp"
    sudo chown root:root "$tmp"
    sudo install -d -m 750 "$DATERA_GLANCE_SUDOERS_DIR"
    sudo mv "$tmp" "$DATERA_GLANCE_SUDOERS_DIR/datera-glance-rootwrap"
}

# configure_datera_glance: everything glance-api needs to load the store.
function configure_datera_glance {
    datera_glance_enable_backend "$GLANCE_API_CONF" "$DATERA_GLANCE_BACKEND"
    datera_glance_write_backend "$GLANCE_API_CONF" "$DATERA_GLANCE_BACKEND"
    datera_glance_install_rootwrap "$GLANCE_CONF_DIR"
}

# start_datera_glance_simulator: the EDF simulator as a devstack service, as root (loop
# devices). glance-api starts after post-config and finds it listening. Its data directory is
# root's alone (the simulator refuses one another user owns or may write); the password
# reaches it in a root-only file there, never on its command line (ps shows that to everyone).
function start_datera_glance_simulator {
    local xtrace cmd password_file
    xtrace=$(set +o | grep xtrace)
    set +o xtrace  # the password must not reach stack.sh's log
    password_file=$DATERA_GLANCE_SIM_DATA_DIR/password
    sudo install -d -o root -g root -m 700 "$DATERA_GLANCE_SIM_DATA_DIR"
    # printf is a shell builtin: the password is in no process's arguments.
    printf '%s\n' "$DATERA_SAN_PASSWORD" \
        | sudo install -o root -g root -m 600 /dev/stdin "$password_file"
    cmd="$GLANCE_BIN_DIR/datera-glance simulator --host 127.0.0.1"
    cmd+=" --port $DATERA_GLANCE_SIM_PORT --media $DATERA_GLANCE_SIM_MEDIA"
    cmd+=" --data-dir $DATERA_GLANCE_SIM_DATA_DIR --capacity $DATERA_GLANCE_SIM_CAPACITY"
    cmd+=" --user $DATERA_SAN_LOGIN --password-file $password_file"
    run_process datera-glance-sim "$cmd" "" root
    $xtrace
}

if is_service_enabled g-api; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing datera-glance"
        install_datera_glance
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring datera-glance"
        configure_datera_glance
        if datera_glance_simulated; then
            start_datera_glance_simulator
        fi
    fi
    if [[ "$1" == "unstack" ]]; then
        stop_process datera-glance-sim
    fi
    if [[ "$1" == "clean" ]]; then
        sudo rm -rf "$DATERA_GLANCE_SIM_DATA_DIR"
    fi
fi

# Restore xtrace.
$_DATERA_GLANCE_XTRACE
